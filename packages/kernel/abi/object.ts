/**
 * Object lifetimes, protections and the facts `stat` reports.
 *
 * @module
 */
import type { ObjID } from "./id.ts";

/** Where an object lives: NVM (survives reboot) or DRAM (gone at reboot). */
export type Lifetime = "persistent" | "volatile";

/** Protection bits. */
export const Prot = {
  /** May be read. */
  Read: 1,
  /** May be written. */
  Write: 2,
  /** May be executed (code objects). */
  Exec: 4,
  /** Read and write. */
  ReadWrite: 3,
  /** Everything. */
  All: 7,
} as const;

/** Format protection bits as `rwx` letters. */
export function formatProt(prot: number): string {
  return (prot & Prot.Read ? "r" : "-") + (prot & Prot.Write ? "w" : "-") +
    (prot & Prot.Exec ? "x" : "-");
}

/** Parse `rwx`-style letters (any subset, any order) into protection bits. */
export function parseProt(text: string): number {
  if (!/^[rwx-]{1,3}$/.test(text)) throw new TypeError(`"${text}" is not a protection (like "rw")`);
  return (text.includes("r") ? Prot.Read : 0) | (text.includes("w") ? Prot.Write : 0) |
    (text.includes("x") ? Prot.Exec : 0);
}

/** What the kernel knows about an object. */
export interface ObjectStat {
  /** The object's ID. */
  id: ObjID;
  /** Persistent or volatile. */
  lifetime: Lifetime;
  /** Size in bytes (what a mapping spans). */
  size: number;
  /** Bytes reserved for it in the store (size rounded up to blocks). */
  capacity: number;
  /** Default protections. */
  prot: number;
  /** ID of the key object that signs capabilities for it, or 0n. */
  keyId: ObjID;
  /** How many objects are tied to this one (deleted with it). */
  dependents: number;
  /** Creation time, milliseconds since the Unix epoch. */
  created: number;
}

/** A range copied into a new object from an existing one. */
export interface SourceRange {
  /** The object to copy from. */
  id: ObjID;
  /** Offset in the source. */
  srcOffset: number;
  /** Offset in the new object. */
  dstOffset: number;
  /** Bytes to copy. */
  length: number;
}

/** What `create` takes. */
export interface CreateSpec {
  /** Size in bytes. @default {65536} */
  size?: number | undefined;
  /** Whether the object outlives the kernel. @default {"persistent"} */
  lifetime?: Lifetime | undefined;
  /** Default protections. @default {Prot.ReadWrite} */
  prot?: number | undefined;
  /**
   * Key object ID for capabilities (`kuid`). With a key, the object's ID is
   * derived from `nonce`, the key, flags 0 and `prot` (`deriveObjectId`),
   * so a capability names the object and its key at once. @default {0n}
   */
  keyId?: ObjID | undefined;
  /**
   * The nonce of a keyed object's ID (u128; random when absent). A nonce
   * whose ID is taken is refused (`InvalidArgument`).
   */
  nonce?: bigint | undefined;
  /** Ranges copied from other objects into the new one. */
  sources?: SourceRange[] | undefined;
  /** Objects whose deletion deletes this one. */
  ties?: ObjID[] | undefined;
}

/** Default object size for `create` without a size. */
export const DEFAULT_OBJECT_SIZE = 65536;
