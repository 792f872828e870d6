/**
 * `fsck` for Twizzler images: check every kernel structure of an image (the
 * superblock, root record, metadata log, object table, block bitmap and tie
 * edges) and, when asked, repair what can be repaired safely.
 *
 * Checking never writes. An image whose log holds a committed transaction
 * (a crash between commit and apply) is checked as boot would see it, with
 * the transaction replayed on a private copy. Repairs go through the kernel's
 * own redo log, so a crash during a repair leaves either the old or the
 * repaired metadata; running fsck again finishes the job.
 *
 * @example Check an image in memory
 * ```ts ignore
 * import { fsck } from "@twz/kernel";
 * const report = fsck(Deno.readFileSync("twz.img"));
 * for (const p of report.problems) console.log(`${p.area}: ${p.message}`);
 * ```
 *
 * @module
 */
import type { Hal, PersistentRegion } from "./hal/mod.ts";
import { formatId, isValidId, type ObjID, Prot, readId, TwzError } from "./abi/mod.ts";
import { BLOCK, decodeSuperblock, type Geometry, isBlank, metadataTest, SLOT } from "./_layout.ts";
import { LOG_HEADER, MetaLog, parseLog } from "./_log.ts";
import { EDGE, EMPTY, OBJECT, Table, TOMB } from "./_table.ts";
import { decodeRoot, encodeRoot } from "./_root.ts";

// Formats kept by other kernel files (private there); fsck reads them too.

/** Which structure a problem is in. */
export type FsckArea = "superblock" | "root" | "log" | "table" | "bitmap" | "ties";

/** One thing wrong with an image. */
export interface FsckProblem {
  /** The structure it is in. */
  area: FsckArea;
  /** One line: what is wrong, naming slots, blocks and IDs. */
  message: string;
  /** Whether `repair` fixes it. */
  repairable: boolean;
}

/** Options for {@linkcode fsck}. */
export interface FsckOptions {
  /**
   * Repair what can be repaired safely, through the metadata log.
   * @default {false}
   */
  repair?: boolean;
  /**
   * Ask for user-space (libtwz) structures too. The kernel cannot import
   * libtwz, so this only adds a note saying they were skipped: use
   * `checkObjects` of `@twz/libtwz/check` (what `twz fsck --deep` runs).
   * @default {false}
   */
  deep?: boolean;
}

/** Counts fsck saw. */
export interface FsckSummary {
  objects: number;
  edges: number;
  tombstones: number;
  tableSlots: number;
  dataBlocks: number;
  usedBlocks: number;
  /** `empty`, `committed` (boot replays it), `torn` (boot ignores it) or `garbage`. */
  log: "empty" | "committed" | "torn" | "garbage";
}

/** What {@linkcode fsck} found and did. */
export interface FsckReport {
  /** `true` when no problem remains (after repairs, with `repair`). */
  clean: boolean;
  /** Problems found by the first check. */
  problems: FsckProblem[];
  /** What `repair` did, one line each (empty without `repair`). */
  repairs: string[];
  /** Problems left after repairs (the same as `problems` without `repair`). */
  remaining: FsckProblem[];
  /** Facts worth knowing that are not problems. */
  notes: string[];
  /** Counts; absent when the superblock cannot be read. */
  summary?: FsckSummary;
}

/** A planned repair: writes through a MetaTx, plus what it says. */
interface Plan {
  slots: Map<number, Uint8Array>;
  words: Map<number, number>;
  clearLog: boolean;
  rebuildRoot: boolean;
  lines: string[];
}

interface Analysis {
  problems: FsckProblem[];
  notes: string[];
  summary?: FsckSummary;
  plan: Plan;
  geometry?: Geometry;
  replayLog: boolean;
}

const hexId = (id: ObjID) => formatId(id);

function anyNonZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return true;
  return false;
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** The committed log's records `[offset, from, length]`, or why there are none. */
function readLog(
  bytes: Uint8Array,
  g: Geometry,
  isMetadata: (o: number, l: number) => boolean,
): { state: FsckSummary["log"]; records: Array<[number, number, number]>; bad?: string } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parsed = parseLog(view, g.logOffset, g.logSize, isMetadata);
  if (parsed.state === "garbage" && parsed.outside) {
    parsed.bad += " (boot refuses such an image)";
  }
  return { state: parsed.state, records: parsed.records, bad: parsed.bad };
}

interface Slot {
  i: number;
  id: ObjID;
  start: number;
  blocks: number;
  size: number;
  ties: number;
  prot: number;
}

/** Check `bytes` (not modified). */
function analyze(bytes: Uint8Array, deep: boolean): Analysis {
  const problems: FsckProblem[] = [];
  const notes: string[] = [];
  const plan: Plan = {
    slots: new Map(),
    words: new Map(),
    clearLog: false,
    rebuildRoot: false,
    lines: [],
  };
  const problem = (area: FsckArea, message: string, repairable: boolean) =>
    problems.push({ area, message, repairable });
  if (isBlank(bytes)) {
    problem("superblock", "the superblock is blank: the image was never formatted", false);
    return { problems, notes, plan, replayLog: false };
  }
  let g: Geometry;
  try {
    g = decodeSuperblock(bytes);
  } catch (error) {
    if (!(error instanceof TwzError)) throw error;
    problem("superblock", error.message, false);
    return { problems, notes, plan, replayLog: false };
  }

  // The log: check it as boot would, and look at the image as boot would see it.
  const isMetadata = metadataTest(g);
  const log = readLog(bytes, g, isMetadata);
  let replayLog = false;
  if (log.bad) {
    problem("log", log.bad, true);
    plan.clearLog = true;
    plan.lines.push("cleared the metadata log header");
  } else if (log.state === "torn") {
    notes.push("the log holds an uncommitted (torn) transaction; boot ignores it");
  } else if (log.state === "committed") {
    let differs = false;
    for (const [offset, from, length] of log.records) {
      for (let k = 0; k < length && !differs; k++) {
        if (bytes[offset + k] !== bytes[from + k]) differs = true;
      }
    }
    if (differs) {
      notes.push(
        `the log holds a committed transaction of ${log.records.length} records not yet applied; boot replays it (checked as replayed)`,
      );
      replayLog = true;
      const copy = bytes.slice();
      for (const [offset, from, length] of log.records) {
        copy.copyWithin(offset, from, from + length);
      }
      bytes = copy;
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const table = new Table(view, g.tableOffset, g.tableSlots);

  // Root record.
  const ro = g.rootOffset;
  const root = decodeRoot(bytes, ro);
  let rootOk = root !== undefined;
  if (!rootOk) problem("root", "the root record is damaged (bad magic or checksum)", true);

  // Object table.
  const objects: Slot[] = [];
  const byId = new Map<ObjID, number>();
  let edges = 0;
  let tombstones = 0;
  let nonEmpty = 0;
  const edgeSlots: number[] = [];
  const suspicious: number[] = [];
  const tomb = new Uint8Array(SLOT);
  tomb[16] = TOMB;
  const planSlot = (i: number, data: Uint8Array, line: string) => {
    plan.slots.set(g.tableOffset + i * SLOT, data);
    plan.lines.push(line);
  };
  const readSlot = (i: number): Slot => {
    const s = table.readObject(i);
    return {
      i,
      id: s.id,
      start: s.start,
      blocks: s.blocks,
      size: s.size,
      ties: s.ties,
      prot: s.prot,
    };
  };
  const extentError = (s: Slot): string | undefined => {
    if (!isValidId(s.id)) return `has an invalid ID ${hexId(s.id)}`;
    if (s.blocks < 1 || s.size < 1) {
      return `has an empty extent (${s.blocks} blocks, ${s.size} bytes)`;
    }
    if (s.size > s.blocks * BLOCK) return `is ${s.size} bytes but has only ${s.blocks} blocks`;
    if (s.start + s.blocks > g.dataBlocks) {
      return `has blocks [${s.start}, ${
        s.start + s.blocks
      }) outside the ${g.dataBlocks} data blocks`;
    }
    if (s.prot > Prot.All) return `has protections ${s.prot} beyond rwx`;
    return undefined;
  };
  // Blocks of object records fsck reports but does not repair: never freed,
  // since their data may matter.
  const kept = new Uint8Array(g.dataBlocks);
  const keep = (s: { start: number; blocks: number }) => {
    const end = Math.min(g.dataBlocks, s.start + s.blocks);
    for (let b = Math.max(0, s.start); b < end; b++) kept[b] = 1;
  };
  for (let i = 0; i < g.tableSlots; i++) {
    const off = g.tableOffset + i * SLOT;
    const state = bytes[off + 16];
    if (state !== EMPTY) nonEmpty++;
    if (state === OBJECT) {
      const s = readSlot(i);
      const bad = extentError(s);
      if (bad) {
        const noData = s.blocks === 0 && s.size === 0;
        problem(
          "table",
          `slot ${i} holds object ${hexId(s.id)} that ${bad}${
            noData ? "" : " (not repaired: its data may matter)"
          }`,
          noData,
        );
        if (noData) {
          planSlot(i, tomb, `slot ${i}: made a tombstone of an object record without data`);
        } else keep(s);
        continue;
      }
      if (byId.has(s.id)) {
        problem(
          "table",
          `object ${hexId(s.id)} is in two slots (${byId.get(s.id)} and ${i})`,
          false,
        );
        keep(s);
        continue;
      }
      byId.set(s.id, objects.length);
      objects.push(s);
    } else if (state === EDGE) {
      edges++;
      edgeSlots.push(i);
    } else if (state === TOMB) {
      tombstones++;
      if (anyNonZero(bytes, off, off + 16)) suspicious.push(i);
    } else if (state === EMPTY) {
      if (anyNonZero(bytes, off, off + SLOT)) suspicious.push(i);
    } else {
      suspicious.push(i);
    }
  }

  // Data blocks: which object owns each, and overlaps.
  const owner = new Int32Array(g.dataBlocks).fill(-1);
  const overlapping = new Set<number>();
  for (let n = 0; n < objects.length; n++) {
    const s = objects[n];
    for (let b = s.start; b < s.start + s.blocks; b++) {
      if (owner[b] >= 0 && owner[b] !== n) {
        const o = objects[owner[b]];
        const key = Math.min(o.i, s.i) * g.tableSlots + Math.max(o.i, s.i);
        if (!overlapping.has(key)) {
          overlapping.add(key);
          problem(
            "table",
            `objects ${hexId(o.id)} (slot ${o.i}) and ${
              hexId(s.id)
            } (slot ${s.i}) overlap at block ${b}`,
            false,
          );
        }
      } else owner[b] = n;
    }
  }
  const bitSet = (b: number) =>
    (u32(bytes, g.bitmapOffset + (b >>> 5) * 4) & (1 << (b & 31))) !== 0;

  // Slots that are not objects but hold an object's record whose blocks are
  // allocated and owned by no one: a flipped state byte. Restore them.
  for (const i of suspicious) {
    const off = g.tableOffset + i * SLOT;
    const state = bytes[off + 16];
    const s = readSlot(i);
    const what = state === EMPTY
      ? "marked empty"
      : state === TOMB
      ? "a tombstone"
      : `in unknown state ${state}`;
    let restorable = extentError(s) === undefined && !byId.has(s.id);
    for (let b = s.start; restorable && b < s.start + s.blocks; b++) {
      if (owner[b] >= 0 || !bitSet(b)) restorable = false;
    }
    if (restorable) {
      problem(
        "table",
        `slot ${i} is ${what} but holds object ${
          hexId(s.id)
        }, whose blocks are allocated and unowned`,
        true,
      );
      const fixed = bytes.slice(off, off + SLOT);
      fixed[16] = OBJECT;
      planSlot(i, fixed, `slot ${i}: restored object ${hexId(s.id)}`);
      byId.set(s.id, objects.length);
      objects.push(s);
      for (let b = s.start; b < s.start + s.blocks; b++) owner[b] = objects.length - 1;
      if (state === EMPTY) nonEmpty++;
      if (state === TOMB) tombstones--;
    } else if (state !== EMPTY && state !== TOMB) {
      problem("table", `slot ${i} is in unknown state ${state}`, true);
      planSlot(i, tomb, `slot ${i}: made a tombstone of a slot in unknown state ${state}`);
      tombstones++;
    }
  }

  // Reachability: linear probing stops at an empty slot, so every object must
  // be reachable from its home slot without crossing one.
  const planned = (i: number) => plan.slots.get(g.tableOffset + i * SLOT)?.[16];
  const stateOf = (i: number) => planned(i) ?? bytes[g.tableOffset + i * SLOT + 16];
  const mask = g.tableSlots - 1;
  const probeFix = (home: number, i: number, what: string) => {
    const blockers: number[] = [];
    for (let j = home; j !== i; j = (j + 1) & mask) if (stateOf(j) === EMPTY) blockers.push(j);
    if (blockers.length === 0) return;
    problem(
      "table",
      `${what} in slot ${i} is unreachable: empty slot${blockers.length > 1 ? "s" : ""} ${
        blockers.join(", ")
      } break${blockers.length > 1 ? "" : "s"} its probe chain`,
      true,
    );
    for (const j of blockers) {
      planSlot(j, tomb, `slot ${j}: made a tombstone so that slot ${i} is reachable again`);
      nonEmpty++;
      tombstones++;
    }
  };
  for (const s of objects) {
    probeFix(table.homeOfObject(s.id), s.i, `object ${hexId(s.id)}`);
  }

  // Tie edges.
  const seenEdge = new Set<string>();
  for (const i of edgeSlots) {
    const off = g.tableOffset + i * SLOT;
    const parent = readId(view, off);
    const child = readId(view, off + 32);
    const k = view.getUint32(off + 48, true);
    const p = byId.has(parent) ? objects[byId.get(parent)!] : undefined;
    const drop = (why: string) => {
      problem("ties", `tie edge in slot ${i} ${why}`, true);
      planSlot(i, tomb, `slot ${i}: removed a tie edge that ${why}`);
      edges--;
      tombstones++;
    };
    if (!p) drop(`names parent ${hexId(parent)}, which does not exist`);
    else if (!isValidId(child)) drop(`names an invalid dependent ${hexId(child)}`);
    else if (k >= p.ties) drop(`has index ${k} beyond its parent's ${p.ties} ties`);
    else if (seenEdge.has(`${parent}:${k}`)) drop(`duplicates edge ${k} of ${hexId(parent)}`);
    else {
      seenEdge.add(`${parent}:${k}`);
      probeFix(table.homeOfEdge(parent, k), i, `tie edge ${k} of ${hexId(parent)}`);
    }
  }

  // Bitmap against ownership.
  let usedBits = 0;
  let owned = 0;
  const words = Math.ceil(g.dataBlocks / 32);
  let leaked = 0;
  let unmarked = 0;
  const leakedList: number[] = [];
  const unmarkedList: number[] = [];
  for (let w = 0; w < words; w++) {
    const at = g.bitmapOffset + w * 4;
    const word = u32(bytes, at);
    let want = 0;
    for (let bit = 0; bit < 32; bit++) {
      const b = w * 32 + bit;
      if (b >= g.dataBlocks) break;
      if (owner[b] >= 0) {
        want |= 1 << bit;
        owned++;
      } else if (kept[b]) {
        want |= 1 << bit; // reported above, never freed
      }
    }
    want >>>= 0;
    for (let bit = 0; bit < 32; bit++) if (word & (1 << bit)) usedBits++;
    if (word !== want) {
      for (let bit = 0; bit < 32; bit++) {
        const has = (word & (1 << bit)) !== 0, should = (want & (1 << bit)) !== 0;
        if (has && !should) {
          leaked++;
          if (leakedList.length < 8) leakedList.push(w * 32 + bit);
        } else if (!has && should) {
          unmarked++;
          if (unmarkedList.length < 8) unmarkedList.push(w * 32 + bit);
        }
      }
      plan.words.set(at, want);
    }
  }
  const list = (l: number[], n: number) => l.join(", ") + (n > l.length ? ", ..." : "");
  if (leaked > 0) {
    problem(
      "bitmap",
      `${leaked} block(s) marked used belong to no object (leaked): ${list(leakedList, leaked)}`,
      true,
    );
    plan.lines.push(`bitmap: freed ${leaked} leaked block(s)`);
  }
  if (unmarked > 0) {
    problem(
      "bitmap",
      `${unmarked} block(s) of live objects are marked free (could be handed out twice): ${
        list(unmarkedList, unmarked)
      }`,
      true,
    );
    plan.lines.push(`bitmap: marked ${unmarked} block(s) of live objects used`);
  }

  // Root counters against what the table and bitmap say (as repaired).
  if (root) {
    const { objects: objectsCount, slotsUsed, freeBlocks, cursor, rootObject } = root;
    const check = (what: string, has: number, want: number) => {
      if (has !== want) {
        problem("root", `the root record counts ${has} ${what}; the image holds ${want}`, true);
        rootOk = false;
      }
    };
    check("objects", objectsCount, objects.length);
    check("used table slots", slotsUsed, nonEmpty);
    check("free blocks", freeBlocks, g.dataBlocks - owned);
    if (cursor > g.dataBlocks) {
      problem(
        "root",
        `the allocation cursor ${cursor} lies beyond the ${g.dataBlocks} blocks`,
        true,
      );
      rootOk = false;
    }
    if (rootObject !== 0n && !byId.has(rootObject)) {
      notes.push(
        `the root object ${hexId(rootObject)} does not exist (it is made again when asked for)`,
      );
    }
  }
  if (!rootOk) {
    plan.rebuildRoot = true;
    plan.lines.push("rebuilt the root record's counters from the table and bitmap");
  }
  if (deep) {
    notes.push(
      "deep: the kernel's fsck does not read libtwz structures (checkObjects of @twz/libtwz/check does; twz fsck --deep runs both); skipped",
    );
  }
  return {
    problems,
    notes,
    plan,
    geometry: g,
    replayLog,
    summary: {
      objects: objects.length,
      edges,
      tombstones,
      tableSlots: g.tableSlots,
      dataBlocks: g.dataBlocks,
      usedBlocks: usedBits,
      log: log.state,
    },
  };
}

/** A region over plain bytes, for checking an image held in memory. */
function bytesRegion(bytes: Uint8Array): PersistentRegion {
  return {
    size: bytes.length,
    granularity: "byte",
    bytes,
    flush() {},
    drain() {},
    persist() {},
    share: () => {
      throw new TypeError("An in-memory fsck region cannot be shared");
    },
  };
}

function encodeRootFrom(bytes: Uint8Array, g: Geometry, a: Analysis): Uint8Array {
  const old = new DataView(bytes.buffer, bytes.byteOffset + g.rootOffset, 64);
  // Used slots and free blocks are counted again after the slot and bitmap fixes.
  let nonEmpty = 0;
  for (let i = 0; i < g.tableSlots; i++) {
    if (bytes[g.tableOffset + i * SLOT + 16] !== EMPTY) nonEmpty++;
  }
  let used = 0;
  for (let b = 0; b < g.dataBlocks; b++) {
    if (u32(bytes, g.bitmapOffset + (b >>> 5) * 4) & (1 << (b & 31))) used++;
  }
  const cursor = old.getUint32(16, true);
  const generation = old.getFloat64(24, true);
  const rootObject = readId(old, 32);
  return encodeRoot({
    objects: a.summary!.objects,
    slotsUsed: nonEmpty,
    freeBlocks: g.dataBlocks - used,
    cursor: cursor > g.dataBlocks ? 0 : cursor,
    generation: Number.isFinite(generation) ? generation + 1 : 1,
    rootObject: isValidId(rootObject) ? rootObject : 0n,
  });
}

/**
 * Check (and with `repair`, repair) a Twizzler image.
 *
 * `target` is an open HAL or region (repairs are made durable through its
 * flush and drain, in the kernel's log order), or the bytes of an image
 * (repairs change them in place). Do not run it with `repair` while a kernel
 * is booted on the same region: the kernel keeps counters in memory.
 *
 * @param target The image: a {@linkcode Hal}, a {@linkcode PersistentRegion} or bytes.
 * @param options `repair`, `deep`.
 * @returns What was found, what was repaired, and what remains.
 *
 * @example Check, then repair
 * ```ts ignore
 * import { fsck } from "@twz/kernel";
 * const report = fsck(hal);
 * if (!report.clean) console.log(fsck(hal, { repair: true }).repairs);
 * ```
 */
export function fsck(
  target: Hal | PersistentRegion | Uint8Array,
  options: FsckOptions = {},
): FsckReport {
  const region = target instanceof Uint8Array
    ? bytesRegion(target)
    : "region" in target
    ? target.region
    : target;
  const deep = options.deep ?? false;
  const first = analyze(region.bytes, deep);
  if (!options.repair) {
    return {
      clean: first.problems.length === 0,
      problems: first.problems,
      repairs: [],
      remaining: first.problems,
      notes: first.notes,
      summary: first.summary,
    };
  }
  const repairs: string[] = [];
  const g = first.geometry;
  if (g) {
    const log = new MetaLog(region, g.logOffset, g.logSize, metadataTest(g));
    let a = first;
    if (a.replayLog) {
      const n = log.recover();
      repairs.push(`replayed the committed metadata log (${n} records)`);
      a = analyze(region.bytes, deep);
    }
    if (a.plan.clearLog) {
      region.bytes.fill(0, g.logOffset, g.logOffset + LOG_HEADER);
      region.persist(g.logOffset, LOG_HEADER);
    }
    const hasWrites = a.plan.slots.size > 0 || a.plan.words.size > 0;
    if (hasWrites) {
      let tx = log.begin();
      let bytesInTx = 0;
      // Commit in batches that fit the log: `cost` is the log bytes of the
      // record just added (a slot 80, a word at most 24).
      const added = (cost: number) => {
        bytesInTx += cost;
        if (bytesInTx > log.capacity - 4096) {
          log.commit(tx);
          tx = log.begin();
          bytesInTx = 0;
        }
      };
      for (const [offset, data] of a.plan.slots) {
        tx.put(offset, data);
        added(80);
      }
      for (const [offset, value] of a.plan.words) {
        tx.setU32(offset, value);
        added(24);
      }
      log.commit(tx);
    }
    if (a.plan.rebuildRoot || hasWrites) {
      const root = encodeRootFrom(region.bytes, g, a);
      const old = region.bytes.subarray(g.rootOffset, g.rootOffset + 64);
      if (root.some((b, i) => i < 24 && b !== old[i]) || a.plan.rebuildRoot) {
        const tx = log.begin();
        tx.put(g.rootOffset, root);
        log.commit(tx);
      }
    }
    repairs.push(...a.plan.lines);
  }
  const after = analyze(region.bytes, deep);
  return {
    clean: after.problems.length === 0,
    problems: first.problems,
    repairs,
    remaining: after.problems,
    notes: after.notes,
    summary: after.summary,
  };
}
