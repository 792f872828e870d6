// `twz fsck --upgrade`: format-1 images (real ones, made by the format-1 code
// and kept in testdata/v1, see its README) become format 2 with every
// object, name and kv entry intact, and a power failure at any point of the
// upgrade leaves an image that is refused as format 1, refused as a torn
// superblock with an intact backup, or boots as format 2 — and running the
// upgrade again always finishes it.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type CheckAreaPlacement,
  ErrorCode,
  formatId,
  fsck,
  Kernel,
  parseId,
  Prot,
  TwzError,
  upgradeImage,
  type UpgradeReport,
} from "@twz/kernel";
import type { Hal } from "@twz/kernel/hal";
import { scratchDirs } from "@twz/kernel/hal/testing";
import {
  countingClock,
  type CrashPoint,
  openSimFromBytes,
  seededEntropy,
  type SimHal,
} from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { BTreeMap } from "@twz/libtwz/btree";
import { codec } from "@twz/libtwz/codec";
import { crc32 } from "./_crc32.ts";

const DATA = new URL("./testdata/v1/", import.meta.url);

/** What the format-1 code saw in a fixture (testdata/v1/*.manifest.json). */
interface Manifest {
  replayed: number;
  root: string;
  objects: Array<{ id: string; size: number; prot: number; dependents: number; sha256: string }>;
  names: Record<string, string>;
  kv: Record<string, string>;
}

type FixtureName = "clean" | "crashed_log" | "log_tail" | "small";

