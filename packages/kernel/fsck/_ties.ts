// fsck's tie checker: every sound tie edge names an existing parent, a
// valid dependent and an index below its parent's tie count, once; an edge
// that does not is removed (a tie edge whose slot fails its check is the
// table checker's).
import { isValidId, readId } from "../abi/mod.ts";
import { SLOT } from "../_layout.ts";
import { SlotField } from "../_table.ts";
import { hexId, type Scan, tombRecord } from "./_scan.ts";

/** Check the tie edges the table checker found (`sc.edgeSlots`); plans their repairs. */
export function checkTies(sc: Scan): void {
  const { bytes, plan, objects, byId, untrusted, edgeSlots, table } = sc;
  const F = SlotField;
  const slotAt = (i: number) => sc.slotAt(i);
  const problem = (message: string) => sc.problem("ties", message, true);
  const planSlot = (i: number, data: Uint8Array, line: string) => sc.planSlot(i, data, line);
  const probeFix = (home: number, i: number, what: string) => sc.probeFix(home, i, what);
  // Tie edges.
  const seenEdge = new Set<string>();
  for (const i of edgeSlots) {
    const off = slotAt(i);
    const ev = plan.slots.has(off)
      ? new DataView(plan.slots.get(off)!.buffer)
      : new DataView(bytes.buffer, bytes.byteOffset + off, SLOT);
    const parent = readId(ev, F.id);
    const child = readId(ev, F.key);
    const k = ev.getUint32(F.ties, true);
    const p = byId.has(parent) ? objects[byId.get(parent)!] : undefined;
    const drop = (why: string) => {
      problem(`tie edge in slot ${i} ${why}`);
      planSlot(i, tombRecord(), `slot ${i}: removed a tie edge that ${why}`);
      sc.edges--;
      sc.tombstones++;
    };
    if (!p) {
      if (untrusted.some((u) => u.s.id === parent)) {
        // Its parent's record is not trusted: the edge stays with it.
        probeFix(table.homeOfEdge(parent, k), i, `tie edge ${k} of ${hexId(parent)}`);
        continue;
      }
      drop(`names parent ${hexId(parent)}, which does not exist`);
    } else if (!isValidId(child)) drop(`names an invalid dependent ${hexId(child)}`);
    else if (k >= p.ties) drop(`has index ${k} beyond its parent's ${p.ties} ties`);
    else if (seenEdge.has(`${parent}:${k}`)) drop(`duplicates edge ${k} of ${hexId(parent)}`);
    else {
      seenEdge.add(`${parent}:${k}`);
      probeFix(table.homeOfEdge(parent, k), i, `tie edge ${k} of ${hexId(parent)}`);
    }
  }
}
