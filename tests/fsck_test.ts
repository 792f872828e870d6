// fsck finds hand-made corruptions and repairs the ones it says it can.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fsck, type FsckReport, Kernel, type ObjID, writeId } from "@twz/kernel";
import { openSim, type SimHal } from "@twz/hal-sim";
import { decodeSuperblock, type Geometry } from "../packages/kernel/_layout.ts";
import { crc32 } from "../packages/kernel/_crc32.ts";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-fsck-");

const SIZE = 4 << 20;

interface Fixture {
  hal: SimHal;
  g: Geometry;
  ids: ObjID[];
  parent: ObjID;
  child: ObjID;
  contents: Map<ObjID, Uint8Array>;
}

/** An image with a few objects (one tied to another), cleanly shut down. */
function fixture(): Fixture {
  const hal = openSim({ size: SIZE });
  const kernel = Kernel.boot(hal);
  const contents = new Map<ObjID, Uint8Array>();
  const ids: ObjID[] = [];
  for (let i = 0; i < 6; i++) {
    const id = kernel.create({ size: 1000 + i * 900 });
    const data = new Uint8Array(1000 + i * 900).fill(i + 1);
    kernel.write(id, 0, data);
    contents.set(id, data);
    ids.push(id);
  }
  const parent = ids[0];
  const child = kernel.create({ size: 500, ties: [parent] });
  contents.set(child, new Uint8Array(500));
  ids.push(child);
  kernel.delete(kernel.create({ size: 3000 })); // leaves a tombstone or two
  kernel.shutdown();
  return { hal, g: decodeSuperblock(hal.region.bytes), ids, parent, child, contents };
}

const view = (f: Fixture) =>
  new DataView(f.hal.region.bytes.buffer, f.hal.region.bytes.byteOffset, f.hal.region.size);

function slotOf(f: Fixture, id: ObjID, state = 1): number {
  const v = view(f);
  for (let i = 0; i < f.g.tableSlots; i++) {
    const off = f.g.tableOffset + i * 64;
    if (v.getUint8(off + 16) !== state) continue;
    const lo = v.getBigUint64(off, true), hi = v.getBigUint64(off + 8, true);
    if ((hi << 64n | lo) === id) return off;
  }
  throw new Error("slot not found");
}

function fixRootCrc(f: Fixture): void {
  const b = f.hal.region.bytes;
  view(f).setUint32(
    f.g.rootOffset + 60,
    crc32(b.subarray(f.g.rootOffset, f.g.rootOffset + 60)),
    true,
  );
}

/** After repair: clean, boots, and every intact object reads back. */
function assertRecovered(f: Fixture, report: FsckReport, gone: ObjID[] = []): void {
  assert.ok(report.clean, JSON.stringify(report.remaining));
  assert.ok(report.repairs.length > 0);
  assert.ok(fsck(f.hal).clean, "a second check finds nothing");
  f.hal.region.powerFail({ policy: "strict" }); // the repairs are durable
  assert.ok(fsck(f.hal).clean, "durable");
  const kernel = Kernel.boot(f.hal);
  for (const [id, data] of f.contents) {
    if (gone.includes(id)) continue;
    assert.deepEqual(kernel.read(id, 0, data.length), data);
  }
  const extra = kernel.create({ size: 5000 });
  kernel.delete(extra);
  assert.ok(fsck(f.hal).clean);
  kernel.shutdown();
}

Deno.test("fsck() finds nothing wrong with a healthy image", () => {
  const f = fixture();
  const r = fsck(f.hal);
  assert.deepEqual(r.problems, []);
  assert.equal(r.clean, true);
  assert.equal(r.summary!.objects, 7);
  assert.equal(r.summary!.edges, 1);
  assert.equal(r.summary!.log, "empty");
  f.hal.close();
});

