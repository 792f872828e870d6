/**
 * The libtwz meta-info's own fields and checks: the checksum, the
 * pending-name flag, and the soundness check of a meta-info read in place.
 * Private to libtwz (the session, naming and the checkers use them); the
 * meta-info layout itself is `@twz/kernel/abi`'s.
 *
 * @module
 */
import {
  BASE_OFFSET,
  FOT_ENTRY_SIZE,
  LAYOUT_VERSION,
  MAX_FOT_INDEX,
  META_OFFSET,
  MetaField,
  MetaFlags,
} from "@twz/kernel/abi";

const M = META_OFFSET;

/**
 * Offset (in the meta-info) of its checksum, a u32 in bytes the layout
 * leaves zero: {@linkcode metaChecksum} of the fields fixed at creation.
 * 0 means "none" (objects made before libtwz wrote one): they are checked
 * field by field only.
 */
export const META_CHECKSUM = 124;

/**
 * A meta-info flag libtwz sets while it creates an object for a name: the
 * object is born with it (its meta-info is part of the kernel's create
 * commit) and loses it once the name is bound. An object that still has it
 * and that no name reaches was cut short by a crash: fsck's repair deletes
 * it. Not covered by the checksum (it is cleared with a plain store).
 */
export const META_PENDING_NAME = 0x8000;

/** Every meta-info flag libtwz knows. */
export const KNOWN_META_FLAGS = MetaFlags.Directory | MetaFlags.Root | META_PENDING_NAME;

/**
 * The checksum of a meta-info's fields fixed at creation (magic to namesOffset
 * ... typeTag, without the published `fotCount`/`namesUsed` word and without
 * {@linkcode META_PENDING_NAME}), never 0.
 *
 * @param v A view whose byte `META_OFFSET` is the meta-info's first.
 * @returns The checksum.
 */
export function metaChecksum(v: DataView): number {
  let h = 0x811c9dc5;
  const word = (at: number) => {
    h = Math.imul(h ^ v.getUint32(M + at, true), 0x01000193);
    h ^= h >>> 15;
  };
  word(MetaField.magic);
  h = Math.imul(
    h ^ (v.getUint16(M + MetaField.version, true) |
      ((v.getUint16(M + MetaField.flags, true) & ~META_PENDING_NAME) << 16)),
    0x01000193,
  );
  for (let at = MetaField.prot; at < MetaField.fotCount; at += 4) word(at);
  for (let at = MetaField.namesOffset; at <= MetaField.typeTag; at += 4) word(at);
  return (h >>> 0) || 1;
}

/**
 * What is wrong with an object's meta-info (its magic present), checked in
 * place and in constant time: version, flags, checksum, and that the FOT and
 * its names area lie inside the object. `undefined` when it is sound.
 *
 * @param v The object's view.
 * @param size The object's size.
 * @returns The first problem, or `undefined`.
 */
export function metaProblem(v: DataView, size: number): string | undefined {
  if (size < BASE_OFFSET) return `the object is only ${size} bytes`;
  const version = v.getUint16(M + MetaField.version, true);
  if (version !== LAYOUT_VERSION) return `unknown layout version ${version}`;
  const flags = v.getUint16(M + MetaField.flags, true);
  if (flags & ~KNOWN_META_FLAGS) return `unknown meta-info flags 0x${flags.toString(16)}`;
  const sum = v.getUint32(M + META_CHECKSUM, true);
  if (sum !== 0 && sum !== metaChecksum(v)) return "the meta-info checksum does not match";
  const f = (field: number) => v.getUint32(M + field, true);
  const fot = f(MetaField.fotOffset), cap = f(MetaField.fotCapacity);
  const namesOffset = f(MetaField.namesOffset), namesSize = f(MetaField.namesSize);
  if (cap > MAX_FOT_INDEX || fot < BASE_OFFSET || fot + cap * FOT_ENTRY_SIZE > size) {
    return `FOT of ${cap} entries at ${fot} lies outside the object (${size} bytes)`;
  }
  if (namesOffset < fot + cap * FOT_ENTRY_SIZE || namesOffset + namesSize > size) {
    return `FOT names area [${namesOffset}, ${
      namesOffset + namesSize
    }) lies outside the object or overlaps the entries`;
  }
  const count = f(MetaField.fotCount);
  if (count > cap) return `fotCount ${count} exceeds fotCapacity ${cap}`;
  const used = f(MetaField.namesUsed);
  if (used > namesSize) return `namesUsed ${used} exceeds the names area's ${namesSize} bytes`;
  return undefined;
}
