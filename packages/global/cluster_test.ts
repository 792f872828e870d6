// startCluster/stopCluster with real nats-servers, and a NatsLink across a failover.
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { ErrorCode, TwzError } from "@twz/kernel/abi";
import {
  type Cluster,
  NATS_SERVER_ENV,
  NATS_SKIPPED_LINE,
  natsServerPath,
  readClusterState,
  setupNats,
  startCluster,
  STATE_FILE,
  stopCluster,
} from "./cluster.ts";
import { NatsLink } from "./link.ts";
import { CasConflict } from "./_link_api.ts";

const MISSING = natsServerPath() === null && Deno.env.get("CI") !== "true";
if (MISSING) console.log(NATS_SKIPPED_LINE);

const enc = new TextEncoder();
const dec = new TextDecoder();

function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
function assertEq<T>(a: T, b: T, what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${what}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

/** PIDs of live processes whose command line mentions `dir`. */
function processesOf(dir: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(dir)) out.push(+e.name);
    } catch { /* gone */ }
  }
  return out;
}

Deno.test({
  name: "setupNats() answers one line",
  async fn() {
    const { ok, line } = await setupNats();
    assert(!line.includes("\n"), "one line");
    assertEq(ok, natsServerPath() !== null, "ok iff nats-server is there");
    assert(ok ? line.startsWith("nats_setup: nats-server ") : line === NATS_SKIPPED_LINE, line);
  },
});

Deno.test({
  name: "natsServerPath()/setupNats() with TWZ_NATS_SERVER set: that file or nothing, no install",
  async fn() {
    const before = Deno.env.get(NATS_SERVER_ENV);
    try {
      Deno.env.set(NATS_SERVER_ENV, "/nonexistent/nats-server");
      assertEq(natsServerPath(), null, "a missing file");
      assertEq(await setupNats(), { ok: false, line: NATS_SKIPPED_LINE }, "skipped, not installed");
      const self = Deno.execPath();
      Deno.env.set(NATS_SERVER_ENV, self);
      assertEq(natsServerPath(), self, "an existing file");
    } finally {
      if (before === undefined) Deno.env.delete(NATS_SERVER_ENV);
      else Deno.env.set(NATS_SERVER_ENV, before);
    }
  },
});

