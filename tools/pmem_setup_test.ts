import assert from "node:assert/strict";
import { plugin } from "@twz/hal-pmem";
import { NATS_SKIPPED_LINE, SKIPPED_LINE } from "./pmem_setup.ts";

const SCRIPT = new URL("./pmem_setup.ts", import.meta.url).pathname;

async function setup(env: Record<string, string> = {}) {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
    ms: performance.now() - started,
  };
}

const present = plugin.describe().available;

Deno.test({
  name: "pmem_setup: ready in well under a second when libpmem2 and the trampoline are there",
  ignore: !present,
  async fn() {
    await setup(); // first run may build the trampoline
    const run = await setup();
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /pmem_setup: libpmem2 .*; trampoline .* \(cached\)/);
    // Deno's own start-up is most of it; 3 s leaves room for a loaded machine.
    assert.ok(run.ms < 3000, `took ${run.ms} ms`);
  },
});

Deno.test("pmem_setup: a missing libpmem2 prints the SKIPPED line and exits 0", async () => {
  const run = await setup({ TWZ_LIBPMEM2_PATH: "/nonexistent/libpmem2.so.1", CI: "false" });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.split("\n")[0], SKIPPED_LINE);
  assert.doesNotMatch(run.stderr, /installing/);
  // The built-in programs are bundled whatever the pmem setup found.
  assert.match(run.stdout, /^programs: kv: /m);
});

Deno.test("pmem_setup: a missing libpmem2 fails under CI=true", async () => {
  const run = await setup({ TWZ_LIBPMEM2_PATH: "/nonexistent/libpmem2.so.1", CI: "true" });
  assert.equal(run.code, 1);
  assert.equal(run.stdout.split("\n")[0], SKIPPED_LINE);
  assert.match(run.stderr, /CI=true/);
});

Deno.test("pmem_setup: nats-server present: one nats_setup line naming it", async () => {
  const run = await setup({ CI: "false" });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^nats_setup: nats-server .*nats-server/m);
});

Deno.test("pmem_setup: a missing nats-server prints its SKIPPED line and exits 0", async () => {
  const run = await setup({ TWZ_NATS_SERVER: "/nonexistent/nats-server", CI: "false" });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.stdout.split("\n").includes(NATS_SKIPPED_LINE), run.stdout);
  assert.doesNotMatch(run.stderr, /installing/);
  assert.match(run.stdout, /^programs: kv: /m);
});

Deno.test("pmem_setup: a missing nats-server fails under CI=true", async () => {
  const run = await setup({ TWZ_NATS_SERVER: "/nonexistent/nats-server", CI: "true" });
  assert.equal(run.code, 1);
  assert.ok(run.stdout.split("\n").includes(NATS_SKIPPED_LINE), run.stdout);
  assert.match(run.stderr, /CI=true/);
});
