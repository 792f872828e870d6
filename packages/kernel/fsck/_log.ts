// fsck's log checker: the metadata log checked as boot would, and the
// metadata seen as boot would see it: a committed transaction not yet
// applied is replayed for the analysis, in the image's overlay (the
// original of each line it changes kept once, put back when the analysis
// ends), never written to the image.
import { metadataTest } from "../_layout.ts";
import { parseLog } from "../_log.ts";
import { Table } from "../_table.ts";
import { ImageOverlay } from "../overlay.ts";
import type { Scan } from "./_scan.ts";

/**
 * Check the log; set `s.bytes`, `s.view` and `s.table` to the metadata as
 * boot would see it (`s.replayLog` when that means replaying the log).
 */
export function checkLog(s: Scan): void {
  const { g, image } = s;
  let bytes = image;
  const parsed = parseLog(
    new DataView(image.buffer, image.byteOffset, image.byteLength),
    g.logOffset,
    g.logSize,
    metadataTest(g),
  );
  if (parsed.state === "garbage" && parsed.outside) parsed.bad += " (boot refuses such an image)";
  s.logState = parsed.state;
  if (parsed.bad) {
    s.problem("log", parsed.bad, true);
    s.plan.clearLog = true;
    s.plan.lines.push("cleared the metadata log header");
  } else if (parsed.state === "torn") {
    s.notes.push("the log holds an uncommitted (torn) transaction; boot ignores it");
  } else if (parsed.state === "committed") {
    let differs = false;
    for (const [offset, from, length] of parsed.records) {
      for (let k = 0; k < length && !differs; k++) {
        if (image[offset + k] !== image[from + k]) differs = true;
      }
    }
    if (differs) {
      s.notes.push(
        `the log holds a committed transaction of ${parsed.records.length} records not yet applied; boot replays it (checked as replayed)`,
      );
      s.replayLog = true;
      // Replayed in the overlay: in place when the image's bytes may change
      // for the time of the analysis (`analyze` rolls the lines back);
      // otherwise (a region others may see) in an overlay of the metadata
      // area read from them, in a lazily allocated array as long as the
      // image (the data area is never touched, so it costs no memory).
      let overlay = s.overlay;
      if (!s.inPlace) {
        const source = image;
        overlay = new ImageOverlay({
          size: image.length,
          read: (into, offset) => into.set(source.subarray(offset, offset + into.length)),
        });
        overlay.load(0, g.dataOffset);
      }
      const target = overlay.bytes;
      for (const [offset, from, length] of parsed.records) {
        if (s.inPlace) overlay.preserve(offset, length); // (an overlay of its own is dropped)
        target.copyWithin(offset, from, from + length);
      }
      bytes = target;
    }
  }
  s.bytes = bytes;
  s.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  s.table = new Table(s.view, g);
}
