// Unit tests of the copy-on-write image overlay (packages/kernel/overlay.ts).
import assert from "node:assert/strict";
import { ImageOverlay, OVERLAY_LINE, type OverlayBase } from "@twz/kernel";

const PAGE = 4096;

/** A base over bytes in memory that counts reads and records writes. */
function memoryBase(image: Uint8Array) {
  const writes: Array<[number, number]> = [];
  let reads = 0, syncs = 0;
  const base: OverlayBase = {
    size: image.length,
    read(into, offset) {
      reads++;
      into.set(image.subarray(offset, offset + into.length));
    },
    write(from, offset) {
      writes.push([offset, from.length]);
      image.set(from, offset);
    },
    sync() {
      syncs++;
    },
  };
  return { base, writes, reads: () => reads, syncs: () => syncs };
}

const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

Deno.test("ImageOverlay loads each page once, only those asked for", () => {
  const image = pattern(16 * PAGE + 100);
  const m = memoryBase(image);
  const o = new ImageOverlay(m.base);
  assert.equal(o.size, image.length);
  o.load(PAGE + 10, 2 * PAGE); // pages 1-3
  o.load(2 * PAGE, 10); // loaded already
  assert.equal(o.pagesRead, 3);
  assert.equal(m.reads(), 1, "one read for the run of pages");
  assert.deepEqual(o.bytes.subarray(PAGE, 4 * PAGE), image.subarray(PAGE, 4 * PAGE));
  assert.ok(o.bytes.subarray(0, PAGE).every((b) => b === 0), "page 0 not read");
  o.load(16 * PAGE, 100); // the short last page
  assert.deepEqual(o.bytes.subarray(16 * PAGE), image.subarray(16 * PAGE));
});

Deno.test("ImageOverlay without writeThrough: flushed lines stay in memory, with their originals", () => {
  const image = pattern(8 * PAGE);
  const before = image.slice();
  const m = memoryBase(image);
  const o = new ImageOverlay(m.base);
  o.load(0, image.length);
  o.bytes.fill(0xaa, 100, 200);
  o.region.persist(100, 100);
  assert.deepEqual(m.writes, []);
  assert.deepEqual(image, before, "the base is never written");
  assert.deepEqual(o.changedLines(), [1, 2, 3]);
  for (const l of [1, 2, 3]) {
    assert.deepEqual(o.original(l), before.slice(l * OVERLAY_LINE, (l + 1) * OVERLAY_LINE));
  }
  assert.equal(o.original(0), undefined);
});

Deno.test("ImageOverlay with writeThrough: a drain writes exactly the flushed bytes, after beforeWrite", () => {
  const image = pattern(8 * PAGE);
  const before = image.slice();
  const m = memoryBase(image);
  const seen: number[][] = [];
  const o = new ImageOverlay(m.base, {
    writeThrough: true,
    beforeWrite: (pages) => {
      seen.push(pages);
      assert.deepEqual(image, before, "called before anything is written");
    },
  });
  o.load(0, image.length);
  o.bytes.fill(1, 10, 20);
  o.bytes.fill(2, 3 * PAGE - 5, 3 * PAGE + 5);
  o.region.flush(3 * PAGE - 5, 10);
  o.region.flush(10, 10);
  assert.deepEqual(m.writes, [], "nothing written before the drain");
  o.region.drain();
  assert.deepEqual(seen, [[0, 2, 3]]);
  assert.deepEqual(m.writes, [[10, 10], [3 * PAGE - 5, 10]]);
  assert.equal(m.syncs(), 1);
  assert.deepEqual(image, o.bytes);
  assert.deepEqual(o.original(0), before.slice(0, 64));
  assert.deepEqual(o.changedLines(), [0, 3 * PAGE / 64 - 1, 3 * PAGE / 64]);
});

Deno.test("ImageOverlay.preserve and rollback: in-memory changes put back, originals kept once", () => {
  const image = pattern(4 * PAGE);
  const before = image.slice();
  const o = ImageOverlay.inPlace(image);
  assert.equal(o.bytes, image, "in place: no copy");
  o.preserve(70, 10);
  image.fill(9, 70, 80);
  o.preserve(64, 64); // the same line again: kept once
  image.fill(8, 64, 128);
  assert.deepEqual(o.changedLines(), [1]);
  assert.deepEqual(o.original(1), before.slice(64, 128));
  o.rollback();
  assert.deepEqual(image, before);
  assert.deepEqual(o.changedLines(), []);
});
