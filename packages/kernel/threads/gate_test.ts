// Secure gates between threads (real Workers, permissions "none"): a server
// thread with write access serves a gate object; a caller whose capability
// has Exec and a gate [64, 128) aligned to 8 reaches the server at those
// entry points only, and the server learns the caller's thread and
// contexts; a caller without a capability is refused; no server, a server
// that ends, and a caller that stops waiting each give the other side a
// clean TwzError.
import assert from "node:assert/strict";
import {
  CapFlag,
  encodeGrant,
  ErrorCode,
  generateKeyPair,
  type ObjID,
  Prot,
  SecProt,
  signCapability,
  type ThreadInfo,
} from "@twz/kernel/abi";
import { Kernel } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { ThreadManager } from "@twz/kernel/threads";
import { ADMIN } from "../_security.ts";
import { bundle, installCode, program, until } from "./_test_programs.ts";

const P = await bundle({
  // Serves gate args[0] for args[1] calls: answers each with what it learnt.
  server: program(`
    const g = BigInt(args[0]), n = Number(args[1]);
    port.gateServe(g);
    port.consoleWrite("serving\\n");
    for (let i = 0; i < n; i++) {
      const c = port.gateReceive(10000);
      if (c === null) break;
      const text = JSON.stringify({ offset: c.offset, callerTid: c.callerTid,
        callerContexts: c.callerContexts.map(String), args: Array.from(c.args) });
      port.gateReply(c.call, new TextEncoder().encode(text));
    }
    return 0;`),
  // Serves gate args[0], takes one call and ends without answering.
  quitter: program(`
    port.gateServe(BigInt(args[0]));
    port.consoleWrite("serving\\n");
    const c = port.gateReceive(10000);
    return c === null ? 1 : 0;`),
  // Serves gate args[0], takes one call, waits args[1] ms, then answers it.
  slow: program(`
    port.gateServe(BigInt(args[0]));
    port.consoleWrite("serving\\n");
    const c = port.gateReceive(10000);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(args[1]));
    let r = 0;
    try { port.gateReply(c.call, new Uint8Array([1])); } catch (e) { r = e.code; }
    port.consoleWrite("reply " + JSON.stringify({ r }) + "\\n");
    return 0;`),
  // Calls gate args[0] at each offset in args[2..] (timeout args[1] ms).
  caller: program(`
    const g = BigInt(args[0]), ms = Number(args[1]);
    const out = [];
    for (const off of args.slice(2).map(Number)) {
      try {
        const r = port.gateCall(g, off, new Uint8Array([off & 255, 7]), ms);
        out.push(JSON.parse(new TextDecoder().decode(r)));
      } catch (e) {
        out.push({ error: e.code, message: e.message });
      }
    }
    port.consoleWrite("calls " + JSON.stringify(out) + "\\n");
    return 0;`),
  // Tries to serve gate args[0] (no write access).
  noserve: program(`
    try { port.gateServe(BigInt(args[0])); return 0; }
    catch (e) { port.consoleWrite("serve " + JSON.stringify({ r: e.code }) + "\\n"); return 0; }`),
});

interface World {
  kernel: Kernel;
  manager: ThreadManager;
  out: string[];
  /** The gate object: keyed, default protections rw (no x: calls need a capability). */
  gate: ObjID;
  /** A context holding Exec on `gate` with gate [64, 128) align 8. */
  ctx: ObjID;
  codes: Record<keyof typeof P, ObjID>;
}

async function world(kernel: Kernel): Promise<World> {
  const out: string[] = [];
  const manager = new ThreadManager(kernel, { console: (t) => out.push(t), killGraceMs: 2000 });
  const pair = await generateKeyPair("ecdsa-p256");
  const key = await kernel.security.keyCreate(ADMIN, { ...pair });
  const gate = kernel.create({ size: 4096, prot: Prot.ReadWrite, keyId: key.kuid });
  const ctx = kernel.security.ctxCreate(ADMIN);
  const cap = await signCapability({
    target: gate,
    accessor: ctx,
    prot: SecProt.Exec,
    flags: CapFlag.Sha256,
    expiry: 0n,
    gate: { offset: 64n, length: 64n, align: 8n },
  }, pair.privateKey);
  kernel.security.ctxAdd(ADMIN, ctx, encodeGrant(cap));
  const codes = {} as Record<keyof typeof P, ObjID>;
  for (const k of Object.keys(P) as (keyof typeof P)[]) codes[k] = installCode(kernel, P[k]);
  return { kernel, manager, out, gate, ctx, codes };
}

async function said(out: string[], tag: string): Promise<unknown> {
  let line: string | undefined;
  await until(() => (line = out.find((l) => l.startsWith(tag + " "))) !== undefined, tag);
  return JSON.parse(line!.slice(tag.length + 1));
}