async function fixture(name: FixtureName): Promise<Uint8Array> {
  const gz = await Deno.readFile(new URL(`${name}.img.gz`, DATA));
  const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function manifest(name: FixtureName): Manifest {
  return JSON.parse(Deno.readTextFileSync(new URL(`${name}.manifest.json`, DATA)));
}

const sim = (bytes: Uint8Array): SimHal =>
  openSimFromBytes(bytes, { entropy: seededEntropy(7), clock: countingClock() });

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether two byte arrays are equal (fast enough for whole images). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Every binding under `dir`, as path -> hex ID (the manifest's form). */
function allNames(session: Twz, dir = "/", out: Record<string, string> = {}) {
  for (const b of session.naming.list(dir)) {
    const path = `${dir === "/" ? "" : dir}/${b.name}`;
    out[path] = formatId(b.id);
    if (b.kind === "directory") allNames(session, path, out);
  }
  return out;
}

/**
 * What differs between the format-2 image in `hal` and manifest `m` (empty
 * when it boots, fsck finds it clean, and every object, name and kv entry is
 * as the format-1 code saw it). `contents` holds each object's expected bytes
 * (checked against the manifest's SHA-256 once, by the caller).
 */
function differences(hal: Hal, m: Manifest, contents: Map<string, Uint8Array>): string[] {
  const out: string[] = [];
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(hal);
  } catch (error) {
    return [`boot: ${(error as Error).message}`];
  }
  try {
    const report = fsck(hal.region);
    for (const p of report.problems) out.push(`fsck: ${p.area}: ${p.message}`);
    for (const d of kernel.damaged()) out.push(`damaged slot ${d.slot}: ${d.reason}`);
    const listed = kernel.list().filter((s) => s.lifetime === "persistent").length;
    if (listed !== m.objects.length) out.push(`${listed} objects, not ${m.objects.length}`);
    if (formatId(kernel.rootObject()) !== m.root) out.push("the root object changed");
    for (const o of m.objects) {
      const id = parseId(o.id);
      const s = kernel.stat(id);
      if (s.size !== o.size || s.prot !== o.prot || s.dependents !== o.dependents) {
        out.push(`object ${o.id}: stat ${JSON.stringify([s.size, s.prot, s.dependents])}`);
      }
      const bytes = kernel.map(id, Prot.Read).bytes;
      const want = contents.get(o.id)!;
      let same = bytes.length === want.length;
      for (let i = 0; same && i < want.length; i++) same = bytes[i] === want[i];
      if (!same) out.push(`object ${o.id}: its bytes changed`);
    }
    const session = Twz.attach(kernel.port());
    const names = allNames(session);
    if (JSON.stringify(names) !== JSON.stringify(m.names)) {
      out.push(`names: ${JSON.stringify(names)}`);
    }
    if (Object.keys(m.kv).length > 0) {
      const map = BTreeMap.open(session, session.open("/kv"), codec.string, codec.string);
      const kv = Object.fromEntries(map.range());
      if (JSON.stringify(kv) !== JSON.stringify(m.kv)) out.push(`kv: ${JSON.stringify(kv)}`);
    }
  } catch (error) {
    out.push(`check: ${(error as Error).message}`);
  } finally {
    kernel.halt();
  }
  return out;
}

/** The objects' bytes after a first upgrade, each checked against the manifest's SHA-256. */
async function expectedContents(name: FixtureName): Promise<Map<string, Uint8Array>> {
  const m = manifest(name);
  const hal = sim(await fixture(name));
  try {
    upgradeImage(hal);
    const kernel = Kernel.boot(hal);
    const out = new Map<string, Uint8Array>();
    for (const o of m.objects) {
      const bytes = kernel.read(parseId(o.id), 0, o.size).slice();
      assert.equal(await sha256(bytes), o.sha256, `object ${o.id}'s bytes`);
      out.set(o.id, bytes);
    }
    kernel.halt();
    return out;
  } finally {
    hal.close();
  }
}

const V1_REFUSAL =
  /the image has format version 1; run `twz fsck --upgrade --image .*` to upgrade it/;
const TORN_REFUSAL = /superblock.*damaged.*backup copy \(at offset 2048\) is intact/;

const PLACEMENT = {
  clean: "after-bitmap",
  crashed_log: "after-bitmap",
  log_tail: "log-tail",
  small: "after-bitmap",
} as const;

for (const name of ["clean", "crashed_log", "log_tail", "small"] as const) {
  Deno.test(`upgradeImage() turns the format-1 "${name}" image into format 2 with everything intact`, async () => {
    const m = manifest(name);
    const original = await fixture(name);
    const hal = sim(original);
    try {
      // The format-2 kernel refuses it, with one line naming the upgrade, and writes nothing.
      assert.throws(() => Kernel.boot(hal), (e: unknown) => {
        assert.ok(e instanceof TwzError);
        assert.equal(e.code, ErrorCode.ImageUnsupported);
        assert.match(e.message, V1_REFUSAL);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
      assert.ok(sameBytes(hal.region.durableImage(), original));
      const report = upgradeImage(hal);
      assert.equal(report.outcome, "upgraded");
      assert.equal(report.version, 2);
      assert.equal(report.replayed, m.replayed);
      assert.equal(report.sealedSlots, new DataView(original.buffer).getUint32(80, true));
      assert.equal(report.checkArea?.placement, PLACEMENT[name]);
      assert.deepEqual(report.forced, []);
      // Object data never moved: every byte from the first data block on is as it was.
      const dataOffset = Number(new DataView(original.buffer).getBigUint64(96, true));
      const after = hal.region.durableImage();
      assert.ok(sameBytes(after.subarray(dataOffset), original.subarray(dataOffset)));
      assert.deepEqual(differences(hal, m, await expectedContents(name)), []);
      // Again: "already format 2", nothing written.
      const before = hal.region.durableImage();
      const again = upgradeImage(hal);
      assert.equal(again.outcome, "already");
      assert.deepEqual(again.lines, ["the image is already format 2: nothing to do"]);
      assert.ok(sameBytes(hal.region.durableImage(), before));
    } finally {
      hal.close();
    }
  });
}

Deno.test("upgradeImage() puts the check area after the bitmap, in the log's tail or in the root page", async () => {
  const m = manifest("clean");
  const contents = await expectedContents("clean");
  for (const placement of ["after-bitmap", "log-tail", "root-page"] as const) {
    const hal = sim(await fixture("clean"));
    try {
      const report = upgradeImage(hal, { checkArea: placement });
      assert.equal(report.checkArea?.placement, placement);
      if (placement === "log-tail") {
        assert.deepEqual(report.logSize, { before: 131072, after: 126976 });
        assert.equal(report.checkArea?.offset, 8192 + 126976);
      } else assert.deepEqual(report.logSize, { before: 131072, after: 131072 });
      assert.deepEqual(differences(hal, m, contents), [], placement);
      // The (smaller) log still commits: create and delete, reboot, check.
      const kernel = Kernel.boot(hal);
      const ids = Array.from({ length: 40 }, () => kernel.create({ size: 3000 }));
      kernel.delete(ids[3]!);
      kernel.write(ids[5]!, 10, new TextEncoder().encode("after the upgrade"));
      kernel.shutdown();
      const k2 = Kernel.boot(hal);
      assert.equal(new TextDecoder().decode(k2.read(ids[5]!, 10, 17)), "after the upgrade");
      assert.equal(k2.exists(ids[3]!), false);
      k2.halt();
      assert.deepEqual(fsck(hal.region).problems, [], placement);
    } finally {
      hal.close();
    }
  }
});

Deno.test("upgradeImage() refuses a placement that does not fit, before writing anything", async () => {
  const original = await fixture("small"); // its log is the smallest (64 KiB): no tail to carve
  const hal = sim(original);
  try {
    assert.throws(
      () => upgradeImage(hal, { checkArea: "log-tail" }),
      /no room for the 4-byte bitmap-check area \(log-tail\)/,
    );
    assert.ok(sameBytes(hal.region.durableImage(), original));
  } finally {
    hal.close();
  }
});

Deno.test("upgradeImage() keeps ties working: deleting a parent still deletes its dependents", async () => {
  const m = manifest("clean");
  const hal = sim(await fixture("clean"));
  try {
    upgradeImage(hal);
    const kernel = Kernel.boot(hal);
    const big = parseId(m.names["/data/big"]!);
    const child = parseId(m.names["/data/child"]!);
    assert.equal(kernel.stat(big).dependents, 1);
    assert.equal(kernel.delete(big), 3); // big, its child and the child's own dependent
    assert.equal(kernel.exists(child), false);
    kernel.shutdown();
    assert.deepEqual(fsck(hal.region).problems, []);
  } finally {
    hal.close();
  }
});

/** Flip a byte of a format-1 image's metadata (and keep the log as it is). */
function damage(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = value;
  return copy;
}

Deno.test("upgradeImage() refuses damaged format-1 metadata unless forced", async () => {
  const original = await fixture("clean");
  const v = new DataView(original.buffer);
  const bitmapOffset = Number(v.getBigUint64(88, true));
  // Bitmap word 0 loses its lowest used block: the table and the bitmap disagree.
  const damaged = damage(original, bitmapOffset, original[bitmapOffset]! & 0xfe);
  assert.ok(!sameBytes(damaged, original));
  const hal = sim(damaged);
  try {
    assert.throws(() => upgradeImage(hal), (e: unknown) => {
      assert.ok(e instanceof TwzError);
      assert.equal(e.code, ErrorCode.ImageCorrupt);
      assert.match(e.message, /format-1 image has 1 problem \(bitmap word 0 .* disagrees/);
      assert.match(e.message, /twz fsck --upgrade --force/);
      return true;
    });
    assert.ok(sameBytes(hal.region.durableImage(), damaged), "nothing written");
    const report = upgradeImage(hal, { force: true });
    assert.equal(report.outcome, "upgraded");
    assert.equal(report.forced.length, 1);
    // Format 2's fsck finds what format 1 had wrong.
    const check = fsck(hal.region);
    assert.equal(check.clean, false);
    assert.ok(check.problems.some((p) => p.area === "bitmap"), JSON.stringify(check.problems));
  } finally {
    hal.close();
  }
});

Deno.test("upgradeImage() refuses each kind of format-1 damage, writing nothing", async () => {
  const original = await fixture("clean");
  const v = new DataView(original.buffer);
  const table = Number(v.getBigUint64(72, true));
  const slots = v.getUint32(80, true);
  const slotsIn = (state: number) =>
    Array.from({ length: slots }, (_, i) => i).filter((i) =>
      original[table + i * 64 + 16] === state
    );
  const obj = slotsIn(1)[0]!;
  const edge = slotsIn(3)[0]!;
  const empty = slotsIn(0).find((i) => original[table + ((i + 1) % slots) * 64 + 16] === 0)!;
  const cases: Array<[string, (b: Uint8Array, d: DataView) => void, RegExp]> = [
    [
      "a size beyond its blocks",
      (_b, d) => d.setUint32(table + obj * 64 + 28, 1 << 30, true),
      /size/,
    ],
    ["an unknown state", (b) => b[table + empty * 64 + 16] = 9, /unknown state 9/],
    ["data in an empty slot", (b) => b[table + empty * 64 + 3] = 1, /empty but holds data/],
    ["a damaged root record", (b) => b[4096 + 4]! ^= 1, /root record is damaged/],
    [
      "an object in two slots",
      (b) => b.copyWithin(table + empty * 64, table + obj * 64, table + obj * 64 + 64),
      /in two slots|unreachable|overlaps/,
    ],
    ["a tie edge without its parent", (b) => b[table + edge * 64]! ^= 0x55, /missing parent/],
  ];
  for (const [what, hurt, pattern] of cases) {
    const damaged = original.slice();
    hurt(damaged, new DataView(damaged.buffer));
    const hal = sim(damaged);
    try {
      assert.throws(() => upgradeImage(hal), (e: unknown) => {
        assert.ok(e instanceof TwzError, what);
        assert.equal(e.code, ErrorCode.ImageCorrupt, what);
        assert.match(e.message, /^the format-1 image has \d+ problems? /, what);
        assert.match(e.message, pattern, `${what}: ${e.message}`);
        return true;
      });
      assert.ok(sameBytes(hal.region.durableImage(), damaged), `${what}: nothing written`);
    } finally {
      hal.close();
    }
  }
});

Deno.test("upgradeImage() refuses a read-only HAL, a blank image and an unknown version", async () => {
  const original = await fixture("small");
  const hal = sim(original);
  try {
    const readOnly: Hal = { ...hal, readOnly: true, readOnlyReason: "asked for" };
    assert.throws(() => upgradeImage(readOnly), (e: unknown) => {
      assert.ok(e instanceof TwzError);
      assert.equal(e.code, ErrorCode.ReadOnly);
      return true;
    });
    assert.ok(sameBytes(hal.region.durableImage(), original));
  } finally {
    hal.close();
  }
  const blank = sim(new Uint8Array(original.length));
  try {
    assert.throws(() => upgradeImage(blank), /never \(completely\) formatted/);
  } finally {
    blank.close();
  }
  // A format-2 superblock claiming version 3 (checksum intact): refused, untouched.
  const future = sim(original);
  try {
    upgradeImage(future);
    const bytes = future.region.durableImage();
    const v = new DataView(bytes.buffer);
    v.setUint32(8, 3, true);
    v.setUint32(252, crc32(bytes.subarray(0, 252)), true);
    future.region.reload(bytes);
    assert.throws(() => upgradeImage(future), (e: unknown) => {
      assert.ok(e instanceof TwzError);
      assert.equal(e.code, ErrorCode.ImageUnsupported);
      assert.match(e.message, /format version 3/);
      return true;
    });
    assert.ok(sameBytes(future.region.durableImage(), bytes));
  } finally {
    future.close();
  }
});

Deno.test("upgradeImage() leaves a new format-2 image untouched", () => {
  const hal = openSimFromBytes(new Uint8Array(1 << 20));
  try {
    const kernel = Kernel.boot(hal, { formatBlank: true });
    kernel.create({ size: 5000 });
    kernel.shutdown();
    const before = hal.region.durableImage();
    const report = upgradeImage(hal);
    assert.equal(report.outcome, "already");
    assert.deepEqual(report.lines, ["the image is already format 2: nothing to do"]);
    assert.equal(report.sealedSlots, 0);
    assert.ok(sameBytes(hal.region.durableImage(), before));
  } finally {
    hal.close();
  }
});

Deno.test("upgradeImage() finishes an upgrade whose primary superblock was torn", async () => {
  const m = manifest("small");
  const hal = sim(await fixture("small"));
  try {
    upgradeImage(hal);
    const done = hal.region.durableImage();
    // Tear the primary: its first line is format 1's again, the rest format 2's.
    const torn = done.slice();
    torn.set((await fixture("small")).subarray(0, 64), 0);
    hal.region.reload(torn);
    assert.throws(() => Kernel.boot(hal), TORN_REFUSAL);
    // A primary without the magic is not a torn switch: left to `twz fsck --repair`.
    const foreign = torn.slice();
    foreign.set(new TextEncoder().encode("NOTANIMG"), 0);
    hal.region.reload(foreign);
    assert.throws(() => upgradeImage(hal), /not a Twizzler image/);
    assert.ok(sameBytes(hal.region.durableImage(), foreign));
    hal.region.reload(torn);
    const report = upgradeImage(hal);
    assert.equal(report.outcome, "finished");
    assert.match(report.lines[0]!, /restored it from its intact backup copy at 2048/);
    assert.ok(sameBytes(hal.region.durableImage(), done));
    assert.deepEqual(differences(hal, m, await expectedContents("small")), []);
  } finally {
    hal.close();
  }
});

// ---------------------------------------------------------------------------
// Crash states of the upgrade itself.

interface Point {
  crash: CrashPoint;
  applied: boolean;
}

/** Run the upgrade on `image` and record a crash point before every drain, and at its end. */
function recordUpgrade(
  image: Uint8Array,
  unit: 8 | 64,
  checkArea: CheckAreaPlacement,
): { points: Point[]; final: Uint8Array } {
  const hal = sim(image);
  const region = hal.region;
  (region as { recordHistory?: (on?: boolean) => void }).recordHistory?.(true);
  const points: Point[] = [];
  region.beforeDrain = () => points.push({ crash: region.crashPoint({ unit }), applied: false });
  region.onDrain = () => {
    points[points.length - 1]!.applied = true;
  };
  upgradeImage(hal, { checkArea });
  region.beforeDrain = region.onDrain = undefined;
  points.push({ crash: region.crashPoint({ unit }), applied: false });
  const final = region.durableImage();
  hal.close();
  return { points, final };
}

/** The selections to try at a point: all when few, else strict, all, evictions and samples. */
function selections(crash: CrashPoint, take: number, seed: number): Uint8Array[] {
  if (crash.count <= take) return Array.from({ length: crash.count }, (_, i) => crash.selection(i));
  const out = [crash.selection(0), crash.policySelection("all")];
  for (let k = 0; out.length < take; k++) {
    if (k % 2 === 0 && k / 2 < crash.units.length) {
      const sel = crash.policySelection("all");
      sel[Math.floor(((k / 2) * crash.units.length) / take) % crash.units.length] = 0;
      out.push(sel);
    } else out.push(crash.randomSelection((seed * 7919 + k) >>> 0, k % 3 === 0 ? 0.9 : 0.5));
  }
  return out;
}

/** Counts of what the crash states of {@linkcode crashUpgrade} did. */
interface Seen {
  points: number;
  states: number;
  nested: number;
  v1: number;
  torn: number;
  v2: number;
  rerun: Record<UpgradeReport["outcome"], number>;
}

/**
 * Crash the upgrade of fixture `name` at every drain, try `take` crash states
 * per point, and check each: refused as format 1, refused as a torn
 * superblock with an intact backup, or booting as format 2 with everything
 * intact; and after running the upgrade again, format 2 with everything
 * intact. With `nestedTake`, the upgrade run again on one crash state of each
 * point is itself crashed at each of its drains (`nestedTake` states each)
 * and checked the same way: an upgrade cut short twice still finishes.
 */
async function crashUpgrade(
  name: FixtureName,
  unit: 8 | 64,
  take: number,
  nestedTake = 0,
  checkArea: CheckAreaPlacement = "auto",
) {
  const m = manifest(name);
  const contents = await expectedContents(name);
  const original = await fixture(name);
  const rec = sim(new Uint8Array(original.length));
  const seen: Seen = {
    points: 0,
    states: 0,
    nested: 0,
    v1: 0,
    torn: 0,
    v2: 0,
    rerun: { upgraded: 0, finished: 0, already: 0 },
  };
  const violations: string[] = [];
  const explore = (image: Uint8Array, depth: number, label: string) => {
    const { points, final } = recordUpgrade(image, unit, checkArea);
    const base = image.slice();
    if (depth === 0) seen.points = points.length;
    points.forEach((p, n) => {
      const sels = selections(p.crash, depth === 0 ? take : nestedTake, n + 1 + depth * 1000);
      sels.forEach((sel, s) => {
        const where =
          `${label}point ${n} state ${s} (${p.crash.units.length} pending ${unit}-byte units)`;
        seen.states++;
        if (depth > 0) seen.nested++;
        rec.region.loadCrashState(base, p.crash, sel);
        const crashed = rec.region.durableImage();
        try {
          Kernel.boot(rec).halt();
          seen.v2++;
          const found = differences(rec, m, contents);
          if (found.length > 0) violations.push(`${where}: boots but ${found.join("; ")}`);
        } catch (error) {
          const message = (error as Error).message;
          if (V1_REFUSAL.test(message)) seen.v1++;
          else if (TORN_REFUSAL.test(message)) seen.torn++;
          else violations.push(`${where}: refused: ${message}`);
        }
        // Run the upgrade again on the crashed image itself: it finishes.
        rec.region.reload(crashed);
        let again: UpgradeReport;
        try {
          again = upgradeImage(rec, { checkArea });
        } catch (error) {
          violations.push(`${where}: the upgrade again: ${(error as Error).message}`);
          return;
        }
        seen.rerun[again.outcome]++;
        const found = differences(rec, m, contents);
        if (found.length > 0) {
          violations.push(`${where}: after the upgrade again: ${found.join("; ")}`);
        }
        // And crash that second run too, at one state of each point.
        if (depth === 0 && nestedTake > 0 && s === Math.min(1, sels.length - 1)) {
          explore(crashed, 1, `${where}, then upgrade again: `);
        }
      });
      if (p.applied) p.crash.materialize(p.crash.drainChoice, base);
    });
    if (!sameBytes(base, final)) {
      violations.push(`${label}the recorded crash points do not add up to the final image`);
    }
  };
  try {
    explore(original, 0, "");
  } finally {
    rec.close();
  }
  assert.deepEqual(violations.slice(0, 10), []);
  return seen;
}

Deno.test("upgradeImage() survives a power failure at every drain, and in its re-run (small image)", async () => {
  const small = await crashUpgrade("small", 64, 48, 6);
  assert.equal(small.points, 5, "seal, checks, backup, primary, end");
  assert.ok(small.nested > 0, JSON.stringify(small));
  // Every outcome was met: the test reaches each case it claims to check.
  assert.ok(small.v1 > 0 && small.torn > 0 && small.v2 > 0, JSON.stringify(small));
  assert.ok(small.rerun.upgraded > 0 && small.rerun.finished > 0 && small.rerun.already > 0);
});

Deno.test("upgradeImage() survives a power failure at every drain (a committed format-1 log)", async () => {
  const crashed = await crashUpgrade("crashed_log", 64, 10);
  assert.equal(crashed.points, 7, "replay, clear, seal, checks, backup, primary, end");
  assert.ok(crashed.v1 > 0 && crashed.torn > 0 && crashed.v2 > 0, JSON.stringify(crashed));
  // The check area in the tail of the log the upgrade has just replayed and cleared.
  const tail = await crashUpgrade("crashed_log", 64, 6, 0, "log-tail");
  assert.equal(tail.points, 7);
  assert.ok(tail.v1 > 0 && tail.v2 > 0, JSON.stringify(tail));
});

Deno.test("upgradeImage() survives a power failure at every drain (32 MiB image, log tail)", async () => {
  const big = await crashUpgrade("log_tail", 64, 4);
  assert.ok(big.v1 > 0 && big.v2 > 0, JSON.stringify(big));
});

Deno.test("upgradeImage() survives a power failure at every drain (torn 8-byte words)", async () => {
  const small = await crashUpgrade("small", 8, 40);
  assert.ok(small.v1 > 0 && small.torn > 0 && small.v2 > 0, JSON.stringify(small));
  const clean = await crashUpgrade("clean", 8, 8);
  assert.ok(clean.v1 > 0 && clean.v2 > 0, JSON.stringify(clean));
});

const tmpDir = scratchDirs("twz-upgrade-");

const pmem = (await import("@twz/hal-pmem")).plugin;
const pmemInfo = pmem.describe();

Deno.test({
  name: `upgradeImage() on hal-pmem: a format-1 image file becomes format 2${
    pmemInfo.available ? "" : ` (skipped: ${pmemInfo.reason})`
  }`,
  ignore: !pmemInfo.available && Deno.env.get("CI") !== "true",
  fn: async () => {
    const m = manifest("clean");
    const contents = await expectedContents("clean");
    const image = join(tmpDir(), "pmem.img");
    await Deno.writeFile(image, await fixture("clean"));
    let hal = await pmem.open({ image });
    try {
      assert.throws(() => Kernel.boot(hal), V1_REFUSAL);
      assert.equal(upgradeImage(hal).outcome, "upgraded");
    } finally {
      hal.close();
    }
    hal = await pmem.open({ image });
    try {
      assert.deepEqual(differences(hal, m, contents), []);
      assert.equal(upgradeImage(hal).outcome, "already");
    } finally {
      hal.close();
    }
  },
});
