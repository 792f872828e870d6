// fsck's bitmap checker: every line's check, and the bitmap against which
// blocks the sound objects own. A line failing its check is rebuilt from
// the table; blocks marked used that no sound object owns are freed when the
// table shows no damage, else they become recovered objects for
// /lost+found (as do the extents of damaged records the table checker
// could not prove).
import { Prot } from "../abi/mod.ts";
import { BLOCK } from "../_layout.ts";
import { EMPTY, encodeObject, TOMB } from "../_table.ts";
import { bitmapLines, BLOCKS_PER_LINE, lineCheck, lineCheckOffset, lineSealed } from "../_check.ts";
import type { FsckArea } from "../fsck.ts";
import { hexId, MAX_RECOVERED_BLOCKS, RECOVERED_HI, type Scan } from "./_scan.ts";

/** The u32 at `at` of `bytes` (little-endian; a copy of _scan.ts's, local to the per-block loops). */
function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>>
    0;
}

/** The verdict of every bitmap line's check (`sc.lineOk`), which the table checker needs. */
export function checkBitmapLines(sc: Scan): void {
  const { g, view } = sc;
  const lines = (sc.lines = bitmapLines(g.dataBlocks));
  const lineOk = (sc.lineOk = new Uint8Array(lines));
  for (let l = 0; l < lines; l++) lineOk[l] = lineSealed(view, g, l) ? 1 : 0;
}

/**
 * Check the bitmap against the blocks the sound objects own (after the
 * table and tie checkers); plan its words, and the recovered objects over
 * salvaged extents.
 */
