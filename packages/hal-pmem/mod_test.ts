import assert from "node:assert/strict";
import { join } from "node:path";
import { HalError, type HalOpenOptions } from "@twz/kernel/hal";
import { halConformance } from "@twz/kernel/hal/testing";
import { persistPaths, plugin, type PmemRegion } from "./mod.ts";
import { exists } from "./_build.ts";
import { mergePageRanges } from "./plugin.ts";

const HERE = new URL(".", import.meta.url).pathname;
const SKIPPED = "SKIPPED: hal-pmem tests need libpmem2 (apt-get install -y libpmem2)";
const CI = Deno.env.get("CI") === "true";
const description = plugin.describe();
const available = description.available;

if (!available) {
  if (CI) {
    Deno.test("hal-pmem: libpmem2 is installed (required under CI=true)", () => {
      throw new Error(`${SKIPPED} — and CI=true forbids skipping: ${description.reason}`);
    });
  } else {
    console.log(`\n${SKIPPED}\n`);
  }
}
const ignore = !available;

const dirs: string[] = [];
/** A fresh directory on /tmp (ext4 here: page granularity, msync). */
function tmpDir(): string {
  const dir = Deno.makeTempDirSync({ prefix: "twz-pmem-test-" });
  dirs.push(dir);
  return dir;
}
globalThis.addEventListener("unload", () => {
  for (const dir of dirs) Deno.removeSync(dir, { recursive: true });
});

if (available) {
  // Load libpmem2 and the trampoline before the first test (resource sanitizer).
  const warm = await plugin.open({ image: join(tmpDir(), "warm.img"), size: 4096, create: true });
  warm.close();
}

const NO_POWER = "real hardware cannot lose power on demand (no hal.power)";
halConformance({
  plugin,
  imageDir: tmpDir,
  prefix: "pmem /tmp",
  skip: available ? { "power-failure": NO_POWER } : Object.fromEntries(
    [
      "create",
      "visibility",
      "ranges",
      "persist-reopen",
      "clean-close",
      "close-detaches",
      "refuse-missing",
      "refuse-size-mismatch",
      "attach",
      "services",
      "power-failure",
      "lock",
      "read-only",
      "refuse-not-regular",
      "allocated",
    ].map((c) => [c, "libpmem2 is not installed"]),
  ),
});

async function deno(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1", ...env },
    cwd: HERE,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

async function child(args: string[], env: Record<string, string> = {}) {
  const run = await deno(["run", "-A", "testdata/child.ts", ...args], env);
  assert.equal(run.code, 0, run.stderr);
  return { ...run, json: JSON.parse(run.stdout.trim().split("\n").at(-1)!) };
}

Deno.test({
  name: "pmem conformance on /dev/shm with PMEM2_FORCE_GRANULARITY=CACHE_LINE (subprocess)",
  ignore: ignore || !exists("/dev/shm"),
  async fn() {
    const run = await deno(["test", "-A", "testdata/shm_conformance.ts"], {
      PMEM2_FORCE_GRANULARITY: "CACHE_LINE",
    });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /ok \| 15 passed \| 0 failed \| 1 ignored/);
  },
});

Deno.test({
  name: "plugin.open() reports the granularity libpmem2 detects (page for ext4 in /tmp)",
  ignore: ignore || Deno.env.get("PMEM2_FORCE_GRANULARITY") !== undefined,
  async fn() {
    const hal = await plugin.open({ image: join(tmpDir(), "g.img"), size: 1 << 16, create: true });
    try {
      assert.equal(hal.region.granularity, "page");
      assert.equal(hal.power, undefined);
    } finally {
      hal.close();
    }
  },
});

Deno.test({
  name: "plugin.open() takes the trampoline path when a C compiler built it",
  ignore,
  async fn() {
    const hal = await plugin.open({ image: join(tmpDir(), "t.img"), size: 1 << 16, create: true });
    try {
      const region = hal.region as PmemRegion;
      assert.equal(region.calls, "trampoline");
      region.persist(0, 8);
      region.flush(0, 8);
      region.drain();
      assert.deepEqual(region.stats(), { flushes: 2, drains: 2 });
      const paths = persistPaths(region);
      region.bytes.fill(1, 0, 64);
      paths.raw!(0, 64);
      paths.fnptr(64, 64);
      paths.native!(64, 3);
      assert.equal(region.bytes[128], 2); // the C loop's third store: slot 2, byte value 2
    } finally {
      hal.close();
    }
    assert.throws(() => persistPaths(hal.region), TypeError);
  },
});

