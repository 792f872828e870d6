// `twz bench global` runs end to end with tiny counts: its own 3-server
// cluster, two nodes, every case measured and checked (the fetched bytes,
// ownership after own(), one published version per global transaction), and
// nothing left in its temporary folder. A cluster test like those of
// tests/global_test.ts: it holds their lock file while it runs (one cluster
// test at a time on this machine, even under `deno test --parallel`), and is
// skipped with one line when nats-server is missing, except under CI=true,
// where it runs and fails.
import assert from "node:assert/strict";
import { NATS_SKIPPED_LINE, natsServerPath, withClusterLock } from "@twz/global/cluster";
import { run } from "./global.ts";

const ignore = natsServerPath() === null && Deno.env.get("CI") !== "true";
if (ignore) console.log(NATS_SKIPPED_LINE);

Deno.test({
  name: "twz bench global: every case runs and is checked, and nothing is left behind",
  ignore,
  // The NATS clients keep timers and sockets across the test's end.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => withClusterLock(benchOnce),
});

/** One tiny run, checked. */
async function benchOnce(): Promise<void> {
  const tmp = Deno.makeTempDirSync({ prefix: "twz-bench-global-test-" });
  const before = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", tmp);
  try {
    const rows = await run({ hal: "sim", rounds: 1, ops: 3 });
    const names = rows.map((r) => r.case);
    for (
      const want of [
        /^first-deref-4KiB remote/,
        /^first-deref-4KiB local/,
        /^first-deref-4KiB engine/,
        /^first-deref-1MiB remote/,
        /^first-deref-1MiB local/,
        /^first-deref-1MiB engine/,
        /^own handover/,
        /^own takeover/,
        /^own engine request\/reply/,
        /^own engine KV get \+ update/,
        /^tx-4KiB global/,
        /^tx-4KiB local/,
        /^tx-4KiB kv-put/,
        /^tx-4KiB engine-publish/,
        /^coherence: tx on node B until node A's copy has it/,
      ]
    ) assert.ok(names.some((n) => want.test(n)), `no row ${want} in ${names.join(" | ")}`);
    for (const r of rows) {
      assert.equal(r.bench, "global");
      assert.ok(typeof r.ns_per_op === "number" && r.ns_per_op > 0, `${r.case}: ns_per_op`);
    }
    const global = rows.find((r) => r.case.startsWith("tx-4KiB global"))!;
    // One untimed repetition and one timed, 3 transactions each, after the first one.
    assert.equal(global.versions_published, 7);
    assert.ok(typeof global.ratio_to_local === "number" && global.ratio_to_local > 0);
    assert.ok(typeof global.ratio_to_kv_put === "number" && global.ratio_to_kv_put > 0);
    const remote = rows.find((r) => r.case.startsWith("first-deref-1MiB remote"))!;
    assert.ok(typeof remote.local_ns === "number" && typeof remote.engine_ns === "number");
    const seen = rows.find((r) => r.case.startsWith("coherence"))!;
    // The run waited for node A's copy to take each value (else it fails); the commit's time beside.
    assert.ok(typeof seen.commit_ns === "number" && seen.commit_ns > 0);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "the run left files in its TMPDIR");
  } finally {
    if (before === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", before);
    Deno.removeSync(tmp, { recursive: true });
  }
}
