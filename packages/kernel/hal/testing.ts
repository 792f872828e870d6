/**
 * The HAL conformance suite: one set of cases that every plugin's tests run,
 * so that hal-sim and hal-pmem are held to the same contract. A plugin that
 * cannot run a case names it in `skip` with the reason; the reason is printed
 * in the test name, never hidden.
 *
 * @example In a plugin's test file
 * ```ts ignore
 * import { halConformance } from "@twz/kernel/hal/testing";
 * import { plugin } from "./mod.ts";
 *
 * halConformance({ plugin, imageDir: () => Deno.makeTempDirSync() });
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  GRANULARITY_BYTES,
  type Hal,
  HalError,
  type HalOpenOptions,
  type HalPlugin,
  PowerFailed,
} from "./mod.ts";

/** The names of the conformance cases, for `skip`. */
export type ConformanceCase =
  | "create"
  | "visibility"
  | "ranges"
  | "persist-reopen"
  | "clean-close"
  | "close-detaches"
  | "refuse-missing"
  | "refuse-size-mismatch"
  | "attach"
  | "services"
  | "power-failure"
  | "lock"
  | "read-only"
  | "refuse-not-regular"
  | "allocated";

/** Options for {@linkcode halConformance}. */
export interface ConformanceOptions {
  /** The plugin under test. */
  plugin: HalPlugin;
  /** A fresh directory for image files (called once per case). */
  imageDir: () => string;
  /** Extra options passed to every `open` (for example `settings`). */
  openOptions?: Partial<HalOpenOptions>;
  /** Cases this plugin skips, each with its reason. */
  skip?: Partial<Record<ConformanceCase, string>>;
  /** Prefix of every test name. @default {plugin.name} */
  prefix?: string;
}

const SIZE = 1 << 20;

/**
 * Register the conformance cases with `Deno.test`.
 *
 * @param options The plugin and where its images go.
 */