Deno.test({
  name: "startCluster({ servers: 3 }): replicated KV, failover of the meta leader, stopCluster",
  ignore: MISSING,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let cluster: Cluster | null = null;
    let link: NatsLink | null = null;
    try {
      const t0 = performance.now();
      cluster = await startCluster({ servers: 3 });
      console.log(`  3 servers ready in ${(performance.now() - t0).toFixed(0)} ms`);
      assertEq(cluster.servers.map((s) => s.name), ["s1", "s2", "s3"], "names");
      assertEq(new Set(cluster.urls).size, 3, "distinct ports");
      const state = await readClusterState(cluster.dir);
      assertEq(state?.map((s) => s.pid), cluster.servers.map((s) => s.pid), "state file");

      link = await NatsLink.open({ servers: cluster.urls, name: "a", timeoutMs: 5000 });
      // The buckets have 3 replicas.
      const nc = await connect({ servers: cluster.urls });
      try {
        const jsm = await jetstreamManager(nc);
        for (const s of ["KV_twz-meta", "KV_twz-names", "OBJ_twz-bytes"]) {
          const info = await jsm.streams.info(s);
          assertEq(info.config.num_replicas, 3, `${s} replicas`);
          assertEq(info.cluster?.replicas?.length, 2, `${s} followers`);
        }
      } finally {
        await nc.close();
      }
      // Two links on different servers race compare-and-sets on one key: exactly one wins
      // each round (nats-server 2.9's per-subject check alone lets both win; see link.ts).
      const other = await NatsLink.open({ servers: [cluster.urls[1]!], name: "b" });
      try {
        let r = link.put("meta", "obj.race", enc.encode("0"));
        const t1 = performance.now();
        for (let i = 0; i < 200; i++) {
          const out = await Promise.allSettled([
            link.async.update("meta", "obj.race", enc.encode(`a${i}`), r),
            other.async.update("meta", "obj.race", enc.encode(`b${i}`), r),
            other.async.create("meta", `obj.new${i}`, enc.encode("b")),
            link.async.create("meta", `obj.new${i}`, enc.encode("a")),
          ]);
          const wins = out.map((o) => o.status === "fulfilled");
          assert(wins[0] !== wins[1], `round ${i}: one update wins (${JSON.stringify(out)})`);
          assert(wins[2] !== wins[3], `round ${i}: one create wins (${JSON.stringify(out)})`);
          for (const o of out) {
            assert(o.status === "fulfilled" || o.reason instanceof CasConflict, String(o));
          }
          const cur = link.get("meta", "obj.race")!;
          const winner = out[0]!.status === "fulfilled" ? out[0]! : out[1]!;
          assertEq(
            cur.revision,
            (winner as PromiseFulfilledResult<number>).value,
            "winner's revision",
          );
          assertEq(dec.decode(cur.value), `${wins[0] ? "a" : "b"}${i}`, "winner's value");
          r = cur.revision;
        }
        console.log(
          `  200 CAS races: one winner each, ${
            ((performance.now() - t1) / 200).toFixed(1)
          } ms a round`,
        );
      } finally {
        await other.close();
      }

      const rev = link.create("meta", "obj.f", enc.encode("v1"));
      link.putBytes("obj.f.1", new Uint8Array(200_000).fill(7));

      const seen: string[] = [];
      const stopWatch = link.watch("meta", "obj.>", (key, e) => {
        if (e) seen.push(`${key}=${dec.decode(e.value)}`);
      });
      let lost: string | null = null;
      link.holdLease("node.a", 1500, { node: "a" }, (why) => {
        lost = why;
      });

      // Kill the meta bucket's stream leader; writes go on after the failover.
      const leader = link.leaders().meta;
      assert(["s1", "s2", "s3"].includes(leader), `leader ${leader}`);
      const k0 = performance.now();
      await cluster.kill(leader);
      let tries = 0, rev2 = 0;
      const errors: string[] = [];
      for (;;) {
        tries++;
        try {
          rev2 = link.update("meta", "obj.f", enc.encode("v2"), rev);
          break;
        } catch (e) {
          errors.push(String(e));
          assert(performance.now() - k0 < 30000, `no write within 30 s: ${errors.join("; ")}`);
          // A write whose answer was lost may have landed: then the CAS conflicts.
          try {
            const cur = link.get("meta", "obj.f");
            if (cur && dec.decode(cur.value) === "v2") {
              rev2 = cur.revision;
              break;
            }
          } catch (e) {
            errors.push(String(e));
          }
        }
      }
      const failoverMs = performance.now() - k0;
      console.log(
        `  meta leader ${leader} killed: next write after ${
          failoverMs.toFixed(0)
        } ms (${tries} tries)`,
      );
      for (const e of errors) console.log(`    ${e}`);
      assert(rev2 > rev, "the write landed");
      const after = link.leaders();
      assert(
        after.meta !== leader && ["s1", "s2", "s3"].includes(after.meta),
        `new leader ${after.meta}`,
      );
      assertEq(dec.decode(link.get("meta", "obj.f")!.value), "v2", "committed value");
      // The object store's stream elects its own leader, which may take
      // longer than one call's 5 s on nats-server 2.9: a read that times out
      // meanwhile is tried again (the bytes are still compared exactly).
      let bytes: Uint8Array | null = null;
      for (let attempt = 1;; attempt++) {
        try {
          bytes = link.getBytes("obj.f.1");
          break;
        } catch (e) {
          if (attempt >= 4 || !(e instanceof TwzError) || e.code !== ErrorCode.TimedOut) throw e;
          console.log(`    getBytes after the failover: ${e.message} (try ${attempt})`);
        }
      }
      assertEq(bytes?.length, 200_000, "bytes survive the failover");
      link.put("meta", "obj.g", enc.encode("more"));
      // The watch goes on across the failover.
      const w0 = Date.now();
      while (!seen.includes("obj.g=more") && Date.now() - w0 < 10000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert(seen.includes("obj.g=more"), `watch after the failover: ${seen.join(" ")}`);
      assert(seen.includes("obj.f=v2"), `the write of the failover seen too: ${seen.join(" ")}`);
      console.log(`  watch saw the write after the failover in ${Date.now() - w0} ms`);
      stopWatch();
      // A node lease shorter than the failover may have lapsed; it can be taken again at
      // the revision it was left at (nobody else wrote it).
      await new Promise((r) => setTimeout(r, 50));
      console.log(`  node lease of 1500 ms across the failover: ${lost ?? "kept"}`);
      if (lost === null) link.dropLease("node.a", false);
      const cur = link.get("meta", "node.a")!;
      const r = link.holdLease("node.a", 1500, { node: "a" }, () => {}, cur.revision);
      assert(r > cur.revision, "lease taken again");
      link.dropLease("node.a", true);

      // The killed server comes back with its data and catches up.
      await cluster.restart(leader);
      const pid = cluster.servers.find((s) => s.name === leader)!.pid;
      assertEq(
        (await readClusterState(cluster.dir))?.find((s) => s.name === leader)?.pid,
        pid,
        "state file has the new pid",
      );

      await link.close();
      link = null;

      // Another process stops everything from the state file.
      const dir = cluster.dir;
      assertEq(processesOf(dir).length, 3, "3 servers of this dir before");
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("./testdata/stop_cluster.ts", import.meta.url).pathname, dir],
        stderr: "inherit",
      }).output();
      assert(out.success, "stop_cluster.ts ran");
      assertEq(dec.decode(out.stdout).trim(), "3", "stopped 3");
      assertEq(processesOf(dir), [], "no process of that dir remains");
      let gone = false;
      try {
        await Deno.stat(dir);
      } catch {
        gone = true;
      }
      assert(gone, "the temporary directory is removed");
      assertEq(await stopCluster(dir), -1, "nothing left to stop");
    } finally {
      await link?.close().catch(() => {});
      await cluster?.stop();
    }
  },
});

Deno.test({
  name:
    "startCluster({ servers: 1, dir }): no routes; stop keeps the directory; a second start there is refused",
  ignore: MISSING,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "twz-cluster-test-" });
    let cluster: Cluster | null = null;
    try {
      cluster = await startCluster({ servers: 1, dir });
      assertEq(cluster.servers[0]!.clusterPort, 0, "no route port");
      let refused: unknown = null;
      try {
        await startCluster({ servers: 1, dir });
      } catch (e) {
        refused = e;
      }
      assert(refused instanceof TwzError && refused.code === ErrorCode.ImageBusy, String(refused));
      assert(!String((refused as Error).message).includes("\n"), "one line");
      await cluster.stop();
      assertEq(processesOf(await Deno.realPath(dir)), [], "stopped");
      assert((await Deno.stat(`${dir}/s1`)).isDirectory, "data kept");
      let stateGone = false;
      try {
        await Deno.stat(`${dir}/${STATE_FILE}`);
      } catch {
        stateGone = true;
      }
      assert(stateGone, "state file removed");
    } finally {
      await cluster?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
