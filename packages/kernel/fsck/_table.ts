// fsck's table checker: every slot verified (check and bounds), the blocks
// each sound object owns, damaged slots restored when one field given back
// proves them (else kept for /lost+found, or made tombstones), and every
// object reachable along its probe chain.
import { isValidId, type ObjID, Prot, readId, writeId } from "../abi/mod.ts";
import { BLOCK, SLOT } from "../_layout.ts";
import { EDGE, EMPTY, OBJECT, SlotField, TOMB } from "../_table.ts";
import { slotProblem } from "../_check.ts";
import type { FsckArea } from "../fsck.ts";
import {
  hexId,
  ID_TRIES,
  MAX_RECOVERED_BLOCKS,
  type Scan,
  type Slot,
  tombRecord,
} from "./_scan.ts";

/**
 * Check the object table of `sc` (the metadata as the log checker left
 * it): fills `sc.objects`, `sc.untrusted`, `sc.damaged`, `sc.edgeSlots`,
 * `sc.owner`, `sc.kept`, the counts and the salvage list; plans the slot
 * repairs. Needs the bitmap's line verdicts (`checkBitmapLines`).
 */
/** The u32 at `at` of `bytes` (little-endian). */
function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>>
    0;
}

export function checkTable(sc: Scan): void {
  const { g, bytes, view, table, plan, objects, byId, untrusted, edgeSlots, damaged, salvage } = sc;
  const { dropped, cache } = sc;
  const F = SlotField;
  const problem = (area: FsckArea, message: string, repairable: boolean) =>
    sc.problem(area, message, repairable);
  const slotAt = (i: number) => g.tableOffset + i * SLOT;
  const planSlot = (i: number, data: Uint8Array, line: string) => sc.planSlot(i, data, line);
  const readSlot = (i: number, v: DataView = view, off = slotAt(i)) => sc.readSlot(i, v, off);
  const inBounds = (s: Slot) => sc.inBounds(s);
  const distrust = (s: Slot, message: string, why: string, ownExtent = true) =>
    sc.distrust(s, message, why, ownExtent);
  const kept = (sc.kept = new Uint8Array(g.dataBlocks));
  /** Which sound object (index in `objects`) owns each block (filled below). */
  const owner = (sc.owner = new Int32Array(g.dataBlocks).fill(-1));
  // (Closures over locals declared above them, not calls through `sc`: the
  // searches below call these once per block.)
  const claim = (n: number) => {
    const s = objects[n]!;
    for (let b = s.start; b < s.start + s.blocks; b++) owner[b] = n;
  };
  const firstOwned = (s: { start: number; blocks: number }): number => {
    for (let b = s.start; b < s.start + s.blocks; b++) if (owner[b]! >= 0) return b;
    return -1;
  };
  const { lineOk } = sc;
  const bitmapOffset = g.bitmapOffset;
  /** Whether block `b` may hold data: marked used, or its bitmap line is damaged. */
  const mayBeUsed = (b: number) =>
    (u32(bytes, bitmapOffset + (b >>> 5) * 4) & (1 << (b & 31))) !== 0 || !lineOk[b >>> 9];
  // Object table: every slot is verified (check and bounds).
  const verdicts = cache?.slotVerdicts(bytes, view, g);
  const STATE = F.state, slots = g.tableSlots, tableOffset = g.tableOffset;
  let nonEmpty = 0, edges = 0, tombstones = 0;
  for (let i = 0; i < slots; i++) {
    const state = bytes[tableOffset + i * SLOT + STATE];
    if (state !== EMPTY) nonEmpty++;
    const bad = verdicts ? verdicts[i] : slotProblem(view, g, i);
    if (bad) {
      damaged.push({ i, why: bad });
      continue;
    }
    if (state === OBJECT) {
      const s = readSlot(i);
      if (byId.has(s.id)) {
        distrust(
          s,
          `object ${hexId(s.id)} is in two slots (${objects[byId.get(s.id)!]!.i} and ${i})`,
          "its ID is in two table slots",
        );
        continue;
      }
      byId.set(s.id, objects.length);
      objects.push(s);
    } else if (state === EDGE) {
      edges++;
      edgeSlots.push(i);
    } else if (state === TOMB) tombstones++;
  }
  sc.nonEmpty = nonEmpty;
  sc.edges = edges;
  sc.tombstones = tombstones;

  // Data blocks: which sound object owns each. Two sound records never
  // overlap unless the kernel erred; then the first keeps the blocks and the
  // other is not trusted (never freed).
  {
    const all = objects.splice(0);
    byId.clear();
    for (const s of all) {
      const b = firstOwned(s);
      if (b >= 0) {
        const o = objects[owner[b]!]!;
        distrust(
          s,
          `objects ${hexId(o.id)} (slot ${o.i}) and ${
            hexId(s.id)
          } (slot ${s.i}) overlap at block ${b}; the blocks stay with ${hexId(o.id)}`,
          `its extent overlaps object ${hexId(o.id)}`,
          false,
        );
        continue;
      }
      byId.set(s.id, objects.length);
      objects.push(s);
      claim(objects.length - 1);
    }
  }
  // Damaged slots. A slot whose check holds once one field is given back a
  // value it can have had (its state, flags, protections, block count,
  // size, tie count or first block) is proven: restore it. Otherwise an
  // object record is kept as it is (never freed), anything else becomes a
  // tombstone (it keeps probe chains whole); blocks it held are kept below.
  const scratch = new Uint8Array(SLOT);
  const sv = new DataView(scratch.buffer);
  const tries = (i: number, set: (v: DataView) => void): boolean => {
    scratch.set(bytes.subarray(slotAt(i), slotAt(i) + SLOT));
    set(sv);
    return slotProblem(sv, { ...g, tableOffset: -i * SLOT }, i) === undefined;
  };
  let startSearches = 0;
  let idTries = ID_TRIES;
  let idList: Array<{ id: ObjID; ties: number }> | undefined;
  /**
   * The IDs of every object record (sound, not trusted, or damaged with a
   * valid ID) and their tie counts (unbounded for a damaged record's).
   */
  const objectIds = () => {
    if (idList) return idList;
    const all = new Map<ObjID, number>(objects.map((s) => [s.id, s.ties]));
    for (const { s } of untrusted) if (isValidId(s.id)) all.set(s.id, Infinity);
    for (const { i } of damaged) {
      const id = readId(view, slotAt(i));
      if (bytes[slotAt(i) + F.state] === OBJECT && isValidId(id)) all.set(id, Infinity);
    }
    return idList = [...all].map(([id, ties]) => ({ id, ties }));
  };
  let edgeCount: Map<ObjID, number> | undefined;
  /** How many sound tie edges name each parent (a tie count's likely value). */
  const edgesOf = () => {
    if (edgeCount) return edgeCount;
    edgeCount = new Map();
    for (const e of edgeSlots) {
      const p = readId(view, slotAt(e));
      edgeCount.set(p, (edgeCount.get(p) ?? 0) + 1);
    }
    return edgeCount;
  };
  const prove = (i: number): Uint8Array | undefined => {
    const off = slotAt(i);
    // A check of 0 is never valid: a zeroed slot changed in one field stays invalid.
    if (view.getUint32(off + F.check, true) === 0) return undefined;
    const blocks = view.getUint32(off + F.blocks, true), size = view.getUint32(off + F.size, true);
    const id = readId(view, off);
    const candidates: Array<(v: DataView) => void> = [];
    for (const st of [OBJECT, EMPTY, TOMB, EDGE]) candidates.push((v) => v.setUint8(F.state, st));
    candidates.push((v) => v.setUint8(F.flags, 0));
    for (let p = 0; p <= Prot.All; p++) candidates.push((v) => v.setUint16(F.prot, p, true));
    candidates.push((v) => v.setUint32(F.blocks, Math.ceil(size / BLOCK), true));
    if (blocks >= 1 && blocks <= MAX_RECOVERED_BLOCKS) {
      for (let z = (blocks - 1) * BLOCK + 1; z <= blocks * BLOCK; z++) {
        candidates.push((v) => v.setUint32(F.size, z, true));
      }
    }
    const ties = edgesOf().get(id) ?? 0;
    for (const t of [ties, ties + 1]) candidates.push((v) => v.setUint32(F.ties, t, true));
    for (const c of candidates) if (tries(i, c)) return scratch.slice();
    // A tie edge whose parent or dependent ID is damaged: give it back the
    // ID of each object the table holds (the check proves the right one).
    // A parent must have more ties than the edge's index (a damaged record's
    // count is not trusted: it stays a candidate). Bounded: at most
    // ID_TRIES tries in all.
    if (view.getUint8(off + F.state) === EDGE) {
      const k = view.getUint32(off + F.ties, true);
      for (const at of [F.id, F.key]) {
        for (const x of objectIds()) {
          if (at === F.id && x.ties <= k) continue;
          if (idTries-- <= 0) break;
          if (tries(i, (v) => writeId(v, at, x.id))) return scratch.slice();
        }
      }
    }
    // The first block: try every start whose blocks no sound object owns.
    if (blocks >= 1 && blocks <= g.dataBlocks && startSearches++ < 16) {
      let run = 0;
      for (let b = 0; b < g.dataBlocks; b++) {
        run = owner[b]! < 0 && mayBeUsed(b) ? run + 1 : 0;
        if (run >= blocks && tries(i, (v) => v.setUint32(F.start, b - blocks + 1, true))) {
          return scratch.slice();
        }
      }
    }
    return undefined;
  };
  for (const { i, why } of damaged) {
    const off = slotAt(i);
    const raw = readSlot(i);
    const state = bytes[off + F.state];
    const fixed = prove(i);
    if (fixed) {
      const fv = new DataView(fixed.buffer);
      const was = fixed[F.state];
      const changed = describeChange(bytes.subarray(off, off + SLOT), fixed);
      if (was === OBJECT) {
        const s = readSlot(i, fv, 0);
        if (!byId.has(s.id) && firstOwned(s) < 0) {
          problem(
            "table",
            `slot ${i} fails its check (${why}); its record of object ${
              hexId(s.id)
            } checks again with ${changed}`,
            true,
          );
          plan.slots.set(off, fixed);
          plan.lines.push(`slot ${i}: restored object ${hexId(s.id)} (${changed})`);
          byId.set(s.id, objects.length);
          objects.push(s);
          claim(objects.length - 1);
          if (state === EMPTY) sc.nonEmpty++;
          continue;
        }
      } else {
        problem(
          "table",
          `slot ${i} fails its check (${why}); it checks again with ${changed}`,
          true,
        );
        plan.slots.set(off, fixed);
        plan.lines.push(`slot ${i}: restored its record (${changed})`);
        if (was === EMPTY && state !== EMPTY) sc.nonEmpty--;
        if (was !== EMPTY && state === EMPTY) sc.nonEmpty++;
        if (was === TOMB) sc.tombstones++;
        if (was === EDGE) {
          sc.edges++;
          edgeSlots.push(i);
        }
        continue;
      }
    }
    if (state === OBJECT && isValidId(raw.id) && inBounds(raw) && firstOwned(raw) < 0) {
      // Its extent is plausible (inside the data area, no sound object's
      // blocks): its record becomes a tombstone and its blocks an object of
      // their own, for /lost+found.
      sc.unproven++;
      const end = raw.start + raw.blocks - 1;
      problem(
        "table",
        `slot ${i} holds object ${
          hexId(raw.id)
        } but fails its check (${why}) and cannot be restored: its blocks ${raw.start}-${end} become a recovered object for /lost+found`,
        true,
      );
      planSlot(
        i,
        tombRecord(),
        `slot ${i}: made a tombstone of the damaged record of ${hexId(raw.id)}`,
      );
      sc.tombstones++;
      for (let b = raw.start; b <= end; b++) kept[b] = 1;
      salvage.push({
        start: raw.start,
        n: raw.blocks,
        reason: `was object ${hexId(raw.id)} (slot ${i}: ${why}); blocks ${raw.start}-${end}`,
      });
      continue;
    }
    sc.unproven++;
    if (state === EDGE) {
      // Neither its parent nor its dependent could be proven: the tie it
      // kept is lost (the repair says so and is not clean).
      const parent = readId(view, off), child = readId(view, off + F.key);
      const named = [
        isValidId(parent) ? `parent ${hexId(parent)}` : "",
        isValidId(child) ? `dependent ${hexId(child)}` : "",
      ].filter((x) => x !== "").join(", ");
      const tie = `the tie edge in slot ${i}${named ? ` (${named}, as it reads)` : ""}`;
      problem(
        "ties",
        `${tie} fails its check (${why}) and cannot be restored: repair removes it, and the tie it kept is lost`,
        true,
      );
      planSlot(i, tombRecord(), `slot ${i}: made a tombstone of a damaged tie edge`);
      dropped.push(`${tie} could not be restored: a dependent is no longer tied to its parent`);
      sc.tombstones++;
      continue;
    }
    problem(
      "table",
      `slot ${i} fails its check (${why}) and cannot be restored: it becomes a tombstone; blocks it held are kept`,
      true,
    );
    planSlot(i, tombRecord(), `slot ${i}: made a tombstone of a damaged slot`);
    if (state === EMPTY) sc.nonEmpty++;
    sc.tombstones++;
  }

  // Reachability: linear probing stops at an empty slot, so every object must
  // be reachable from its home slot without crossing one.
  for (const o of objects) sc.probeFix(table.homeOfObject(o.id), o.i, `object ${hexId(o.id)}`);
  for (const { s: u } of untrusted) {
    if (isValidId(u.id)) sc.probeFix(table.homeOfObject(u.id), u.i, `object ${hexId(u.id)}`);
  }
}