export function checkBitmap(sc: Scan): void {
  const { g, bytes, plan, objects, byId, untrusted, salvage, lostFound, kept, owner, table } = sc;
  const { lines, lineOk } = sc;
  const mask = g.tableSlots - 1;
  const problem = (area: FsckArea, message: string, repairable: boolean) =>
    sc.problem(area, message, repairable);
  const planSlot = (i: number, data: Uint8Array, line: string) => sc.planSlot(i, data, line);
  const stateOf = (i: number) => sc.stateOf(i);
  const claim = (n: number) => sc.claim(n);
  const bitmapOffset = g.bitmapOffset;
  const bitSet = (b: number) => (u32(bytes, bitmapOffset + (b >>> 5) * 4) & (1 << (b & 31))) !== 0;
  // Bitmap against ownership. A line failing its check is rebuilt from the
  // table. Allocated blocks no sound object owns are freed only when the
  // table shows no damage (then the bitmap was wrong); otherwise they may
  // hold a damaged record's data, so they are kept, as recovered objects.
  let unmarked = 0;
  const unmarkedList: number[] = [];
  const orphan = new Uint8Array(g.dataBlocks); // allocated, unowned, not kept
  let orphans = 0;
  let soundLineDisagrees = false;
  let usedBits = 0, owned = 0;
  for (let b = 0; b < g.dataBlocks; b++) {
    const has = bitSet(b);
    if (has) usedBits++;
    if (owner[b]! >= 0) {
      owned++;
      if (!has) {
        unmarked++;
        if (unmarkedList.length < 8) unmarkedList.push(b);
        if (lineOk[b >>> 9]) soundLineDisagrees = true;
      }
    } else if (has && !kept[b]) {
      orphan[b] = 1;
      orphans++;
      if (lineOk[b >>> 9]) soundLineDisagrees = true;
    }
  }
  sc.usedBits = usedBits;
  sc.owned = owned;
  const badLines: number[] = [];
  for (let l = 0; l < lines; l++) if (!lineOk[l]) badLines.push(l);
  if (badLines.length > 0) {
    const first = badLines[0]! * BLOCKS_PER_LINE;
    problem(
      "bitmap",
      `${badLines.length} bitmap line(s) fail their check: line ${badLines.slice(0, 8).join(", ")}${
        badLines.length > 8 ? ", ..." : ""
      } (blocks ${first}-${Math.min(g.dataBlocks, first + BLOCKS_PER_LINE) - 1}${
        badLines.length > 1 ? ", ..." : ""
      }); rebuilt from the table`,
      true,
    );
    plan.lines.push(`bitmap: rebuilt ${badLines.length} damaged line(s) from the table`);
  }
  const tableDamaged = untrusted.length > 0 || sc.unproven > 0 || soundLineDisagrees;
  const recover = orphans > 0 && tableDamaged;
  const runs: Array<[number, number]> = [];
  for (let b = 0; orphans > 0 && b < g.dataBlocks; b++) {
    if (!orphan[b]) continue;
    let e = b;
    while (e < g.dataBlocks && orphan[e] && e - b < MAX_RECOVERED_BLOCKS) e++;
    runs.push([b, e - b]);
    b = e - 1;
  }
  const runList = (r: Array<[number, number]>) =>
    r.slice(0, 8).map(([b, n]) => (n === 1 ? `${b}` : `${b}-${b + n - 1}`)).join(", ") +
    (r.length > 8 ? ", ..." : "");
  if (recover) {
    for (const [start, n] of runs) {
      salvage.push({
        start,
        n,
        reason: `blocks ${start}-${start + n - 1} were allocated but owned by no sound object`,
      });
    }
  }
  // Each salvaged extent becomes an object over its blocks, in a free slot on its probe chain.
  for (const { start, n, reason } of salvage) {
    const id = (RECOVERED_HI << 64n) | BigInt(start);
    let slot = -1;
    for (let k = 0, j = table.homeOfObject(id); k < g.tableSlots && !byId.has(id); k++) {
      const st = stateOf(j);
      if (st === EMPTY || st === TOMB) {
        slot = j;
        break;
      }
      j = (j + 1) & mask;
    }
    if (slot < 0) {
      // No free slot: the blocks stay allocated all the same.
      for (let b = start; b < start + n; b++) kept[b] = 1;
      continue;
    }
    if (stateOf(slot) === EMPTY) sc.nonEmpty++;
    else sc.tombstones--;
    planSlot(
      slot,
      encodeObject({
        id,
        prot: Prot.Read | Prot.Write,
        start,
        blocks: n,
        size: n * BLOCK,
        keyId: 0n,
        ties: 0,
        created: 0,
      }),
      `slot ${slot}: made object ${hexId(id)} over blocks ${start}-${start + n - 1} (${reason})`,
    );
    lostFound.push({ id: hexId(id), reason });
    byId.set(id, objects.length);
    objects.push({ i: slot, id, start, blocks: n, size: n * BLOCK, ties: 0, prot: 3 });
    claim(objects.length - 1);
    sc.owned += n;
  }
  if (recover) {
    problem(
      "bitmap",
      `${orphans} allocated block(s) belong to no sound object while the table is damaged: ${
        runList(runs)
      }; they become recovered objects for /lost+found`,
      true,
    );
  } else if (orphans > 0) {
    const first: number[] = [];
    for (const [b, n] of runs) for (let k = 0; k < n && first.length < 8; k++) first.push(b + k);
    problem(
      "bitmap",
      `${orphans} block(s) marked used belong to no object (leaked): ${first.join(", ")}${
        orphans > first.length ? ", ..." : ""
      }`,
      true,
    );
    plan.lines.push(`bitmap: freed ${orphans} leaked block(s)`);
  }
  let keptFree = 0;
  for (let b = 0; b < g.dataBlocks; b++) if (kept[b] && owner[b]! < 0 && !bitSet(b)) keptFree++;
  if (keptFree > 0) {
    problem(
      "bitmap",
      `${keptFree} block(s) named by records fsck cannot trust are marked free; they are kept (marked used)`,
      true,
    );
    plan.lines.push(`bitmap: marked ${keptFree} block(s) of untrusted records used`);
  }
  if (unmarked > 0) {
    problem(
      "bitmap",
      `${unmarked} block(s) of live objects are marked free (could be handed out twice): ${
        unmarkedList.join(", ")
      }${unmarked > unmarkedList.length ? ", ..." : ""}`,
      true,
    );
    plan.lines.push(`bitmap: marked ${unmarked} block(s) of live objects used`);
  }
  // The words to write: owned blocks set, orphans cleared unless recovered,
  // kept blocks set too (never handed out while a record may own them);
  // then the check of every line changed or damaged.
  const words = Math.ceil(g.dataBlocks / 32);
  const changedLines = new Set<number>(badLines);
  for (let w = 0; w < words; w++) {
    const at = g.bitmapOffset + w * 4;
    const word = u32(bytes, at);
    let want = 0;
    for (let bit = 0; bit < 32; bit++) {
      const b = w * 32 + bit;
      if (b >= g.dataBlocks) break;
      if (owner[b]! >= 0 || kept[b]) want |= 1 << bit;
    }
    want >>>= 0;
    if (word !== want) {
      plan.words.set(at, want);
      changedLines.add(w >>> 4);
    }
  }
  for (const l of changedLines) {
    plan.words.set(
      lineCheckOffset(g, l),
      lineCheck(g, l, (o) => plan.words.get(o) ?? u32(bytes, o)),
    );
  }
}
