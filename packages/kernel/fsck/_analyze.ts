// One analysis of an image: fsck's checkers, one per area, in the order
// their findings depend on each other (and are reported in).
import { isValidId } from "../abi/mod.ts";
import type { FsckCache } from "../fsck.ts";
import type { ImageOverlay } from "../overlay.ts";
import { type Analysis, hexId, Scan } from "./_scan.ts";
import { checkSuperblock } from "./_superblock.ts";
import { checkLog } from "./_log.ts";
import { checkRoot, checkRootRecord } from "./_root.ts";
import { checkTable } from "./_table.ts";
import { checkTies } from "./_ties.ts";
import { checkBitmap, checkBitmapLines } from "./_bitmap.ts";

/**
 * Check the image `overlay` presents (its bytes are left as they were: a
 * committed log replayed for the analysis is rolled back).
 *
 * @param overlay The image.
 * @param load Reads bytes of the image into the overlay (see `FsckImage.load`).
 * @param inPlace Whether the overlay's bytes may change for the time of the
 * call (else a replay goes to an overlay of its own).
 * @param deep Whether libtwz structures were asked for (a note says they are not checked here).
 * @param cache Verdicts of earlier runs (see `FsckCache`).
 */
export function analyze(
  overlay: ImageOverlay,
  load: (offset: number, length: number) => void,
  inPlace: boolean,
  deep: boolean,
  cache?: FsckCache,
): Analysis {
  const sc = new Scan(overlay, load, inPlace, deep, cache);
  try {
    if (!checkSuperblock(sc)) return sc.none();
    checkLog(sc);
    checkRootRecord(sc);
    checkBitmapLines(sc);
    checkTable(sc);
    checkTies(sc);
    checkBitmap(sc);
    for (const { s, why } of sc.untrusted) {
      if (isValidId(s.id)) sc.lostFound.push({ id: hexId(s.id), reason: `slot ${s.i}: ${why}` });
    }
    checkRoot(sc);
  } finally {
    if (inPlace) overlay.rollback();
  }
  if (deep) {
    sc.notes.push(
      "deep: the kernel's fsck does not read libtwz structures (checkObjects of @twz/libtwz/check does; twz fsck --deep runs both); skipped",
    );
  }
  const { g, objects, untrusted } = sc;
  return {
    problems: sc.problems,
    notes: sc.notes,
    lostFound: sc.lostFound,
    dropped: sc.dropped,
    plan: sc.plan,
    geometry: g,
    replayLog: sc.replayLog,
    rootObject: sc.rootObject,
    summary: {
      objects: objects.length + untrusted.length,
      edges: sc.edges,
      tombstones: sc.tombstones,
      tableSlots: g.tableSlots,
      dataBlocks: g.dataBlocks,
      usedBlocks: sc.usedBits,
      log: sc.logState,
    },
  };
}
