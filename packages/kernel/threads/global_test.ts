// The global object space from threads (real Workers, permissions "none"),
// on hal-sim and hal-pmem, with a fake in-memory cluster (testdata/
// fake_cluster.ts): `port.global` (Sys.Global) reaches the node's hook with
// the thread's principal after the rights checks, or answers NotSupported
// on a system that is not a node; a map of an ID held nowhere fetches it;
// mapLimit keeps writable maps of objects owned elsewhere out; and
// replaceContents is seen through a thread's live mapping, also when the
// object grows.
import assert from "node:assert/strict";
import { Kernel, Prot } from "@twz/kernel";
import { ErrorCode, formatId, NOT_IN_CLUSTER } from "@twz/kernel/abi";
import { openSim } from "@twz/hal-sim";
import { ThreadManager } from "@twz/kernel/threads";
import { FakeCluster, freshId } from "../testdata/fake_cluster.ts";
import {
  bundle,
  installCode,
  PMEM_IGNORE,
  PMEM_SKIP,
  program,
  until,
  withPmem,
} from "./_test_programs.ts";

const MiB = 1 << 20;

/** `res(f)`: `{ ok: value }` or `{ code, message }` (bigints as strings). */
const HELPERS = `
  const res = (f) => {
    try {
      const v = f();
      return { ok: typeof v === "bigint" ? String(v) : v ?? null };
    } catch (e) {
      return { code: e.code ?? e.name, message: e.message };
    }
  };
  const say = (tag, v) => port.consoleWrite(tag + " " + JSON.stringify(v) + "\\n");
`;

const P = await bundle({
  // args: R (read-only), RW, G (held nowhere: in the cluster), LIM (mapLimit r-x).
  globals: program(`${HELPERS}
    const [R, RW, G, LIM] = args.map(BigInt);
    const r = {};
    r.node = port.info().node;
    r.status = res(() => port.global("status", {}).node);
    r.publishR = res(() => port.global("publish", { id: R }));
    r.ownR = res(() => port.global("own", { id: R }));
    r.ownRW = res(() => port.global("own", { id: RW }));
    r.commit = res(() => port.global("commit", { ids: [RW] }));
    r.list = res(() => port.global("list", { path: "/" }));
    r.badOp = res(() => port.global("nope", {}));
    r.badArgs = res(() => port.global("own", 5));
    let g;
    r.mapG = res(() => new TextDecoder().decode((g = port.map(G, abi.Prot.Read)).bytes.subarray(0, 6)));
    // refresh installs a longer version: the live mapping follows (this
    // thread is inside the call while the object grows).
    r.refresh = res(() => port.global("refresh", { id: G }));
    r.refreshed = g ? { size: g.size, head: new TextDecoder().decode(g.bytes.subarray(0, 8)) } : null;
    r.mapLimRW = res(() => port.map(LIM, abi.Prot.ReadWrite).writable);
    r.mapLimR = res(() => port.map(LIM, abi.Prot.Read).writable);
    say("g", r);
    return 0;`),
  // Maps X read-only; reports its bytes at each step F's word 0 names
  // (F word 4: the step it has reported), making calls (yields) meanwhile.
  watcher: program(`${HELPERS}
    const [X, F] = args.map(BigInt);
    const x = port.map(X, abi.Prot.Read), f = port.map(F);
    const look = () => ({
      size: x.size,
      head: new TextDecoder().decode(x.bytes.subarray(0, 8)),
      last: x.bytes[x.size - 1],
    });
    for (let step = 0; step < 3; step++) {
      while (f.view.getUint32(0, true) < step) port.threadYield();
      say("step" + step, look());
      f.view.setUint32(4, step + 1, true);
    }
    return 0;`),
});

/** The JSON a thread said after `tag` (waits for it). */
async function said(out: string[], tag: string): Promise<Record<string, unknown>> {
  let line: string | undefined;
  await until(() => (line = out.find((l) => l.startsWith(tag + " "))) !== undefined, tag);
  return JSON.parse(line!.slice(tag.length + 1));
}

async function onSim(fn: (kernel: Kernel) => Promise<void>): Promise<void> {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  try {
    await fn(kernel);
  } finally {
    kernel.shutdown();
  }
}