async function ended(manager: ThreadManager, t: ThreadInfo): Promise<void> {
  const end = await manager.wait(t.tid);
  assert.equal(end.exitCode, 0, `thread ${t.name} ended ${JSON.stringify(end.fault)}`);
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const kernel = Kernel.boot(openSim({ size: 16 << 20 }));
  const w = await world(kernel);
  try {
    await fn(w);
  } finally {
    await w.manager.shutdown(500);
    kernel.shutdown();
  }
}

function serve(w: World, code: ObjID, args: string[]): ThreadInfo {
  const t = w.manager.spawn({ code, name: "server", args: [String(w.gate), ...args] });
  return t;
}

Deno.test("gates: calls at admitted entry points reach the server with the caller's thread and contexts; others are refused", () =>
  withWorld(async (w) => {
    const server = serve(w, w.codes.server, ["2"]);
    await until(() => w.out.includes("serving\n"), "the server");
    const caller = w.manager.spawn({
      code: w.codes.caller,
      name: "caller",
      args: [String(w.gate), "5000", "64", "68", "128", "0", "120", "56"],
      contexts: [w.ctx],
    });
    await ended(w.manager, caller);
    await ended(w.manager, server);
    const calls = await said(w.out, "calls") as Record<string, unknown>[];
    const answer = (offset: number) => ({
      offset,
      callerTid: caller.tid,
      callerContexts: [String(w.ctx)],
      args: [offset, 7],
    });
    const refused = (offset: number) => ({
      error: ErrorCode.AccessDenied,
      message:
        `gate ${w.gate.toString(16).padStart(32, "0")} does not admit entry point ${offset} ` +
        `for thread ${caller.tid}`,
    });
    assert.deepEqual(calls, [
      answer(64),
      refused(68), // misaligned
      refused(128), // past the gate
      refused(0), // before it
      answer(120),
      refused(56),
    ]);
  }));

Deno.test("gates: no capability → refused; serving needs write access; no server → NotSupported", () =>
  withWorld(async (w) => {
    // Nobody serves yet.
    const c0 = w.manager.spawn({
      code: w.codes.caller,
      name: "early",
      args: [String(w.gate), "5000", "64"],
      contexts: [w.ctx],
    });
    await ended(w.manager, c0);
    const [early] = await said(w.out, "calls") as { error: number; message: string }[];
    assert.equal(early!.error, ErrorCode.NotSupported);
    assert.match(early!.message, /no thread serves gate/);
    w.out.length = 0;
    const server = serve(w, w.codes.server, ["1"]);
    await until(() => w.out.includes("serving\n"), "the server");
    // A caller without contexts: the defaults lack x, no capability admits it.
    const c1 = w.manager.spawn({
      code: w.codes.caller,
      name: "stranger",
      args: [String(w.gate), "5000", "64"],
    });
    await ended(w.manager, c1);
    const [stranger] = await said(w.out, "calls") as { error: number }[];
    assert.equal(stranger!.error, ErrorCode.AccessDenied);
    // A gate object nobody may write cannot be served.
    const sealed = w.kernel.create({ size: 4096, prot: Prot.Read });
    const n = w.manager.spawn({ code: w.codes.noserve, name: "noserve", args: [String(sealed)] });
    await ended(w.manager, n);
    assert.deepEqual(await said(w.out, "serve"), { r: ErrorCode.AccessDenied });
    w.manager.kill(server.tid);
    await w.manager.wait(server.tid);
  }));

Deno.test("gates: a server that ends, a caller that times out — the other side gets a clean error", () =>
  withWorld(async (w) => {
    // The server takes the call and ends without answering: the caller fails at once.
    const quitter = serve(w, w.codes.quitter, []);
    await until(() => w.out.includes("serving\n"), "the quitter");
    const c1 = w.manager.spawn({
      code: w.codes.caller,
      name: "c1",
      args: [String(w.gate), "20000", "64"],
      contexts: [w.ctx],
    });
    await ended(w.manager, c1);
    await ended(w.manager, quitter);
    const [lost] = await said(w.out, "calls") as { error: number; message: string }[];
    assert.equal(lost!.error, ErrorCode.ObjectNotFound);
    assert.match(lost!.message, /ended before it answered/);
    w.out.length = 0;
    // The caller gives up (timeout) before the server answers: the answer is refused.
    const slow = serve(w, w.codes.slow, ["400"]);
    await until(() => w.out.includes("serving\n"), "the slow server");
    const c2 = w.manager.spawn({
      code: w.codes.caller,
      name: "c2",
      args: [String(w.gate), "100", "64"],
      contexts: [w.ctx],
    });
    await ended(w.manager, c2);
    const [late] = await said(w.out, "calls") as { error: number; message: string }[];
    assert.equal(late!.error, ErrorCode.TimedOut);
    assert.match(late!.message, /got no answer within 100 ms/);
    await ended(w.manager, slow);
    assert.deepEqual(await said(w.out, "reply"), { r: ErrorCode.ObjectNotFound });
  }));