const CASES: Array<{
  name: string;
  corrupt: (f: Fixture) => void;
  expect: RegExp;
  repairable: boolean;
  gone?: (f: Fixture) => ObjID[];
}> = [
  {
    name: "a table slot's state flipped to empty",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[2]) + 16] = 0),
    expect: /slot \d+ is marked empty but holds object/,
    repairable: true,
  },
  {
    name: "a table slot's state flipped to tombstone",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[3]) + 16] = 2),
    expect: /slot \d+ is a tombstone but holds object/,
    repairable: true,
  },
  {
    name: "a table slot's state flipped to garbage",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[4]) + 16] = 0x5a),
    expect: /slot \d+ is in unknown state 90 but holds object/,
    repairable: true,
  },
  {
    name: "a leaked bitmap block",
    corrupt: (f) => {
      const at = f.g.bitmapOffset + 4 * 100; // blocks 3200.. are free in a 4 MiB image
      view(f).setUint32(at, 1 << 7, true);
    },
    expect: /1 block\(s\) marked used belong to no object \(leaked\): 3207/,
    repairable: true,
  },
  {
    name: "a live object's block marked free",
    corrupt: (f) => {
      const start = view(f).getUint32(slotOf(f, f.ids[1]) + 20, true);
      const at = f.g.bitmapOffset + (start >>> 5) * 4;
      view(f).setUint32(at, view(f).getUint32(at, true) & ~(1 << (start & 31)), true);
    },
    expect: /block\(s\) of live objects are marked free/,
    repairable: true,
  },
  {
    name: "a root counter that is wrong (checksum still valid)",
    corrupt: (f) => {
      view(f).setUint32(f.g.rootOffset + 4, 99, true);
      fixRootCrc(f);
    },
    expect: /the root record counts 99 objects; the image holds 7/,
    repairable: true,
  },
  {
    name: "a damaged root record",
    corrupt: (f) => (f.hal.region.bytes[f.g.rootOffset + 9] ^= 0xff),
    expect: /the root record is damaged/,
    repairable: true,
  },
  {
    name: "a garbage log header",
    corrupt: (f) => view(f).setUint32(f.g.logOffset, 0xdeadbeef, true),
    expect: /the log header holds garbage \(magic 0xdeadbeef\)/,
    repairable: true,
  },
  {
    name: "a tie edge to nowhere (its parent does not exist)",
    corrupt: (f) => writeId(view(f), slotOf(f, f.parent, 3), 0x1234n << 64n),
    expect: /tie edge in slot \d+ names parent 0000000000001234.* which does not exist/,
    repairable: true,
  },
  {
    name: "overlapping extents",
    corrupt: (f) => {
      const a = view(f).getUint32(slotOf(f, f.ids[1]) + 20, true);
      view(f).setUint32(slotOf(f, f.ids[2]) + 20, a, true);
    },
    expect: /objects [0-9a-f]{32} \(slot \d+\) and [0-9a-f]{32} \(slot \d+\) overlap at block/,
    repairable: false,
  },
  {
    name: "an extent outside the data area",
    corrupt: (f) => view(f).setUint32(slotOf(f, f.ids[5]) + 20, 0xfffff0, true),
    expect: /has blocks \[16777200, .*\) outside the \d+ data blocks/,
    repairable: false,
  },
];

for (const c of CASES) {
  Deno.test(`fsck() finds ${c.name}${c.repairable ? " and repairs it" : ""}`, () => {
    const f = fixture();
    c.corrupt(f);
    const found = fsck(f.hal);
    assert.equal(found.clean, false);
    const hit = found.problems.find((p) => c.expect.test(p.message));
    assert.ok(hit, `expected ${c.expect}, got ${JSON.stringify(found.problems)}`);
    assert.equal(hit.repairable, c.repairable);
    const before = f.hal.region.bytes.slice();
    assert.equal(fsck(f.hal).problems.length, found.problems.length, "checking writes nothing");
    assert.deepEqual(f.hal.region.bytes, before);
    const repaired = fsck(f.hal, { repair: true });
    if (c.repairable) assertRecovered(f, repaired, c.gone?.(f));
    else assert.ok(repaired.remaining.some((p) => c.expect.test(p.message)), "left for a person");
    f.hal.close();
  });
}

Deno.test("fsck() checks an image with a committed log as boot will see it, and --repair replays it", () => {
  const hal = openSim({ size: SIZE });
  const kernel = Kernel.boot(hal);
  kernel.create({ size: 100 });
  const commit = hal.region.stats().drains + 2; // contents drain, then the commit drain
  hal.region.armCrash(commit, { policy: "strict" });
  assert.throws(() => kernel.create({ size: 100 }), /power failed/);
  const r = fsck(hal);
  assert.ok(r.clean, JSON.stringify(r.problems));
  assert.equal(r.summary!.log, "committed");
  assert.match(r.notes.join("\n"), /committed transaction .* boot replays it/);
  assert.equal(r.summary!.objects, 2);
  const fixed = fsck(hal, { repair: true });
  assert.match(fixed.repairs[0], /replayed the committed metadata log/);
  assert.equal(Kernel.boot(hal).usage().objects, 2);
  hal.close();
});

Deno.test("twz fsck: exit 0 clean, 1 problems, --repair fixes, 3 cannot open, 2 usage", async () => {
  const f = fixture();
  const dir = tmpDir();
  const path = join(dir, "t.img");
  view(f).setUint32(f.g.bitmapOffset + 400, 1, true); // a leaked block
  Deno.writeFileSync(path, f.hal.region.bytes);
  f.hal.close();
  const found = await twz(["fsck", "--image", path]);
  assert.equal(found.code, 1, found.stderr);
  assert.match(found.stdout, /bitmap: 1 block\(s\) marked used belong to no object \(leaked\)/);
  assert.match(found.stdout, /1 problem\(s\) found; 1 repairable with --repair/);
  const json = await twz(["fsck", "--image", path, "--json", "--deep"]);
  const report = JSON.parse(json.stdout);
  assert.equal(report.clean, false);
  assert.equal(report.problems[0].area, "bitmap");
  assert.match(report.notes.join(" "), /deep: .* skipped/);
  const fixed = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /repaired: bitmap: freed 1 leaked block/);
  const clean = await twz(["fsck", "--image", path]);
  assert.equal(clean.code, 0);
  assert.match(clean.stdout, /clean \(7 objects, 1 tie edges/);
  for (
    const [args, code, pattern] of [
      [["fsck", "--image", join(dir, "none.img")], 3, /cannot open .*none\.img: no such file/],
      [["fsck"], 2, /fsck needs --image PATH/],
      [["fsck", "--image", path, "--bogus"], 2, /bogus/],
    ] as const
  ) {
    const r = await twz([...args]);
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr.split("\n")[0], pattern);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  }
  Deno.removeSync(dir, { recursive: true });
});