async function globalsFromThread(kernel: Kernel, node: boolean): Promise<void> {
  const out: string[] = [];
  const manager = new ThreadManager(kernel, { console: (t) => out.push(t) });
  try {
    const R = kernel.create({ size: 4096, prot: Prot.Read });
    const RW = kernel.create({ size: 4096 });
    const LIM = kernel.create({ size: 4096 });
    const G = freshId(41);
    const cluster = new FakeCluster();
    cluster.kernel = kernel;
    const next = new Uint8Array(3 * 4096 + 1).fill(0x6e); // "nnnn…"
    cluster.objects.set(G, {
      bytes: new TextEncoder().encode("global"),
      prot: Prot.Read,
      keyId: 0n,
      next,
    });
    cluster.limits.set(LIM, Prot.Read | Prot.Exec);
    if (node) kernel.global = cluster;
    const code = installCode(kernel, P.globals);
    const t = manager.spawn({ code, name: "globals", args: [R, RW, G, LIM].map(String) });
    const end = await manager.wait(t.tid);
    assert.equal(end.exitCode, 0, JSON.stringify(end.fault));
    const r = await said(out, "g");
    const bad = { code: ErrorCode.InvalidArgument };
    const badOp = r.badOp as { code: number; message: string };
    assert.equal(badOp.code, bad.code);
    assert.match(badOp.message, /^global: unknown operation "nope" \(one of status, publish/);
    assert.equal((r.badArgs as { code: number }).code, bad.code);
    if (!node) {
      const refused = { code: ErrorCode.NotSupported, message: NOT_IN_CLUSTER };
      assert.deepEqual(r, {
        node: null,
        status: refused,
        publishR: refused,
        ownR: refused,
        ownRW: refused,
        commit: refused,
        list: refused,
        badOp,
        badArgs: r.badArgs,
        mapG: { code: ErrorCode.ObjectNotFound, message: `No object ${formatId(G)}` },
        refresh: refused,
        refreshed: null,
        mapLimRW: { ok: true },
        mapLimR: { ok: false },
      });
      assert.deepEqual(cluster.fetched, []);
      return;
    }
    const hex = formatId(LIM);
    assert.deepEqual(r, {
      node: "node-a",
      status: { ok: "node-a" },
      publishR: { ok: null },
      ownR: {
        code: ErrorCode.AccessDenied,
        message: `cannot take ownership of ${formatId(R)}: its protections here are r----`,
      },
      ownRW: { ok: null },
      commit: { ok: null },
      list: { ok: null },
      badOp,
      badArgs: r.badArgs,
      mapG: { ok: "global" },
      refresh: { ok: null },
      refreshed: { size: next.length, head: "nnnnnnnn" },
      mapLimRW: {
        code: ErrorCode.AccessDenied,
        message: `object ${hex} is owned by another node: take ownership first (own ${hex})`,
      },
      mapLimR: { ok: false },
    });
    // The hook heard the calls that passed, with the thread's principal.
    assert.deepEqual(cluster.calls.map((c) => c.op), [
      "status",
      "publish",
      "own",
      "commit",
      "list",
      "refresh",
    ]);
    for (const c of cluster.calls) {
      assert.deepEqual(c.principal, { admin: false, tid: t.tid, contexts: [] });
    }
    assert.deepEqual(cluster.calls[1]!.args, { id: R });
    assert.deepEqual(cluster.calls[3]!.args, { ids: [RW] });
    assert.deepEqual(cluster.fetched, [G]);
    assert.equal(kernel.stat(G).lifetime, "persistent");
  } finally {
    kernel.global = undefined;
    await manager.shutdown(200);
  }
}

async function replaceUnderThread(kernel: Kernel): Promise<void> {
  const out: string[] = [];
  const manager = new ThreadManager(kernel, { console: (t) => out.push(t) });
  try {
    const X = kernel.create({ size: 4096 });
    kernel.write(X, 0, new Uint8Array(4096).fill(0x41)); // "AAAA…"
    kernel.create({ size: 4096 }); // right after X: growing X moves it
    const F = kernel.create({ size: 64, lifetime: "volatile" });
    const f = kernel.map(F).view;
    const code = installCode(kernel, P.watcher);
    const t = manager.spawn({ code, name: "watcher", args: [X, F].map(String) });
    await until(() => f.getUint32(4, true) === 1, "step 0");
    assert.deepEqual(await said(out, "step0"), { size: 4096, head: "AAAAAAAA", last: 0x41 });
    // Same size: in place, the tail zeroed.
    kernel.replaceContents(X, new TextEncoder().encode("replaced"));
    f.setUint32(0, 1, true);
    await until(() => f.getUint32(4, true) === 2, "step 1");
    assert.deepEqual(await said(out, "step1"), { size: 4096, head: "replaced", last: 0 });
    // Longer: the object grows (and moves); the thread's mapping follows.
    const big = new Uint8Array(5 * 4096 + 3).fill(0x42);
    kernel.replaceContents(X, big);
    f.setUint32(0, 2, true);
    await until(() => f.getUint32(4, true) === 3, "step 2");
    assert.deepEqual(await said(out, "step2"), { size: big.length, head: "BBBBBBBB", last: 0x42 });
    const end = await manager.wait(t.tid);
    assert.equal(end.exitCode, 0, JSON.stringify(end.fault));
  } finally {
    await manager.shutdown(200);
  }
}

Deno.test("threads: port.global reaches the hook with the thread's principal after its rights checks; map fetches and is limited (hal-sim)", async () => {
  await onSim((kernel) => globalsFromThread(kernel, true));
});

Deno.test("threads: port.global without a hook is NotSupported (not in a cluster) and nothing is fetched (hal-sim)", async () => {
  await onSim((kernel) => globalsFromThread(kernel, false));
});

Deno.test("threads: replaceContents is seen through a thread's live mapping, also when it grows (hal-sim)", async () => {
  await onSim((kernel) => replaceUnderThread(kernel));
});

Deno.test({
  name: `threads: port.global and mapLimit from a thread (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => withPmem((kernel) => globalsFromThread(kernel, true)),
});

Deno.test({
  name:
    `threads: replaceContents is seen through a thread's live mapping, also when it grows (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => withPmem((kernel) => replaceUnderThread(kernel)),
});
