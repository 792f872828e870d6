// NatsLink against a real single-server nats-server (started and stopped here).
import { ErrorCode, TwzError } from "@twz/kernel/abi";
import { CasConflict, type KvEntry } from "./_link_api.ts";
import { type Cluster, NATS_SKIPPED_LINE, natsServerPath, startCluster } from "./cluster.ts";
import { NatsLink } from "./link.ts";

const MISSING = natsServerPath() === null && Deno.env.get("CI") !== "true";
if (MISSING) console.log(NATS_SKIPPED_LINE);

const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
function assertEq<T>(a: T, b: T, what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${what}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}
function assertThrows(f: () => unknown, check: (e: unknown) => boolean, what: string): unknown {
  try {
    f();
  } catch (e) {
    assert(check(e), `${what}: unexpected ${String(e)}`);
    return e;
  }
  throw new Error(`${what}: did not throw`);
}
async function assertRejects(
  p: Promise<unknown>,
  check: (e: unknown) => boolean,
  what: string,
): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    assert(check(e), `${what}: unexpected ${String(e)}`);
    return e;
  }
  throw new Error(`${what}: did not reject`);
}
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const json = (e: KvEntry | null) => e && JSON.parse(dec.decode(e.value));

Deno.test({
  name: "NatsLink: KV, bytes, watch, serve, leases, timeouts against one nats-server",
  ignore: MISSING,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let cluster: Cluster | null = null;
    const links: NatsLink[] = [];
    try {
      cluster = await startCluster({ servers: 1 });
      const a = await NatsLink.open({ servers: cluster.urls, name: "a", prefix: "t" });
      const b = await NatsLink.open({ servers: cluster.urls, name: "b", prefix: "t" });
      links.push(a, b);
      assert(a.connected, "connected after open");

      await t.step("sync get/create/update/put/delete/keys and CAS conflicts", () => {
        assertEq(a.get("meta", "obj.k1"), null, "absent key");
        const r1 = a.create("meta", "obj.k1", enc.encode('{"v":1}'));
        assertEq(json(b.get("meta", "obj.k1")), { v: 1 }, "b reads a's create");
        assertEq(b.get("meta", "obj.k1")!.revision, r1, "revision");
        const e = assertThrows(
          () => b.create("meta", "obj.k1", enc.encode("{}")),
          (e) => e instanceof CasConflict && e.code === ErrorCode.Busy,
          "second create",
        ) as CasConflict;
        assertEq(e.key, "obj.k1", "conflict key");
        assert(!e.message.includes("\n"), "one line");
        const r2 = a.update("meta", "obj.k1", enc.encode('{"v":2}'), r1);
        assert(r2 > r1, "update raises the revision");
        assertThrows(
          () => b.update("meta", "obj.k1", enc.encode('{"v":3}'), r1),
          (e) => e instanceof CasConflict,
          "stale update",
        );
        assertEq(json(a.get("meta", "obj.k1")), { v: 2 }, "stale update wrote nothing");
        const r3 = a.put("meta", "obj.k2", enc.encode("{}"));
        a.put("names", "d.x", enc.encode("1"));
        assertEq(a.keys("meta", "obj.>").sort(), ["obj.k1", "obj.k2"], "keys");
        assertEq(a.keys("names", ">"), ["d.x"], "keys of the names bucket");
        assertThrows(
          () => a.delete("meta", "obj.k2", r3 - 1),
          (e) => e instanceof CasConflict,
          "delete at a stale revision",
        );
        a.delete("meta", "obj.k2", r3);
        assertEq(a.get("meta", "obj.k2"), null, "deleted");
        assertEq(a.keys("meta", "obj.>"), ["obj.k1"], "keys after delete");
        // A deleted key can be created again.
        a.create("meta", "obj.k2", enc.encode("{}"));
        a.delete("meta", "obj.k2");
      });

      await t.step("async twins answer the same", async () => {
        const r = await a.async.create("meta", "obj.as", enc.encode('{"x":1}'));
        assertEq((await b.async.get("meta", "obj.as"))?.revision, r, "async get");
        await assertRejects(
          b.async.create("meta", "obj.as", enc.encode("{}")),
          (e) => e instanceof CasConflict,
          "async create conflict",
        );
        await assertRejects(
          b.async.update("meta", "obj.as", enc.encode("{}"), r + 100),
          (e) => e instanceof CasConflict,
          "async update conflict",
        );
        const r2 = await b.async.update("meta", "obj.as", enc.encode('{"x":2}'), r);
        assertEq(json(a.get("meta", "obj.as")), { x: 2 }, "sync sees async update");
        await a.async.put("meta", "obj.as2", enc.encode("{}"));
        assertEq(
          (await a.async.keys("meta", "obj.>")).filter((k) => k.startsWith("obj.as")).sort(),
          ["obj.as", "obj.as2"],
          "async keys",
        );
        await a.async.delete("meta", "obj.as", r2);
        assertEq(await a.async.get("meta", "obj.as"), null, "async delete");
        // Many in flight at once, each answered to its own caller.
        const revs = await Promise.all(
          Array.from(
            { length: 20 },
            (_, i) => a.async.put("meta", `obj.p${i}`, enc.encode(`${i}`)),
          ),
        );
        assertEq(new Set(revs).size, 20, "distinct revisions");
        const got = await Promise.all(
          Array.from({ length: 20 }, (_, i) => a.async.get("meta", `obj.p${i}`)),
        );
        assert(got.every((g, i) => dec.decode(g!.value) === `${i}`), "each answer its own");
      });

      await t.step("putBytes/getBytes of 4 KiB and 3 MiB (over max_payload: chunked)", async () => {
        for (const size of [4096, 3 << 20]) {
          const bytes = new Uint8Array(size);
          for (let i = 0; i < size; i++) bytes[i] = (i * 31 + size) & 0xff;
          a.putBytes(`obj.${size}.1`, bytes);
          const back = b.getBytes(`obj.${size}.1`);
          assert(back !== null && back.length === size, `size ${size}`);
          assert(back.every((x, i) => x === bytes[i]), `bytes of ${size}`);
          const back2 = await b.async.getBytes(`obj.${size}.1`);
          assert(back2 !== null && back2.length === size, `async size ${size}`);
        }
        assertEq(a.getBytes("obj.none.1"), null, "absent bytes");
        a.deleteBytes("obj.4096.1");
        assertEq(a.getBytes("obj.4096.1"), null, "deleted bytes");
        a.deleteBytes("obj.none.1"); // absent: nothing
      });

      await t.step("a transfer longer than the timeout goes on while it moves", async () => {
        const short = await NatsLink.open({
          servers: cluster!.urls,
          name: "short",
          prefix: "t",
          // Each step of the transfer (a chunk's acknowledgement, the object
          // store's own lookups first) must come within the timeout, the whole
          // transfer need not: 400 ms was too short a step on a loaded CI host.
          timeoutMs: 1000,
        });
        links.push(short);
        const size = 48 << 20;
        const big = new Uint8Array(size);
        for (let i = 0; i < size; i += 4096) big[i] = (i >> 12) & 0xff;
        const t0 = performance.now();
        short.putBytes("obj.big.1", big);
        const back = short.getBytes("obj.big.1")!;
        const ms = performance.now() - t0;
        assert(ms > 1000, `the transfer took ${ms.toFixed(0)} ms, not longer than the timeout`);
        assert(back.length === size, "size");
        for (let i = 0; i < size; i += 4096) assert(back[i] === big[i], `byte ${i}`);
        const back2 = await short.async.getBytes("obj.big.1");
        assertEq(back2?.length, size, "async size");
        console.log(`  48 MiB put + get with a 1000 ms timeout: ${ms.toFixed(0)} ms`);
        short.deleteBytes("obj.big.1");
      });

      await t.step("watch sees puts and deletes, from another link", async () => {
        const seen: [string, string | null][] = [];
        const stop = a.watch("meta", "obj.w.>", (key, e) => {
          seen.push([key, e && dec.decode(e.value)]);
        });
        const r = b.put("meta", "obj.w.1", enc.encode("one"));
        b.put("meta", "obj.other", enc.encode("no"));
        b.update("meta", "obj.w.1", enc.encode("two"), r);
        b.delete("meta", "obj.w.1");
        await until(() => seen.length >= 3, 3000, "watch events");
        assertEq(seen, [["obj.w.1", "one"], ["obj.w.1", "two"], ["obj.w.1", null]], "events");
        stop();
        await sleep(50);
        b.put("meta", "obj.w.2", enc.encode("after"));
        await sleep(200);
        assertEq(seen.length, 3, "no events after stop");
      });

      await t.step("serve/request, sync and async; no responder is Busy", async () => {
        const stop = b.serve("twz.node.b.handover", async (data) => {
          await sleep(1);
          return enc.encode(`re:${dec.decode(data)}`);
        });
        assertEq(
          dec.decode(await a.async.request("twz.node.b.handover", enc.encode("x"), 2000)),
          "re:x",
          "async request",
        );
        stop();
        await sleep(50);
        await assertRejects(
          a.async.request("twz.node.b.handover", enc.encode("y"), 1000),
          (e) => e instanceof TwzError && e.code === ErrorCode.Busy,
          "no responder",
        );
        // A handler on another thread's link answers a sync request (this thread blocks).
        const stop2 = a.serve("twz.echo", (d) => d);
        assertEq(
          dec.decode(await b.async.request("twz.echo", enc.encode("z"), 2000)),
          "z",
          "echo",
        );
        stop2();
        // A sync request whose only server runs on this (blocked) thread times out, one line.
        const stop3 = b.serve("twz.self", (d) => d);
        assertThrows(
          () => a.request("twz.self", enc.encode("q"), 300),
          (e) =>
            e instanceof TwzError && e.code === ErrorCode.TimedOut && !e.message.includes("\n"),
          "self request",
        );
        stop3();
      });

      await t.step("holdLease renews while this thread is blocked; reports loss", async () => {
        const leaseMs = 600;
        let lost: string | null = null;
        const r0 = a.holdLease("node.a", leaseMs, { node: "a", boot: 1 }, (why) => {
          lost = why;
        });
        const end = Date.now() + 3 * leaseMs;
        while (Date.now() < end) { /* busy: the event loop cannot run */ }
        const cur = b.get("meta", "node.a")!;
        const v = json(cur) as { node: string; boot: number; lease: number };
        assert(cur.revision > r0 + 2, `renewed several times (${r0} → ${cur.revision})`);
        assert(v.lease > Date.now(), "lease still in the future after 3 leases of blocking");
        assertEq([v.node, v.boot], ["a", 1], "fields kept");
        assertEq(lost, null, "not lost");
        // Another writer takes the key: the next renewal loses its CAS.
        b.put("meta", "node.a", enc.encode('{"node":"b","lease":0}'));
        await until(() => lost !== null, 3 * leaseMs, "onLost");
        assert(!String(lost).includes("\n") && String(lost).includes("node.a"), String(lost));
        await sleep(leaseMs);
        assertEq(json(b.get("meta", "node.a")), { node: "b", lease: 0 }, "no renewal after loss");
        // holdLease at a stale revision conflicts; dropLease with expire writes lease 0.
        assertThrows(
          () => a.holdLease("node.a", leaseMs, { node: "a" }, () => {}, r0),
          (e) => e instanceof CasConflict,
          "stale holdLease",
        );
        a.holdLease("node.c", leaseMs, { node: "c" }, () => {});
        a.dropLease("node.c", true);
        assertEq(json(b.get("meta", "node.c")), { node: "c", lease: 0 }, "expired by dropLease");
      });

      await t.step("leaders() names a server of the cluster", () => {
        const l = a.leaders();
        assertEq(l, { meta: "s1", names: "s1", bytes: "s1" }, "leaders");
      });

      await t.step(
        "a timeout is one line; a late answer is not taken for the next call",
        async () => {
          const fast = await NatsLink.open({
            servers: cluster!.urls,
            name: "fast",
            prefix: "t",
            timeoutMs: 300,
          });
          links.push(fast);
          fast.put("meta", "obj.late1", enc.encode("first"));
          fast.put("meta", "obj.late2", enc.encode("second"));
          await cluster!.kill("s1", "SIGSTOP");
          try {
            const t0 = Date.now();
            const e = assertThrows(
              () => fast.get("meta", "obj.late1"),
              (e) => e instanceof TwzError && e.code === ErrorCode.TimedOut,
              "get with the server stopped",
            ) as TwzError;
            assert(Date.now() - t0 < 1500, "timed out near 300 ms");
            assertEq(
              e.message,
              "global space: no answer from the cluster in 300 ms (get obj.late1)",
              "message",
            );
            await assertRejects(
              fast.async.get("meta", "obj.late1"),
              (e) => e instanceof TwzError && e.code === ErrorCode.TimedOut,
              "async get with the server stopped",
            );
          } finally {
            await cluster!.kill("s1", "SIGCONT");
          }
          // The answers to the timed-out calls arrive now; this call gets its own.
          await sleep(100);
          const got = fast.get("meta", "obj.late2");
          assertEq(got && dec.decode(got.value), "second", "own answer");
          const got1 = fast.get("meta", "obj.late1");
          assertEq(got1 && dec.decode(got1.value), "first", "next answer");
        },
      );

      await t.step(
        "server lost: status events, an unrenewable lease is lost, data back after restart",
        async () => {
          const statuses: boolean[] = [];
          a.onStatus((c) => statuses.push(c));
          let lost: string | null = null;
          a.holdLease("node.z", 600, { node: "z" }, (why) => {
            lost = why;
          });
          await cluster!.kill("s1");
          await until(() => statuses.includes(false) && !a.connected, 3000, "disconnect event");
          await until(() => lost !== null, 3000, "lease lost");
          assert(
            String(lost).includes("before it lapsed") && !String(lost).includes("\n"),
            String(lost),
          );
          await cluster!.restart("s1");
          await until(() => statuses.at(-1) === true && a.connected, 10000, "reconnect event");
          assertEq(json(a.get("meta", "obj.k1")), { v: 2 }, "data kept across the restart");
          assertEq(json(a.get("meta", "node.z"))?.node, "z", "the lost lease stays as written");
        },
      );

      await t.step("after close, calls fail with Shutdown", async () => {
        await b.close();
        assertThrows(
          () => b.get("meta", "obj.k1"),
          (e) => e instanceof TwzError && e.code === ErrorCode.Shutdown,
          "closed",
        );
        await assertRejects(
          b.async.get("meta", "obj.k1"),
          (e) => e instanceof TwzError && e.code === ErrorCode.Shutdown,
          "closed async",
        );
      });
    } finally {
      for (const l of links) await l.close().catch(() => {});
      await cluster?.stop();
    }
  },
});

Deno.test({
  name: "NatsLink.open() fails in one line, quickly, when no server answers",
  ignore: MISSING,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const t0 = Date.now();
    const e = await assertRejects(
      NatsLink.open({ servers: [`nats://127.0.0.1:${port}`], name: "x" }),
      (e) => e instanceof TwzError,
      "open",
    ) as TwzError;
    const ms = Date.now() - t0;
    assert(ms < 5000, `failed in ${ms} ms`);
    assert(
      e.message.startsWith(`cannot reach the cluster at nats://127.0.0.1:${port}: `),
      e.message,
    );
    assert(!e.message.includes("\n"), "one line");
    console.log(`  ${e.message} (${ms} ms)`);
  },
});
