import assert from "node:assert/strict";
import { halConformance, HalError, scratchDirs } from "@twz/kernel/hal/testing";
import { LINE, openSim, plugin, PowerFailed, seededRandom } from "./mod.ts";

halConformance({ plugin, imageDir: scratchDirs("twz-sim-") });

Deno.test("sim conformance also holds for an anonymous region", async () => {
  const hal = await plugin.open({ size: 1 << 16 });
  assert.equal(hal.image, undefined);
  hal.region.bytes[10] = 1;
  hal.region.persist(10, 1);
  hal.power!.powerFail();
  assert.equal(hal.region.bytes[10], 1);
  hal.close();
});

Deno.test("SimRegion.flush() snapshots: a store after flush is not made durable by drain", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.bytes[0] = 1;
  r.flush(0, 1);
  r.bytes[0] = 2; // after the flush: the drain writes back the value flushed
  r.drain();
  hal.power!.powerFail({ policy: "strict" });
  assert.equal(r.bytes[0], 1);
  hal.close();
});

Deno.test("SimRegion.powerFail() random policy replays with the same seed", () => {
  const survivors = (seed: number) => {
    const hal = openSim({ size: 64 * LINE });
    for (let line = 0; line < 64; line++) hal.region.bytes[line * LINE] = 1;
    const result = hal.power!.powerFail({ policy: "random", seed, probability: 0.5 });
    const kept = [...Array(64).keys()].filter((l) => hal.region.bytes[l * LINE] === 1);
    assert.equal(result.pending, 64);
    assert.equal(result.survived, kept.length);
    hal.close();
    return kept;
  };
  assert.deepEqual(survivors(7), survivors(7));
  assert.notDeepEqual(survivors(7), survivors(8));
  const kept = survivors(7).length;
  assert.ok(kept > 10 && kept < 54, `about half the lines survive, got ${kept}`);
});

Deno.test("SimRegion counts flushes and drains", () => {
  const hal = openSim({ size: 4096 });
  hal.region.persist(0, 8);
  hal.region.flush(64, 8);
  hal.region.flush(128, 8);
  hal.region.drain();
  assert.deepEqual(hal.region.stats(), { flushes: 3, drains: 2 });
  hal.close();
});

Deno.test("sim: a Worker sees and writes the same bytes through attach()", async () => {
  const hal = openSim({ size: 4096 });
  hal.region.bytes[1] = 11;
  const src = `
    import { plugin } from ${JSON.stringify(new URL("./mod.ts", import.meta.url).href)};
    self.onmessage = async (e) => {
      const r = await plugin.attach(e.data);
      const seen = r.bytes[1];
      r.bytes[2] = 22;
      r.close();
      self.postMessage(seen);
    };`;
  const url = URL.createObjectURL(new Blob([src], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const seen = await new Promise((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => reject(e);
    worker.postMessage(hal.region.share());
  });
  worker.terminate();
  assert.equal(seen, 11);
  assert.equal(hal.region.bytes[2], 22);
  hal.close();
});

Deno.test("seededRandom() is deterministic and in [0, 1)", () => {
  const a = seededRandom(3);
  const b = seededRandom(3);
  for (let i = 0; i < 100; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});

Deno.test("SimRegion.armCrash() fails power right after the chosen drain", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.armCrash(2, { policy: "strict" });
  r.bytes[0] = 1;
  r.persist(0, 1); // drain 1
  r.bytes[64] = 2;
  r.flush(64, 1);
  r.bytes[128] = 3; // never flushed
  assert.throws(() => r.drain(), (e: unknown) => e instanceof PowerFailed && e.drain === 2);
  assert.equal(r.bytes[0], 1);
  assert.equal(r.bytes[64], 2, "drained at the crash point, so durable");
  assert.equal(r.bytes[128], 0, "lost");
  r.persist(0, 1); // disarmed: no second crash
  hal.close();
});

Deno.test("SimRegion.powerFail({policy: 'all'}) keeps the current contents, whatever was flushed", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.bytes[0] = 1;
  r.flush(0, 1);
  r.bytes[0] = 2;
  r.flush(0, 1);
  r.bytes[0] = 1; // equal to the first snapshot
  r.bytes[64] = 5;
  r.flush(64, 1);
  r.bytes[64] = 0; // back to what the media holds
  hal.power!.powerFail({ policy: "all" });
  assert.equal(r.bytes[0], 1);
  assert.equal(r.bytes[64], 0);
  hal.close();
});

Deno.test("SimRegion.armCrash({before: true}) strikes at the next drain, with the pending stores at stake", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.persist(0, 1); // drain 1
  r.armCrash(1, { before: true, policy: "all" });
  r.bytes[128] = 7;
  r.flush(128, 1); // pending when the next drain is called
  assert.throws(() => r.drain(), (e: unknown) => e instanceof PowerFailed && e.drain === 1);
  assert.equal(r.bytes[128], 7, "policy all kept the pending line");
  assert.equal(r.stats().drains, 1, "the drain never took effect");
  hal.close();
});

Deno.test("SimRegion refuses flush and drain after close with a HalError", () => {
  const hal = openSim({ size: 4096 });
  hal.close();
  assert.throws(() => hal.region.flush(0, 8), HalError);
  assert.throws(() => hal.region.drain(), HalError);
});

Deno.test("sim settings: sync=data keeps working data; unknown settings and values are refused", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-sim-sync-" });
  try {
    const image = `${dir}/t.img`;
    const hal = await plugin.open({
      image,
      size: 1 << 16,
      create: true,
      settings: { sync: "data" },
    });
    hal.region.bytes[4096] = 7;
    hal.region.persist(4096, 1);
    // The drain wrote the file itself (not only at close).
    assert.equal(Deno.readFileSync(image)[4096], 7);
    hal.close();
    for (
      const settings of [{ sync: "always" }, { granularity: "byte" }] as Record<string, string>[]
    ) {
      await assert.rejects(() => plugin.open({ image, settings }), HalError);
    }
    const again = await plugin.open({ image, settings: { sync: "none" } });
    assert.equal(again.region.bytes[4096], 7);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openSim() allocates a new image in full without fallocate(1) too (zeros written)", async () => {
  // A process that may not run `fallocate` writes the image full of zeros
  // instead: the file must still hold every block.
  const dir = Deno.makeTempDirSync({ prefix: "twz-sim-alloc-" });
  try {
    const path = `${dir}/t.img`;
    const size = 4 << 20;
    const script = new URL("./testdata/make_image.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-check",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        script,
        path,
        String(size),
      ],
      cwd: new URL("../..", import.meta.url).pathname,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const info = Deno.statSync(path);
    assert.equal(info.size, size);
    assert.ok((info.blocks ?? 0) * 512 >= size, `${info.blocks} blocks hold all ${size} bytes`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("sim: an image path that is a symbolic link to nothing is refused, the link kept", () => {
  const dir = scratchDirs("twz-sim-link-")();
  const link = `${dir}/x.img`;
  Deno.symlinkSync(`${dir}/missing/target.img`, link);
  assert.throws(
    () => openSim({ image: link, size: 1 << 20 }),
    (e) =>
      e instanceof HalError &&
      e.message ===
        `Cannot open image ${link}: it is a symbolic link to ${dir}/missing/target.img, which does not exist`,
  );
  assert.equal(Deno.lstatSync(link).isSymlink, true);
  assert.equal(Deno.readLinkSync(link), `${dir}/missing/target.img`);
});
