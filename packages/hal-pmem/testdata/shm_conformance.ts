// The conformance suite on /dev/shm. mod_test.ts runs this file with
// `deno test` in a subprocess whose environment has
// PMEM2_FORCE_GRANULARITY=CACHE_LINE (libpmem2 reads it when mapping), so the
// cache-line flush path (CPU flush instructions, no msync) is the one tested.
import assert from "node:assert/strict";
import { halConformance } from "@twz/kernel/hal/testing";
import { plugin } from "../mod.ts";

const dirs: string[] = [];
const imageDir = () => {
  const dir = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "twz-pmem-test-" });
  dirs.push(dir);
  return dir;
};
globalThis.addEventListener("unload", () => {
  for (const dir of dirs) Deno.removeSync(dir, { recursive: true });
});

// Load the libraries before the first test (resource sanitizer).
const warm = await plugin.open({ image: `${imageDir()}/warm.img`, size: 4096, create: true });
warm.close();

halConformance({
  plugin,
  imageDir,
  prefix: "pmem /dev/shm CACHE_LINE",
  skip: { "power-failure": "real hardware cannot lose power on demand (no hal.power)" },
});

Deno.test("pmem /dev/shm: PMEM2_FORCE_GRANULARITY=CACHE_LINE gives cache-line granularity", async () => {
  assert.equal(Deno.env.get("PMEM2_FORCE_GRANULARITY"), "CACHE_LINE");
  const hal = await plugin.open({ image: `${imageDir()}/g.img`, size: 1 << 20, create: true });
  try {
    assert.equal(hal.region.granularity, "cache-line");
    hal.region.bytes.fill(9, 0, 256);
    hal.region.flush(0, 128);
    hal.region.flush(128, 128);
    hal.region.drain();
    hal.region.persist(1, 63);
  } finally {
    hal.close();
  }
});
