// What fsck's checkers share while they analyze one image: the image (as
// an overlay), the findings, the repair plan, and what each checker learns
// for the ones after it (the geometry, the metadata as boot would see it,
// the sound objects and which blocks they own...). One checker per area
// (_superblock.ts, _log.ts, _root.ts, _table.ts, _ties.ts, _bitmap.ts);
// _analyze.ts runs them in order.
import { formatId, isValidId, type ObjID, readId } from "../abi/mod.ts";
import { BLOCK, type Geometry, SLOT } from "../_layout.ts";
import { EMPTY, SlotField, type Table } from "../_table.ts";
import { sealSlot } from "../_check.ts";
import type { Root } from "../_root.ts";
import type { ImageOverlay } from "../overlay.ts";
import type { FsckArea, FsckCache, FsckLostObject, FsckProblem, FsckSummary } from "../fsck.ts";

/** A planned repair: writes through a MetaTx, plus what it says. */
export interface Plan {
  slots: Map<number, Uint8Array>;
  words: Map<number, number>;
  clearLog: boolean;
  /** A superblock copy to write (the primary from its backup, or the backup). */
  superblock?: { at: number; bytes: Uint8Array } | undefined;
  rebuildRoot: boolean;
  /** The root object the rebuilt root record names. */
  rootObject: ObjID;
  lines: string[];
}

/** What one analysis of an image found, and the repair it plans. */
export interface Analysis {
  problems: FsckProblem[];
  notes: string[];
  lostFound: FsckLostObject[];
  /** What the plan loses (ties it cannot restore), one line each. */
  dropped: string[];
  summary?: FsckSummary | undefined;
  plan: Plan;
  geometry?: Geometry | undefined;
  replayLog: boolean;
  rootObject: ObjID;
}

/** A table slot's fields, as fsck reads them. */
export interface Slot {
  i: number;
  id: ObjID;
  start: number;
  blocks: number;
  size: number;
  ties: number;
  prot: number;
}

export const hexId = (id: ObjID): string => formatId(id);

/** IDs of recovered objects: "lost+fou" in the upper 64 bits, the first block below. */
export const RECOVERED_HI = 0x6c6f73742b666f75n;
/** How many IDs fsck tries in all on tie edges whose parent or dependent ID is damaged. */
export const ID_TRIES = 1 << 21;
/** The largest recovered object, in blocks (its size must fit a u32). */
export const MAX_RECOVERED_BLOCKS = Math.floor(0xffffffff / BLOCK);

export function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>>
    0;
}

/** A tombstone record (sealed by `planSlot` for its index). */
export function tombRecord(): Uint8Array {
  const b = new Uint8Array(SLOT);
  b[SlotField.state] = 2; // TOMB
  return b;
}

/**
 * The state of one analysis. Checkers run in order; each sets the fields
 * the later ones read (documented where they are set).
 */
export class Scan {
  readonly problems: FsckProblem[] = [];
  readonly notes: string[] = [];
  readonly lostFound: FsckLostObject[] = [];
  readonly dropped: string[] = [];
  readonly plan: Plan = {
    slots: new Map(),
    words: new Map(),
    clearLog: false,
    rebuildRoot: false,
    rootObject: 0n,
    lines: [],
  };
  /** The image's bytes as read (loaded ranges only). */
  readonly image: Uint8Array;

  // The superblock checker: the geometry the rest trusts.
  g!: Geometry;
  // The log checker: the metadata as boot would see it (replayed).
  bytes!: Uint8Array;
  view!: DataView;
  table!: Table;
  replayLog = false;
  logState: FsckSummary["log"] = "empty";
  // The root checker (record).
  root: Root | undefined;
  rootOk = false;
  // The table checker.
  readonly objects: Slot[] = [];
  readonly byId = new Map<ObjID, number>();
  /** Object records fsck cannot trust: kept as they are, their blocks never freed. */
  readonly untrusted: Array<{ s: Slot; why: string }> = [];
  edges = 0;
  tombstones = 0;
  nonEmpty = 0;
  readonly edgeSlots: number[] = [];
  readonly damaged: Array<{ i: number; why: string }> = [];
  /** Blocks kept allocated (records fsck cannot trust may own them). */
  kept!: Uint8Array;
  /** Which sound object (index in `objects`) owns each block, or -1. */
  owner!: Int32Array;
  unproven = 0;
  /** Extents that become recovered objects: of damaged records, then of orphan runs. */
  readonly salvage: Array<{ start: number; n: number; reason: string }> = [];
  // The bitmap checker (lines, before the table's damaged slots).
  lines = 0;
  lineOk!: Uint8Array;
  usedBits = 0;
  owned = 0;
  // The root checker (root object).
  rootObject: ObjID = 0n;

