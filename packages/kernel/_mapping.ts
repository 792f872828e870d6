/**
 * Mappings: an {@linkcode Extent} (the live bytes behind every mapping of one
 * object, retargeted when the object moves or goes) and an
 * {@linkcode ObjectMapping} (one mapping, with its protections and the
 * durability calls).
 *
 * @module
 */
import { Extent, type Lifetime, type Mapping, type ObjID, Prot } from "./abi/mod.ts";

export { Extent };
import type { Kernel } from "./kernel.ts";

/**
 * An object mapped into the caller's address space: loads and stores on
 * `bytes` are loads and stores on the object. For a persistent object,
 * `persist` makes a range durable. Offsets are relative to the object.
 */
export class ObjectMapping implements Mapping {
  /** @internal */
  constructor(
    readonly id: ObjID,
    readonly lifetime: Lifetime,
    readonly prot: number,
    readonly extent: Extent,
    private readonly kernel: Kernel,
    readonly handle: number,
  ) {}

  /** The object's bytes (empty once the object is deleted). */
  get bytes(): Uint8Array {
    return this.extent.bytes;
  }
  /** A DataView over {@linkcode ObjectMapping.bytes}. */
  get view(): DataView {
    return this.extent.view;
  }
  /** Size in bytes. */
  get size(): number {
    return this.extent.bytes.length;
  }
  /** Whether the mapping allows writes. */
  get writable(): boolean {
    return (this.prot & Prot.Write) !== 0;
  }
  /** Write back `[offset, offset + length)`; durable after {@linkcode drain}. */
  flush(offset: number, length: number): void {
    this.kernel.flushRange(this, offset, length);
  }
  /** Ordering point for earlier flushes. */
  drain(): void {
    if (this.lifetime === "persistent") this.kernel.drainRegion();
  }
  /** Make `[offset, offset + length)` durable. */
  persist(offset: number, length: number): void {
    this.kernel.flushRange(this, offset, length);
    this.drain();
  }
}
