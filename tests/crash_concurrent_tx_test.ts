// Concurrent transactions under crashes (issue 12): two programs, real
// Workers spawned by the kernel's thread manager on the crash checker's
// hal-sim kernel, run transactions at the same time — each on its own
// object, and on one shared object under a Mutex — each committing into a
// transaction lane of its own. `crashtest` records a crash point before
// every drain of that run (the programs' drains included: every flush and
// drain is the kernel's), boots each crashed image, recovers (a session
// opening replays every committed log in sequence order) and checks that
// every acknowledged transaction is whole and no unacknowledged one is
// half visible.
//
// The programs publish their progress in a volatile object; the journal
// reads it at every crash point (`Journal.observe`). Threads make the run
// nondeterministic: `replay` cannot reproduce one of its crash states.
import assert from "node:assert/strict";
import { crashtest, type JournalEntry, type Workload } from "@twz/crashtest";
import { formatId, Kernel, Prot, type ThreadInfo } from "@twz/kernel";
import { encodeCodeObject, ThreadManager } from "@twz/kernel/threads";
import { bundleFile } from "@twz/cli/run";
import { plugin as pmem } from "@twz/hal-pmem";
import { join } from "node:path";
import { openSim } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { inspectTxLanes, prepareThreadLogs } from "@twz/libtwz/tx";

const PROGRAM = new URL("./testdata/concurrent_tx.ts", import.meta.url).pathname;
/** Transactions per program: odd ones on the shared object, even ones on its own. */
const COUNT = 16;
const PROGRAMS = 2;
/** What `testdata/concurrent_tx.ts` writes (offsets from the base, 256). */
const BASE = 256;
const OWN = [0, 1024, 2048];
const OWN_SHARED = 3072;
const COUNTER = [64, 1088];
const SLOT = 2112;

interface Setup {
  own: bigint[];
  shared: bigint;
}

/** The largest number ≤ n with the parity of `odd` (0 when none). */
function lastOf(n: number, odd: boolean): number {
  const m = (n % 2 === 1) === odd ? n : n - 1;
  return m > 0 ? m : 0;
}

/**
 * What the objects must show given each program's progress: every program's
 * own object whole and between its last acknowledged and last begun even
 * transaction; its shared slot equal to its own object's copy and between
 * its last acknowledged and begun odd one; the shared counter whole and
 * equal to the shared transactions the slots say were applied.
 */
function verify(
  u32: (id: bigint, at: number) => number,
  setup: Setup,
  progress: { done: number; started: number }[],
): string[] {
  const bad: string[] = [];
  let applied = 0;
  progress.forEach(({ done, started }, p) => {
    const own = OWN.map((at) => u32(setup.own[p]!, at));
    if (own.some((v) => v !== own[0])) bad.push(`program ${p}: own object torn: ${own}`);
    const v = own[0]!;
    if (v < lastOf(done, false) || v > lastOf(started, false) || v % 2 !== 0) {
      bad.push(`program ${p}: own object holds ${v}; acknowledged ${done}, begun ${started}`);
    }
    const x = u32(setup.own[p]!, OWN_SHARED), y = u32(setup.shared, SLOT + 64 * p);
    if (x !== y) bad.push(`program ${p}: shared transaction torn across objects: ${x} vs ${y}`);
    if (y < lastOf(done, true) || y > lastOf(started, true) || (y !== 0 && y % 2 !== 1)) {
      bad.push(`program ${p}: shared slot holds ${y}; acknowledged ${done}, begun ${started}`);
    }
    applied += (y + 1) >> 1;
  });
  const c = COUNTER.map((at) => u32(setup.shared, at));
  if (c[0] !== c[1]) bad.push(`shared counter torn: ${c}`);
  if (c[0] !== applied) bad.push(`shared counter ${c[0]}, but the slots say ${applied}`);
  return bad;
}

/**
 * Run the two programs on `kernel` (the code as a volatile code object) and
 * wait for both; throws unless both exit 0.
 */