  constructor(
    /** The image (its bytes are `image`); an analysis replay changes it only in place, undone after. */
    readonly overlay: ImageOverlay,
    /** Read bytes of the image (see `FsckImage.load`). */
    readonly load: (offset: number, length: number) => void,
    /** Whether `overlay`'s bytes may change for the time of the analysis (a replay goes in place). */
    readonly inPlace: boolean,
    readonly deep: boolean,
    readonly cache: FsckCache | undefined,
  ) {
    this.image = overlay.bytes;
  }

  problem(area: FsckArea, message: string, repairable: boolean): void {
    this.problems.push({ area, message, repairable });
  }

  /** The result when the superblock cannot be trusted (nothing else is checked). */
  none(): Analysis {
    const { problems, notes, lostFound, dropped, plan } = this;
    return { problems, notes, lostFound, dropped, plan, replayLog: false, rootObject: 0n };
  }

  slotAt(i: number): number {
    return this.g.tableOffset + i * SLOT;
  }

  planSlot(i: number, data: Uint8Array, line: string): void {
    this.plan.slots.set(this.slotAt(i), sealSlot(data.slice(), i, this.g.seed));
    this.plan.lines.push(line);
  }

  readSlot(i: number, v: DataView = this.view, off: number = this.slotAt(i)): Slot {
    const F = SlotField;
    return {
      i,
      id: readId(v, off + F.id),
      prot: v.getUint16(off + F.prot, true),
      start: v.getUint32(off + F.start, true),
      blocks: v.getUint32(off + F.blocks, true),
      size: v.getUint32(off + F.size, true),
      ties: v.getUint32(off + F.ties, true),
    };
  }

  inBounds(s: Slot): boolean {
    return isValidId(s.id) && s.blocks >= 1 && s.start + s.blocks <= this.g.dataBlocks;
  }

  keep(s: { start: number; blocks: number }): void {
    const end = Math.min(this.g.dataBlocks, s.start + s.blocks);
    for (let b = Math.max(0, s.start); b < end; b++) this.kept[b] = 1;
  }

  /**
   * Keep a record fsck cannot trust. Its extent's blocks are kept too unless
   * `ownExtent` is false (the extent reaches a sound object's blocks, so its
   * first block is wrong: its true blocks, unowned, are recovered).
   */
  distrust(s: Slot, message: string, why: string, ownExtent = true): void {
    this.problem("table", `${message} (not repaired: kept as it is, for /lost+found)`, false);
    this.untrusted.push({ s, why });
    if (ownExtent && this.inBounds(s)) this.keep(s);
  }

  /** Give the blocks of `objects[n]` to it. */
  claim(n: number): void {
    const s = this.objects[n]!;
    const owner = this.owner;
    for (let b = s.start; b < s.start + s.blocks; b++) owner[b] = n;
  }

  /** Slot `i`'s state as the plan leaves it. */
  stateOf(i: number): number {
    const off = this.slotAt(i);
    return this.plan.slots.get(off)?.[SlotField.state] ?? this.bytes[off + SlotField.state]!;
  }

  /**
   * Linear probing stops at an empty slot: make a tombstone of every empty
   * slot between `home` and `i` (reported as a table problem).
   */
  probeFix(home: number, i: number, what: string): void {
    const mask = this.g.tableSlots - 1;
    const blockers: number[] = [];
    for (let j = home; j !== i; j = (j + 1) & mask) {
      if (this.stateOf(j) === EMPTY) blockers.push(j);
    }
    if (blockers.length === 0) return;
    this.problem(
      "table",
      `${what} in slot ${i} is unreachable: empty slot${blockers.length > 1 ? "s" : ""} ${
        blockers.join(", ")
      } break${blockers.length > 1 ? "" : "s"} its probe chain`,
      true,
    );
    for (const j of blockers) {
      this.planSlot(
        j,
        tombRecord(),
        `slot ${j}: made a tombstone so that slot ${i} is reachable again`,
      );
      this.nonEmpty++;
      this.tombstones++;
    }
  }

  /** The first `length` bytes of object data at block `start` (loaded on demand). */
  objectBytes(start: number, length: number): Uint8Array {
    const at = this.g.dataOffset + start * BLOCK;
    this.load(at, length);
    return this.image.subarray(at, at + length);
  }
}