/** Which field `fixed` gives back to the slot `was`, in words. */
function describeChange(was: Uint8Array, fixed: Uint8Array): string {
  const F = SlotField;
  const edge = fixed[F.state] === EDGE;
  const wv = new DataView(was.buffer, was.byteOffset, SLOT);
  const fv = new DataView(fixed.buffer, fixed.byteOffset, SLOT);
  for (const [name, at] of [[edge ? "parent ID" : "ID", F.id], ["dependent ID", F.key]] as const) {
    if (at === F.key && !edge) continue;
    const w = readId(wv, at), f = readId(fv, at);
    if (w !== f) return `its ${name} ${hexId(w)} restored to ${hexId(f)}`;
  }
  const fields: Array<[string, number, number]> = [
    ["state", F.state, 1],
    ["flags", F.flags, 1],
    ["protections", F.prot, 2],
    ["first block", F.start, 4],
    ["block count", F.blocks, 4],
    ["size", F.size, 4],
    [edge ? "edge index" : "tie count", F.ties, 4],
  ];
  for (const [name, at, n] of fields) {
    let v = 0, w = 0;
    for (let k = n - 1; k >= 0; k--) {
      v = v * 256 + fixed[at + k]!;
      w = w * 256 + was[at + k]!;
    }
    if (v !== w) return `its ${name} ${w} restored to ${v}`;
  }
  return "no field changed";
}
