import assert from "node:assert/strict";
import { join } from "node:path";
import { HalError, type HalPlugin } from "@twz/kernel/hal";
import { plugin as sim } from "@twz/hal-sim";
import { HAL_PLUGINS, isHalName, loadHalPlugin, openImage } from "./embedded.ts";

Deno.test("HAL_PLUGINS is the one registry: sim and pmem, loaded by name", async () => {
  assert.deepEqual(Object.keys(HAL_PLUGINS), ["sim", "pmem"]);
  assert.equal(isHalName("toString"), false);
  assert.equal((await loadHalPlugin("sim")).name, "sim");
  await assert.rejects(() => loadHalPlugin("x" as "sim"), TypeError);
});

Deno.test("openImage() creates with newSize, reopens at the file's size, refuses a mismatch", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const image = join(dir, "t.img");
    let hal = await openImage(sim, { image, newSize: 1 << 20 });
    assert.equal(hal.created, true);
    assert.equal(hal.region.size, 1 << 20);
    hal.close();
    hal = await openImage(sim, { image, newSize: 1 << 21 });
    assert.equal(hal.created, false);
    assert.equal(hal.region.size, 1 << 20);
    hal.close();
    await assert.rejects(
      () => openImage(sim, { image, size: 1 << 21 }),
      /holds 1048576 bytes, not the 2097152 asked for/,
    );
    await assert.rejects(
      () => openImage(sim, { image: join(dir, "missing.img"), readOnly: true, newSize: 4096 }),
      /no such file/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openImage() refuses an existing image above the plugin's maxImageSize, before opening it", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const image = join(dir, "t.img");
    Deno.writeFileSync(image, new Uint8Array(8192));
    let opened = false;
    const small: HalPlugin = {
      ...sim,
      name: "small",
      maxImageSize: 4096,
      open: (o) => (opened = true, sim.open(o)),
    };
    await assert.rejects(
      () => openImage(small, { image }),
      (e) =>
        e instanceof HalError &&
        e.message ===
          `Cannot open image ${image}: it holds 8192 bytes, more than hal small can hold in memory (4.0 KiB)`,
    );
    assert.equal(opened, false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
