// Where the fields of the kernel's on-NVM records are, found from the kernel's
// own encoders rather than written down here: encode a record, change one
// field, see which bytes moved. So the damage campaign follows a format change
// (a field moved, widened or added; a checksum added) without being edited.
//
// Bytes that change whatever field changes are the record's checksum; bytes
// no field reaches are constants (magic, version, sizes) or reserved.
import {
  encodeObject,
  encodeRoot,
  encodeSuperblock,
  type Geometry,
  type ObjectSlot,
  type Root,
  SUPERBLOCK_BYTES,
} from "@twz/kernel/format";

/** One field of a record: `width` bytes at `offset` (relative to the record). */
export interface Field {
  name: string;
  offset: number;
  width: number;
  /** What kind of field: a value, the record's checksum, or a constant/reserved run. */
  kind: "value" | "checksum" | "constant";
}

/** The layout of one record kind. */
export interface RecordLayout {
  bytes: number;
  fields: Field[];
}

type Encoder<T> = (value: T) => Uint8Array;

/** Values to try for a field, chosen so that together they change every byte of it. */
function probes(value: unknown): unknown[] {
  if (typeof value === "bigint") {
    return [0n, (1n << 128n) - 1n, 0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5an];
  }
  if (typeof value === "number") return [0, 2 ** 53 - 1, Math.PI, 0xa5a5a5a5, 255];
  if (value instanceof Uint8Array) {
    return [new Uint8Array(value.length), new Uint8Array(value.length).fill(0xff)];
  }
  return [];
}

/**
 * The layout of a record whose encoder takes an object of fields: each field
 * of `sample` is changed in turn and the moved bytes are its place.
 */
export function discover<T extends object>(
  encode: Encoder<T>,
  sample: T,
  constants: Record<number, string> = {},
): RecordLayout {
  const base = encode(sample);
  const n = base.length;
  const moved = new Map<string, Set<number>>();
  // How many fields move each byte: a field's own bytes move with it alone,
  // a checksum's move with every field (a CRC byte may keep its value by
  // chance for one probe, so "moved by two fields or more" tells them apart).
  const movers = new Uint16Array(n);
  for (const key of Object.keys(sample) as Array<keyof T & string>) {
    const changed = new Set<number>();
    for (const v of probes(sample[key])) {
      let e: Uint8Array;
      try {
        e = encode({ ...sample, [key]: v });
      } catch {
        continue;
      }
      for (let i = 0; i < n; i++) if (e[i] !== base[i]) changed.add(i);
    }
    if (changed.size === 0) continue;
    moved.set(key, changed);
    for (const i of changed) movers[i]!++;
  }
  const checksum = new Set<number>();
  for (let i = 0; i < n; i++) if (movers[i]! >= 2) checksum.add(i);
  // A field that moves only checksum bytes is not a field.
  const fields: Field[] = [];
  for (const [name, set] of moved) {
    const own = [...set].filter((i) => !checksum.has(i));
    if (own.length === 0) continue;
    const lo = Math.min(...own), hi = Math.max(...own) + 1;
    let width = 1;
    while (width < hi - lo) width *= 2;
    const offset = lo - (lo % Math.min(width, 8));
    fields.push({ name, offset, width: Math.min(width, n - offset), kind: "value" });
  }
  const taken = new Set<number>(checksum);
  for (const f of fields) for (let i = 0; i < f.width; i++) taken.add(f.offset + i);
  if (checksum.size > 0) {
    const c = [...checksum].sort((a, b) => a - b);
    fields.push({
      name: "checksum",
      offset: c[0]!,
      width: c.at(-1)! - c[0]! + 1,
      kind: "checksum",
    });
  }
  // What no field reached: constants (named when their value says what they
  // are; a leading 8-byte run is the magic) cut at 4-byte words, and runs of
  // zero bytes (reserved), kept whole.
  const zeroWord = (i: number) => base.subarray(i, Math.min(i + 4, n)).every((b) => b === 0);
  for (let i = 0; i < n;) {
    if (taken.has(i)) {
      i++;
      continue;
    }
    let j = i + 1;
    if (i === 0 && !zeroWord(0)) {
      while (j < 8 && !taken.has(j)) j++;
    } else if (i % 4 === 0 && zeroWord(i)) {
      while (j < n && !taken.has(j) && !(j % 4 === 0 && !zeroWord(j))) j++;
    } else {
      while (j < n && !taken.has(j) && j % 4 !== 0) j++;
    }
    const zero = base.subarray(i, j).every((b) => b === 0);
    const word = j - i <= 4 ? readLE(base, i, j - i) : -1;
    const name = i === 0 && j === 8
      ? "magic"
      : zero
      ? `reserved@${i}`
      : constants[word] ?? `const@${i}`;
    fields.push({ name, offset: i, width: j - i, kind: "constant" });
    i = j;
  }
  fields.sort((a, b) => a.offset - b.offset);
  return { bytes: n, fields };
}

function readLE(b: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
  return v;
}

/** The superblock's fields (only its first `SUPERBLOCK_BYTES` are used). */
export function superblockLayout(g: Geometry, named: Record<number, string>): RecordLayout {
  const layout = discover<Geometry>((x) => encodeSuperblock(x), g, named);
  const fields = layout.fields.filter((f) => f.offset < SUPERBLOCK_BYTES);
  // "magic" is the 8 bytes at 0 whatever else the discovery saw there.
  return { bytes: SUPERBLOCK_BYTES, fields };
}

/** An object slot's fields, from a typical slot. */
export function slotLayout(sample: ObjectSlot): RecordLayout {
  const layout = discover<ObjectSlot>((s) => encodeObject(s), sample, { 1: "state" });
  // The state byte is a constant of encodeObject (OBJECT); name it.
  const zero = encodeObject({
    id: 0n,
    prot: 0,
    start: 0,
    blocks: 0,
    size: 0,
    keyId: 0n,
    ties: 0,
    created: 0,
  });
  const fields: Field[] = [];
  for (const f of layout.fields) {
    if (f.kind !== "constant") {
      fields.push(f);
      continue;
    }
    // Split a constant run so the byte(s) holding OBJECT become "state".
    for (let i = f.offset; i < f.offset + f.width; i++) {
      const isState = zero[i] !== 0;
      const last = fields.at(-1);
      const name = isState ? "state" : `reserved@${i}`;
      if (
        last && last.kind === "constant" && last.offset + last.width === i && !isState &&
        !last.name.startsWith("state")
      ) {
        last.width++;
        continue;
      }
      fields.push({ name, offset: i, width: 1, kind: "constant" });
    }
  }
  for (const f of fields) if (f.name.startsWith("reserved@")) f.name = `reserved@${f.offset}`;
  return { bytes: layout.bytes, fields };
}

/** The root record's fields. */
export function rootLayout(sample: Root): RecordLayout {
  return discover<Root>((r) => encodeRoot(r), sample, { 0x544f4f52: "magic" });
}
