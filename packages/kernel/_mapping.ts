/**
 * Mappings: an {@linkcode Extent} (the live bytes behind every mapping of one
 * object, retargeted when the object moves or goes) and an
 * {@linkcode ObjectMapping} (one mapping, with its protections and the
 * durability calls).
 *
 * @module
 */
import { Extent, type Lifetime, MappingBase, type ObjID } from "./abi/mod.ts";

export { Extent };
import type { Kernel } from "./kernel.ts";

/**
 * An object mapped into the caller's address space: loads and stores on
 * `bytes` are loads and stores on the object. For a persistent object,
 * `persist` makes a range durable. Offsets are relative to the object.
 */
export class ObjectMapping extends MappingBase {
  /** @internal */
  constructor(
    id: ObjID,
    lifetime: Lifetime,
    prot: number,
    extent: Extent,
    private readonly kernel: Kernel,
    handle: number,
  ) {
    super(id, lifetime, prot, handle, extent);
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