async function runPrograms(
  kernel: Kernel,
  text: string,
  setup: Setup,
  progress: bigint,
  count: number,
  mode: "tx" | "raw" | "poll",
  during?: (manager: ThreadManager, tids: number[]) => Promise<void>,
): Promise<ThreadInfo[]> {
  const bytes = encodeCodeObject(text);
  const scratch = kernel.create({ size: bytes.length, lifetime: "volatile" });
  kernel.write(scratch, 0, bytes);
  const code = kernel.create({
    size: bytes.length,
    lifetime: "volatile",
    prot: Prot.Read | Prot.Exec,
    sources: [{ id: scratch, srcOffset: 0, dstOffset: 0, length: bytes.length }],
  });
  let out = "";
  const manager = new ThreadManager(kernel, { console: (t) => void (out += t) });
  const threads = setup.own.map((own, p) =>
    manager.spawn({
      code,
      name: `tx${p}`,
      args: [
        String(p),
        String(count),
        formatId(own),
        formatId(setup.shared),
        formatId(progress),
        mode,
      ],
    })
  );
  let ends: ThreadInfo[];
  try {
    await during?.(manager, threads.map((t) => t.tid));
    ends = await Promise.all(threads.map((t) => manager.wait(t.tid)));
  } finally {
    await manager.shutdown(1000); // every Worker stopped, also when this failed
  }
  for (const end of ends) {
    if (end.exitCode !== 0 && end.exitCode !== 137) {
      throw new Error(`${end.name} exited ${end.exitCode}: ${out}`);
    }
  }
  return ends;
}

/** Transactions that began while the other program's was in flight, in the last run. */
let overlaps = 0;
/** Lanes that held a transaction at the end of the last run. */
let lanesUsed = 0;

function workload(text: string, raw = false): Workload {
  return {
    name: raw ? "concurrent-tx-without-tx" : "concurrent-tx",
    summary: "two programs commit transactions at once, on their own objects and a shared one",
    imageSize: 768 * 1024,
    async run({ kernel, journal }) {
      const twz = Twz.attach(kernel.port());
      const progress = kernel.create({ size: 4096, lifetime: "volatile" });
      const words = kernel.map(progress, Prot.ReadWrite).extent.i32;
      const setup = journal.record("setup", {}, (): Setup => {
        twz.create({ size: 48 * 1024, name: "/.txlog" }); // the default log (4 MiB) would not fit
        prepareThreadLogs(twz, { lanes: 4, laneBytes: 16384 });
        const own = Array.from({ length: PROGRAMS }, () => twz.create({ size: 8192 }).id);
        return { own, shared: twz.create({ size: 8192 }).id };
      });
      // The programs' progress, as journal entries at every crash point.
      journal.observe(() => {
        const out: JournalEntry[] = [];
        for (let p = 0; p < PROGRAMS; p++) {
          const started = Atomics.load(words, 2 * p), done = Atomics.load(words, 2 * p + 1);
          for (let i = 1; i <= done; i++) out.push({ op: "tx", args: { p, i }, state: "done" });
          if (started > done) out.push({ op: "tx", args: { p, i: started }, state: "started" });
        }
        return out;
      });
      const ends = await runPrograms(kernel, text, setup, progress, COUNT, raw ? "raw" : "tx");
      if (ends.some((e) => e.exitCode !== 0)) throw new Error("a program did not exit 0");
      overlaps = Atomics.load(words, 10) + Atomics.load(words, 11);
      lanesUsed = inspectTxLanes(twz.open("/.txlanes")).lanes.filter((l) => l.seq !== 0).length;
    },
    recover(kernel) {
      Twz.attach(kernel.port()); // replays every committed log, in sequence order
    },
    check(kernel, journal) {
      const setup = journal.find((e) => e.op === "setup" && e.state === "done")?.result as
        | Setup
        | undefined;
      if (!setup) return [];
      const u32 = (id: bigint, at: number) =>
        kernel.map(id, Prot.Read).view.getUint32(BASE + at, true);
      const progress = Array.from({ length: PROGRAMS }, (_, p) => {
        let done = 0, started = 0;
        for (const e of journal) {
          if (e.op !== "tx" || e.args.p !== p) continue;
          const i = e.args.i as number;
          if (e.state === "done") done = Math.max(done, i);
          started = Math.max(started, i);
        }
        return { done, started };
      });
      return verify(u32, setup, progress);
    },
  };
}

Deno.test("crashtest: two programs' concurrent transactions are whole at every drain", async () => {
  const { text } = await bundleFile(PROGRAM);
  const report = await crashtest(workload(text), { states: 3000, recoveryStates: 300 });
  assert.equal(report.run_error, undefined);
  assert.ok(report.points > 2 * PROGRAMS * COUNT, `${report.points} crash points`);
  assert.equal(lanesUsed, PROGRAMS, "each program committed into a lane of its own");
  assert.ok(overlaps > 0, "the programs' transactions overlapped");
  assert.deepEqual(report.violations, [], `${report.violation_count} violations`);
  assert.equal(report.violation_count, 0);
  // The same stores without transactions: the check sees them torn.
  const broken = await crashtest(workload(text, true), { states: 400, recoveryStates: 0 });
  assert.equal(broken.run_error, undefined);
  assert.ok(broken.violation_count > 0);
});