export function halConformance(options: ConformanceOptions): void {
  const { plugin } = options;
  const prefix = options.prefix ?? plugin.name;
  const open = (image: string, extra: Partial<HalOpenOptions> = {}) =>
    plugin.open({ image, size: SIZE, create: true, ...options.openOptions, ...extra });
  const image = () => join(options.imageDir(), "t.img");

  const cases: Record<ConformanceCase, [string, () => Promise<void>]> = {
    "create": ["open({create}) gives a zeroed region of the asked size", async () => {
      const hal = await open(image());
      try {
        assert.equal(hal.name, plugin.name);
        assert.equal(hal.created, true);
        assert.equal(hal.region.size, SIZE);
        assert.equal(hal.region.bytes.length, SIZE);
        assert.ok(hal.region.granularity in GRANULARITY_BYTES);
        assert.ok(hal.region.bytes.every((b) => b === 0));
      } finally {
        hal.close();
      }
    }],
    "visibility": ["a store is visible at once through every view", async () => {
      const hal = await open(image());
      try {
        const { bytes } = hal.region;
        bytes[123] = 7;
        new DataView(bytes.buffer, bytes.byteOffset).setUint32(4096, 0xdeadbeef, true);
        assert.equal(hal.region.bytes[123], 7);
        assert.equal(new Uint32Array(bytes.buffer, bytes.byteOffset + 4096, 1)[0], 0xdeadbeef);
      } finally {
        hal.close();
      }
    }],
    "ranges": ["flush and persist refuse ranges outside the region", async () => {
      const hal = await open(image());
      try {
        const r = hal.region;
        assert.throws(() => r.flush(SIZE - 8, 16), RangeError);
        assert.throws(() => r.persist(-1, 8), RangeError);
        assert.throws(() => r.persist(0, SIZE + 1), RangeError);
        r.persist(0, 0);
        r.persist(SIZE - 1, 1);
        r.flush(0, SIZE);
        r.drain();
        if (r.flushRanges) {
          assert.throws(
            () => r.flushRanges!(new Float64Array([0, 64, SIZE - 8, 16]), 2),
            RangeError,
          );
          r.flushRanges(new Float64Array([0, 64, SIZE - 8, 8]), 2);
          r.drain();
        }
        if (r.persistRanges) {
          assert.throws(() => r.persistRanges!(new Float64Array([SIZE, 1]), 1), RangeError);
          r.persistRanges(new Float64Array([0, 64, 4096, 8]), 2);
        }
      } finally {
        hal.close();
      }
    }],
    "persist-reopen": ["persisted data is there after close and reopen", async () => {
      const path = image();
      const hal = await open(path);
      const data = new TextEncoder().encode("twizzler persists");
      hal.region.bytes.set(data, 70_000);
      hal.region.persist(70_000, data.length);
      hal.close();
      const again = await open(path, { create: false, size: undefined });
      try {
        assert.equal(again.created, false);
        assert.equal(again.region.size, SIZE);
        assert.deepEqual(again.region.bytes.slice(70_000, 70_000 + data.length), data);
      } finally {
        again.close();
      }
    }],
    "clean-close": ["a clean close writes back stores never persisted", async () => {
      const path = image();
      const hal = await open(path);
      hal.region.bytes[SIZE - 1] = 0x5a;
      hal.close();
      const again = await open(path, { create: false });
      try {
        assert.equal(again.region.bytes[SIZE - 1], 0x5a);
      } finally {
        again.close();
      }
    }],
    "close-detaches": ["close detaches the view and is harmless twice", async () => {
      const hal = await open(image());
      const bytes = hal.region.bytes;
      hal.close();
      hal.close();
      assert.equal(hal.region.bytes.length, 0);
      if (!(bytes.buffer instanceof SharedArrayBuffer)) {
        assert.equal(bytes.length, 0, "a view over memory that went away must be detached");
      }
    }],
    "refuse-missing": ["open without create refuses a missing image", async () => {
      const path = join(options.imageDir(), "missing.img");
      await assert.rejects(
        () => plugin.open({ ...options.openOptions, image: path, create: false }),
        HalError,
      );
    }],
    "refuse-size-mismatch": ["open refuses an existing image of another size", async () => {
      const path = image();
      (await open(path)).close();
      await assert.rejects(() => open(path, { size: SIZE * 2 }), HalError);
    }],
    "attach": ["attach(share()) reaches the same bytes", async () => {
      const hal = await open(image());
      try {
        const other = await plugin.attach(hal.region.share());
        try {
          hal.region.bytes[5000] = 42;
          assert.equal(other.bytes[5000], 42);
          other.bytes[6000] = 43;
          other.persist(6000, 1);
          assert.equal(hal.region.bytes[6000], 43);
        } finally {
          other.close();
          other.close();
        }
        assert.equal(other.bytes.length, 0);
        assert.equal(hal.region.bytes[5000], 42);
        assert.equal(hal.region.bytes[6000], 43);
      } finally {
        hal.close();
      }
    }],
    "services": ["clock, entropy and console are there", async () => {
      const hal = await open(image());
      try {
        const a = hal.clock.monotonic();
        const b = hal.clock.monotonic();
        assert.ok(b >= a);
        assert.ok(Math.abs(hal.clock.wallclock() - Date.now()) < 60_000);
        const x = new Uint8Array(32);
        const y = new Uint8Array(32);
        hal.entropy.fill(x);
        hal.entropy.fill(y);
        assert.notDeepEqual(x, y);
        assert.equal(typeof hal.console.write, "function");
      } finally {
        hal.close();
      }
    }],
    "lock": ["a second open of a held image is refused (busy) until the first closes", async () => {
      const path = image();
      const hal = await open(path, { holder: "conformance holder" });
      try {
        for (const extra of [{}, { readOnly: true }] as Partial<HalOpenOptions>[]) {
          const error = await assert.rejects(
            () => open(path, { create: false, size: undefined, ...extra }),
            (e: unknown) => {
              assert.ok(e instanceof HalError, String(e));
              assert.equal(e.code, "busy");
              assert.deepEqual(e.holder, { pid: Deno.pid, what: "conformance holder" });
              assert.match(
                e.message,
                new RegExp(
                  `in use by process ${Deno.pid} \\(conformance holder\\); stop it first$`,
                ),
              );
              return true;
            },
          );
          void error;
        }
      } finally {
        hal.close();
      }
      const again = await open(path, { create: false, size: undefined });
      again.close();
    }],
    "read-only": [
      "a read-only open shares, writes nothing to the file, and drops its stores",
      async () => {
        const path = image();
        const hal = await open(path);
        hal.region.bytes[100] = 1;
        hal.region.persist(100, 1);
        hal.close();
        const before = Deno.readFileSync(path);
        const a = await open(path, { create: false, size: undefined, readOnly: true });
        const b = await open(path, { create: false, size: undefined, readOnly: true });
        try {
          assert.equal(a.readOnly, true);
          assert.equal(a.region.bytes[100], 1);
          a.region.bytes[100] = 2;
          a.region.bytes[200] = 3;
          a.region.persist(0, 4096);
          assert.equal(a.region.bytes[100], 2, "stores reach the private overlay");
          await assert.rejects(() => open(path, { create: false, size: undefined }), HalError);
        } finally {
          a.close();
          b.close();
        }
        assert.deepEqual(Deno.readFileSync(path), before, "the file is byte-identical");
        Deno.chmodSync(path, 0o444);
        const auto = await open(path, { create: false, size: undefined });
        try {
          assert.equal(auto.readOnly, true);
          assert.match(auto.readOnlyReason ?? "", /not writable/);
          auto.region.bytes[300] = 4;
        } finally {
          auto.close();
          Deno.chmodSync(path, 0o644);
        }
        assert.deepEqual(Deno.readFileSync(path), before, "the file is byte-identical");
      },
    ],
    "refuse-not-regular": [
      "a FIFO, a directory or /dev/null is refused at once (never blocks)",
      async () => {
        const dir = options.imageDir();
        const fifo = join(dir, "fifo.img");
        const made = new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
        assert.ok(made.success, "mkfifo");
        for (const path of [fifo, dir, "/dev/null"]) {
          await assert.rejects(
            () => plugin.open({ ...options.openOptions, image: path, create: false }),
            (e: unknown) => {
              assert.ok(e instanceof HalError, String(e));
              assert.equal(e.code, "not-regular");
              assert.match(e.message, /is a (FIFO|directory|character device).*not an image file/);
              return true;
            },
          );
        }
      },
    ],
    "allocated": ["a new image is allocated in full (not sparse)", async () => {
      const path = image();
      const hal = await open(path);
      hal.close();
      const info = Deno.statSync(path);
      assert.equal(info.size, SIZE);
      assert.ok(
        (info.blocks ?? 0) * 512 >= SIZE,
        `${info.blocks} blocks of 512 bytes hold all ${SIZE} bytes`,
      );
    }],
    "power-failure": ["a power failure keeps persisted data and loses the rest", async () => {
      const hal = await open(image());
      try {
        assert.ok(hal.power, "plugin has no power-failure capability");
        const r = hal.region;
        r.bytes[0] = 1;
        r.persist(0, 1);
        r.bytes[8192] = 2; // never flushed
        r.bytes[16384] = 3;
        r.flush(16384, 1); // flushed, not drained
        const result = hal.power.powerFail({ policy: "strict" });
        assert.equal(result.pending, 2);
        assert.equal(result.survived, 0);
        assert.equal(r.bytes[0], 1);
        assert.equal(r.bytes[8192], 0);
        assert.equal(r.bytes[16384], 0);
        r.bytes[100] = 9;
        hal.power.powerFail({ policy: "all" });
        assert.equal(r.bytes[100], 9);
        if (r.flushRanges) {
          r.bytes[0] = 5;
          r.bytes[8192] = 6;
          r.bytes[16384] = 7;
          r.flushRanges(new Float64Array([0, 1, 8192, 1]), 2);
          r.drain();
          hal.power.powerFail({ policy: "strict" });
          assert.deepEqual([r.bytes[0], r.bytes[8192], r.bytes[16384]], [5, 6, 0]);
        }
        if (r.persistRanges) {
          r.bytes[0] = 8;
          r.bytes[16384] = 9;
          r.persistRanges(new Float64Array([0, 1]), 1);
          hal.power.powerFail({ policy: "strict" });
          assert.deepEqual([r.bytes[0], r.bytes[16384]], [8, 0]);
        }
        const arm = hal.power.armCrash;
        const stats = r.stats?.();
        if (arm !== undefined && stats !== undefined) {
          // Crash point "the last drain so far": the next drain fails first.
          arm(stats.drains, { before: true, policy: "strict" });
          const durable = r.bytes[0];
          r.bytes[0] = 10;
          assert.throws(() => r.persist(0, 1), PowerFailed);
          assert.equal(r.bytes[0], durable);
        }
      } finally {
        hal.close();
      }
    }],
  };

  for (
    const [key, [title, fn]] of Object.entries(cases) as [
      ConformanceCase,
      [string, () => Promise<void>],
    ][]
  ) {
    const reason = options.skip?.[key];
    Deno.test({
      name: `${prefix} conformance: ${title}${reason ? ` (skipped: ${reason})` : ""}`,
      ignore: reason !== undefined,
      fn,
    });
  }
}

/** Re-exported so plugin tests need one import for the error class. */
export { HalError };
export type { Hal };

/**
 * A maker of scratch directories for tests, removed (with everything in
 * them) when the process exits, so test runs leave no images behind.
 *
 * @param prefix Directory name prefix.
 * @param dir Where to make them (default: the system temporary directory).
 * @returns A function making one new directory per call.
 * @example
 * ```ts
 * import { scratchDirs } from "@twz/kernel/hal/testing";
 * const tmp = scratchDirs("twz-example-");
 * console.log(Deno.statSync(tmp()).isDirectory); // true
 * ```
 */
export function scratchDirs(prefix: string, dir?: string): () => string {
  const made: string[] = [];
  globalThis.addEventListener("unload", () => {
    for (const d of made) {
      try {
        Deno.removeSync(d, { recursive: true });
      } catch { /* already gone */ }
    }
  });
  return () => {
    const d = Deno.makeTempDirSync(dir === undefined ? { prefix } : { prefix, dir });
    made.push(d);
    return d;
  };
}