Deno.test({
  name: "PersistentRegion.persist() makes data readable by a new process",
  ignore,
  async fn() {
    const image = join(tmpDir(), "p.img");
    const written = await child(["write", image, "70000", "survives the process"]);
    assert.equal(typeof written.json.granularity, "string");
    const read = await child(["read", image, "70000", "20"]);
    assert.equal(read.json.text, "survives the process");
  },
});

Deno.test({
  name: "an image is an ordinary file: a copy opens with the same bytes",
  ignore,
  async fn() {
    const dir = tmpDir();
    const hal = await plugin.open({ image: join(dir, "a.img"), size: 1 << 20, create: true });
    hal.region.bytes.set([1, 2, 3, 4], 500_000);
    hal.close();
    Deno.copyFileSync(join(dir, "a.img"), join(dir, "b.img"));
    const copy = await plugin.open({ image: join(dir, "b.img") });
    try {
      assert.equal(copy.created, false);
      assert.equal(copy.region.size, 1 << 20);
      assert.deepEqual([...copy.region.bytes.subarray(500_000, 500_004)], [1, 2, 3, 4]);
    } finally {
      copy.close();
    }
  },
});

Deno.test({
  name: "plugin.attach() from a real Worker sees and writes the same bytes",
  ignore,
  async fn() {
    const hal = await plugin.open({ image: join(tmpDir(), "w.img"), size: 1 << 20, create: true });
    const worker = new Worker(new URL("./testdata/worker.ts", import.meta.url), {
      type: "module",
    });
    try {
      hal.region.bytes[12345] = 0x42;
      const share = hal.region.share();
      assert.equal(share.kind, "file");
      const reply = new Promise<Record<string, unknown>>((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
      });
      worker.postMessage(share);
      const result = await reply;
      assert.deepEqual(result, { seen: 0x42, size: 1 << 20, detached: true });
      assert.equal(hal.region.bytes[23456], 0x77);
    } finally {
      worker.terminate();
      hal.close();
    }
  },
});

Deno.test({
  name: "Hal.close() detaches every view before unmapping; later calls throw HalError",
  ignore,
  async fn() {
    const hal = await plugin.open({ image: join(tmpDir(), "c.img"), size: 1 << 20, create: true });
    const region = hal.region;
    const bytes = region.bytes;
    const view = new DataView(bytes.buffer);
    const words = new Float64Array(bytes.buffer, 4096, 16);
    const other = await plugin.attach(region.share());
    const otherBytes = other.bytes;
    otherBytes[1] = 1;
    hal.close();
    hal.close();
    assert.equal(bytes.length, 0);
    assert.equal(words.length, 0);
    assert.equal(bytes.buffer.byteLength, 0);
    assert.equal(bytes[10], undefined); // a stale load reads nothing, no fault
    bytes[10] = 1; // a stale store goes nowhere
    assert.throws(() => view.getUint8(0), TypeError);
    assert.throws(() => region.persist(0, 8), HalError);
    assert.throws(() => region.flush(0, 8), HalError);
    assert.throws(() => region.drain(), HalError);
    // The attached region has its own mapping: still usable, then closed by itself.
    assert.equal(otherBytes[1], 1);
    other.persist(0, 2);
    other.close();
    assert.equal(otherBytes.length, 0);
  },
});