const pmemInfo = pmem.describe();

Deno.test({
  name: `the same two programs on hal-pmem: every transaction applied, also after a reboot${
    pmemInfo.available ? "" : ` (skipped: ${pmemInfo.reason})`
  }`,
  ignore: !pmemInfo.available && Deno.env.get("CI") !== "true",
  async fn() {
    const { text } = await bundleFile(PROGRAM);
    const dir = await Deno.makeTempDir({ prefix: "twz-concurrent-tx-" });
    const image = join(dir, "t.img");
    const count = 60;
    try {
      let hal = await pmem.open({ image, size: 16 << 20, create: true });
      let kernel = Kernel.boot(hal);
      const twz = Twz.attach(kernel.port());
      prepareThreadLogs(twz);
      const setup: Setup = {
        own: Array.from({ length: PROGRAMS }, () => twz.create({ size: 8192 }).id),
        shared: twz.create({ size: 8192 }).id,
      };
      const progress = kernel.create({ size: 4096, lifetime: "volatile" });
      await runPrograms(kernel, text, setup, progress, count, "tx");
      const all = Array.from({ length: PROGRAMS }, () => ({ done: count, started: count }));
      const read = (k: Kernel) => (id: bigint, at: number) =>
        k.map(id, Prot.Read).view.getUint32(BASE + at, true);
      assert.deepEqual(verify(read(kernel), setup, all), []);
      assert.equal(read(kernel)(setup.shared, COUNTER[0]!), PROGRAMS * count / 2);
      kernel.shutdown();
      hal.close();
      hal = await pmem.open({ image });
      kernel = Kernel.boot(hal);
      Twz.attach(kernel.port());
      assert.deepEqual(verify(read(kernel), setup, all), []);
      kernel.shutdown();
      hal.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a program killed while both commit: the other goes on, and every transaction stays whole, also after a crash", async () => {
  const { text } = await bundleFile(PROGRAM);
  const count = 400;
  let inDoubt = 0;
  for (const at of [20, 60, 110]) {
    const hal = openSim({ size: 8 << 20 });
    const kernel = Kernel.boot(hal);
    const twz = Twz.attach(kernel.port());
    prepareThreadLogs(twz, { lanes: 4, laneBytes: 16384 });
    const setup: Setup = {
      own: Array.from({ length: PROGRAMS }, () => twz.create({ size: 8192 }).id),
      shared: twz.create({ size: 8192 }).id,
    };
    const progress = kernel.create({ size: 4096, lifetime: "volatile" });
    const words = kernel.map(progress, Prot.ReadWrite).extent.i32;
    const lanes = twz.open("/.txlanes");
    const ends = await runPrograms(
      kernel,
      text,
      setup,
      progress,
      count,
      "poll",
      async (m, tids) => {
        while (Atomics.load(words, 1) < at) await new Promise((r) => setTimeout(r, 1));
        m.kill(tids[0]!);
        await m.wait(tids[0]!);
        if (inspectTxLanes(lanes).lanes.some((l) => l.state === "committed")) inDoubt++;
      },
    );
    assert.equal(ends[0]!.exitCode, 137, `killed after ${at}`);
    assert.equal(ends[1]!.exitCode, 0);
    const state = [0, 1].map((p) => ({
      done: Atomics.load(words, 2 * p + 1),
      started: Atomics.load(words, 2 * p),
    }));
    assert.equal(state[1]!.done, count);
    const read = (k: Kernel) => (id: bigint, at: number) =>
      k.map(id, Prot.Read).view.getUint32(BASE + at, true);
    assert.deepEqual(verify(read(kernel), setup, state), [], `in memory, killed after ${at}`);
    // Any line not yet durable may or may not survive (eviction included).
    hal.power!.powerFail({ policy: "random", seed: at });
    const after = Kernel.boot(hal);
    Twz.attach(after.port());
    assert.deepEqual(verify(read(after), setup, state), [], `after a crash, killed after ${at}`);
    after.shutdown();
    hal.close();
  }
  console.log(`kills that left a commit in doubt: ${inDoubt} of 3`);
});