Deno.test({
  name: "plugin.open() errors carry libpmem2's own message",
  ignore,
  async fn() {
    const image = join(tmpDir(), "byte.img");
    const error = await plugin.open({
      image,
      size: 1 << 20,
      create: true,
      settings: { granularity: "byte" }, // ext4 without DAX cannot give byte granularity
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof HalError);
    assert.match(error.message, /pmem2_map_new failed: requested granularity not available/);
    assert.ok(error.cause instanceof HalError);
    assert.equal(exists(image), false, "a failed create leaves no file behind");
  },
});

Deno.test({
  name: "plugin.open() refuses bad options with HalError",
  ignore,
  async fn() {
    const dir = tmpDir();
    const image = join(dir, "x.img");
    const bad: HalOpenOptions[] = [
      { image, size: 4096, create: true, settings: { granularity: "word" } },
      { image, size: 4096, create: true, settings: { colour: "blue" } },
      { image, size: -1, create: true },
      { image, create: true },
      { size: 4096, create: true },
    ];
    for (const options of bad) await assert.rejects(() => plugin.open(options), HalError);
    Deno.writeFileSync(join(dir, "empty.img"), new Uint8Array(0));
    await assert.rejects(() => plugin.open({ image: join(dir, "empty.img") }), /empty/);
    await assert.rejects(
      () => plugin.attach({ kind: "file", plugin: "sim", path: image, offset: 0, size: 1 }),
      HalError,
    );
  },
});

Deno.test({
  name: "a missing libpmem2 is a HalError with { cause } and the install hint",
  ignore,
  async fn() {
    const image = join(tmpDir(), "m.img");
    const { json } = await child(["missing", image], {
      TWZ_LIBPMEM2_PATH: "/nonexistent/libpmem2.so.1",
    });
    assert.equal(json.description.available, false);
    assert.match(json.description.reason, /apt-get install -y libpmem2/);
    assert.equal(json.error.name, "HalError");
    assert.match(json.error.message, /\/nonexistent\/libpmem2\.so\.1/);
    assert.match(json.error.message, /apt-get install -y libpmem2/);
    assert.equal(json.error.cause, true);
    assert.equal(json.exists, false, "no image is created without the library");
  },
});

Deno.test({
  name: "without the trampoline calls go through UnsafeFnPointer, with one note",
  ignore,
  async fn() {
    const run = await child(["fallback", join(tmpDir(), "f.img")], { TWZ_PMEM_TRAMPOLINE: "off" });
    assert.deepEqual(run.json.calls, ["fnptr", "fnptr"]);
    assert.equal(run.stderr.match(/hal-pmem:/g)?.length, 1, run.stderr);
  },
});

Deno.test({
  name: "importing @twz/hal-pmem has no side effects (no --allow-ffi needed)",
  async fn() {
    const run = await deno(["run", "--no-prompt", "testdata/import_only.ts"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), "pmem function");
  },
});

Deno.test({
  name: "plugin.describe() names the library and the trampoline state",
  ignore,
  fn() {
    const d = plugin.describe();
    assert.equal(d.name, "pmem");
    assert.equal(d.available, true);
    assert.match(d.details!.library!, /libpmem2/);
    assert.match(d.details!.trampoline!, /loaded/);
  },
});

Deno.test({
  name: "Hal.entropy.fill() fills more than one 65536-byte chunk",
  ignore,
  async fn() {
    const hal = await plugin.open({ image: join(tmpDir(), "e.img"), size: 4096, create: true });
    try {
      const big = new Uint8Array(200_000);
      hal.entropy.fill(big);
      assert.ok(big.subarray(190_000).some((b) => b !== 0));
    } finally {
      hal.close();
    }
  },
});

Deno.test({
  name: "read-only: a private mapping whose share cannot be attached; a sparse image is filled in",
  ignore,
  async fn() {
    const image = join(tmpDir(), "ro.img");
    const made = await plugin.open({ image, size: 1 << 20, create: true });
    made.close();
    const ro = await plugin.open({ image, readOnly: true });
    try {
      const share = ro.region.share();
      assert.equal(share.kind === "file" && share.readOnly, true);
      await assert.rejects(() => plugin.attach(share), /read-only/);
    } finally {
      ro.close();
    }
    // A sparse file (as images were made before full allocation) gets its
    // holes allocated when opened writable, without a byte changing.
    const sparse = join(tmpDir(), "sparse.img");
    const f = Deno.openSync(sparse, { write: true, create: true });
    f.truncateSync(1 << 20);
    f.seekSync(4096, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array([1, 2, 3]));
    f.close();
    assert.ok((Deno.statSync(sparse).blocks ?? 0) * 512 < 1 << 20);
    const hal = await plugin.open({ image: sparse });
    try {
      assert.deepEqual([...hal.region.bytes.subarray(4095, 4099)], [0, 1, 2, 3]);
    } finally {
      hal.close();
    }
    assert.ok((Deno.statSync(sparse).blocks ?? 0) * 512 >= 1 << 20);
  },
});

Deno.test("page granularity: a drain's deferred page ranges go out as few msyncs", () => {
  const MiB = 1 << 20;
  // A commit's pages: the log's, then three of one object a few MiB apart,
  // given out of order: one range.
  const d = [9 * MiB, 9 * MiB + 4096, 2 * MiB, 2 * MiB + 4096, 0, 4096, 5 * MiB, 5 * MiB + 8192];
  assert.equal(mergePageRanges(d, 64 * MiB), 1);
  assert.deepEqual(d.slice(0, 2), [0, 9 * MiB + 4096]);
  // More than 16 MiB apart: two msyncs, each clipped to the region.
  const far = [40 * MiB, 40 * MiB + 8192, 0, 4096, 4096, 8192];
  assert.equal(mergePageRanges(far, 40 * MiB + 4096), 2);
  assert.deepEqual(far.slice(0, 4), [0, 8192, 40 * MiB, 40 * MiB + 4096]);
  assert.equal(mergePageRanges([], 4096), 0);
});
