// Issue 15's faults and bad inputs: each gets a one-line error and loses
// nothing — no server reachable at boot, a version conflict, a stale lease,
// an object larger than a bucket's message limit (3 MiB, chunked), a cluster
// that does not answer in time. In-process nodes (kernels on anonymous
// hal-sim regions joined with GlobalNode.join) on three nats-servers, and one
// `twz boot` against a port nothing listens on. Serial with global_test.ts
// (the fixture's lock), leases of 2 s.
import assert from "node:assert/strict";
import { join } from "node:path";
import { CasConflict, GlobalNode } from "@twz/global";
import { Kernel } from "@twz/kernel";
import { BASE_OFFSET, ErrorCode, formatId, type ObjID, Prot, TwzError } from "@twz/kernel/abi";
import { openSim } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { MAIN, runProcess, userEnv } from "./_twz.ts";
import { clusterTest, sleep, until, withCluster } from "./testdata/global/fixture.ts";

/** The one line of a TwzError (asserts there is one line, and its code). */
function oneLine(e: unknown, code: ErrorCode): string {
  assert.ok(e instanceof TwzError, `a TwzError, not ${e}`);
  assert.equal(e.code, code, `code ${e.code}: ${e.message}`);
  assert.equal(e.message.split("\n").length, 1, e.message);
  assert.ok(e.message.length < 300, e.message);
  return e.message;
}

/** What `fn` threw (it must throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("it did not throw");
}

/** A loopback port nothing listens on. */
function deadPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The u32 at the base of `id` in `kernel`. */
function u32(kernel: Kernel, id: ObjID): number {
  const b = kernel.read(id, BASE_OFFSET, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

/** Write `value` as the u32 at the base of `id` in `kernel`. */
function setU32(kernel: Kernel, id: ObjID, value: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value, true);
  kernel.write(id, BASE_OFFSET, b);
}

Deno.test({
  name:
    "no server reachable: twz boot --cluster and GlobalNode.join fail with one line, and the image keeps its data",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "twz-global-err-" });
    try {
      const image = join(dir, "a.img");
      const twz = await Twz.open({ image, size: 32 << 20 });
      const keep = twz.create({ name: "/keep", size: 4096 });
      keep.write(keep.baseOffset, new TextEncoder().encode("kept"));
      keep.persist(keep.baseOffset, 4);
      twz.close();

      const port = deadPort();
      const url = `nats://127.0.0.1:${port}`;
      const run = runProcess(Deno.execPath(), [
        "run",
        "-A",
        MAIN,
        "boot",
        "--image",
        image,
        "--size",
        "32M",
        "--cluster",
        url,
        "--node",
        "A",
        "--serve",
        "--quiet",
      ], { env: userEnv() });
      const r = await Promise.race([run, sleep(60_000).then(() => null)]);
      assert.ok(r, "twz boot gave up within a minute");
      assert.equal(r.code, 6, r.stderr); // EXIT_CLUSTER: the cluster cannot be joined
      const errs = r.stderr.split("\n").filter((l) => l.length > 0);
      assert.equal(errs.length, 1, r.stderr);
      assert.match(
        errs[0]!,
        new RegExp(`cannot reach the cluster at nats://127\\.0\\.0\\.1:${port}`),
      );
      assert.doesNotMatch(r.stderr, /\n\s+at |error: Uncaught/);

      const again = await Twz.open({ image });
      try {
        const obj = again.open("/keep");
        assert.equal(new TextDecoder().decode(obj.read(obj.baseOffset, 4)), "kept");
      } finally {
        again.close();
      }
      assert.equal(await Deno.stat(`${image}.sock`).then(() => true, () => false), false);

      const kernel = Kernel.boot(openSim({ size: 8 << 20 }));
      try {
        const e = await GlobalNode.join(kernel, { servers: [url], node: "P", leaseMs: 2000 })
          .then(() => undefined, (e: unknown) => e);
        assert.match(oneLine(e, (e as TwzError).code), /cannot reach the cluster at nats:\/\//);
        assert.equal(kernel.global, undefined, "the kernel is no node");
      } finally {
        kernel.shutdown();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

clusterTest(
  "a version conflict: a stale revision, a write and a commit without ownership are refused with one line; the cluster keeps the owner's version",
  () =>
    withCluster(async (f) => {
      const p = await f.inProcess("P");
      const q = await f.inProcess("Q");
      const x = p.kernel.create({ size: 4096 });
      setU32(p.kernel, x, 1);
      p.node.publish(x, {});
      setU32(p.kernel, x, 2);
      assert.deepEqual(p.node.commit([x]), [2]);
      assert.equal(u32(q.kernel, x), 2, "Q fetches version 2");

      // The link refuses a stale revision with one line.
      const key = `obj.${formatId(x)}`;
      const entry = p.node.link.get("meta", key);
      assert.ok(entry);
      const stale = thrown(() => p.node.link.update("meta", key, entry.value, entry.revision - 1));
      assert.ok(stale instanceof CasConflict);
      assert.match(oneLine(stale, ErrorCode.Busy), /version conflict on obj\./);

      // Q, which does not own it, can neither write its copy nor publish it.
      const write = thrown(() => setU32(q.kernel, x, 3));
      assert.match(oneLine(write, ErrorCode.AccessDenied), /owned by another node/);
      const uncommitted = thrown(() => q.node.commit([x]));
      assert.match(oneLine(uncommitted, ErrorCode.Busy), /does not own it/);

      // Nothing of Q's got in: P's version 2 stands, and P goes on from it.
      const i = p.node.info(x);
      assert.equal(i.version, 2);
      assert.equal(i.owner, "P");
      setU32(p.kernel, x, 4);
      assert.deepEqual(p.node.commit([x]), [3]);
      await until("Q's copy to be P's version 3", () => q.node.info(x).localVersion === 3);
      assert.equal(u32(q.kernel, x), 4);
    }, []),
);

clusterTest(
  "a stale lease: the owner's lease lapses, another node takes the object and commits; the former owner's publish is refused with one line",
  () =>
    withCluster(async (f) => {
      const p = await f.inProcess("P");
      const q = await f.inProcess("Q");
      const x = p.kernel.create({ size: 4096 });
      setU32(p.kernel, x, 5);
      p.node.publish(x, {});
      assert.equal(u32(q.kernel, x), 5);
      // A writable mapping P took while it owned x (a program's, say).
      const mapping = p.kernel.map(x, Prot.ReadWrite);

      p.node.link.dropLease("node.P", true); // P's lease as a lapsed one: P is "gone"
      const took = await q.node.ownAsync(x, { timeoutMs: 10_000 });
      assert.equal(took.owner, "Q");
      setU32(q.kernel, x, 77);
      assert.deepEqual(q.node.commit([x]), [2]);

      // P writes through it after losing the lease, and commits: refused, and
      // its copy is the cluster's version again — before P has heard of Q's
      // commit (its compare-and-set fails) and after (it knows it lost x).
      const view = new DataView(mapping.bytes.buffer, mapping.bytes.byteOffset);
      view.setUint32(BASE_OFFSET, 55, true);
      const e = thrown(() => p.node.commit([x]));
      assert.match(oneLine(e, ErrorCode.Busy), /refused/);
      assert.equal(u32(p.kernel, x), 77, "P's copy is Q's version once refused");
      await until("P to hear that it lost x", () => !p.node.info(x).owned);
      await sleep(200);
      view.setUint32(BASE_OFFSET, 56, true);
      const again = thrown(() => p.node.commit([x]));
      assert.match(oneLine(again, ErrorCode.Busy), /refused/);
      assert.equal(u32(p.kernel, x), 77, "P's copy is Q's version once refused again");
      const i = q.node.info(x);
      assert.equal(i.version, 2);
      assert.equal(i.owner, "Q");
      assert.equal(u32(q.kernel, x), 77, "55 and 56 never appear");
    }, []),
);

clusterTest(
  "an object larger than a message (3 MiB) is published and fetched byte-exact, and so is its next version",
  () =>
    withCluster(async (f) => {
      const p = await f.inProcess("P");
      const q = await f.inProcess("Q");
      const size = 3 << 20;
      const id = p.kernel.create({ size });
      for (let off = BASE_OFFSET; off < size - 4096; off += 65536) {
        const n = Math.min(65536, size - 4096 - off);
        p.kernel.write(id, off, crypto.getRandomValues(new Uint8Array(n)));
      }
      const published = await Promise.resolve(p.node.publish(id, {}));
      assert.deepEqual(published.versions, [1]);
      assert.equal(q.kernel.stat(id).size, size);
      assert.deepEqual(q.kernel.read(id, 0, size), p.kernel.read(id, 0, size));

      p.kernel.write(id, 2 << 20, crypto.getRandomValues(new Uint8Array(65536)));
      assert.deepEqual(p.node.commit([id]), [2]);
      const want = p.kernel.read(id, 0, size);
      await until("Q's copy to be version 2", () => q.node.info(id).localVersion === 2);
      const got = q.kernel.read(id, 0, size);
      assert.equal(got.length, want.length);
      assert.ok(got.every((b, i) => b === want[i]), "byte-exact");
    }, []),
);

clusterTest(
  "a cluster that does not answer: a one-line TimedOut within the node's timeout, and nothing lost once it answers again",
  () =>
    withCluster(async (f) => {
      const p = await f.inProcess("P", { timeoutMs: 1000 });
      const x = p.kernel.create({ size: 4096 });
      setU32(p.kernel, x, 9);
      p.node.publish(x, {});
      const names = f.cluster.servers.map((s) => s.name);
      for (const n of names) await f.cluster.kill(n, "SIGSTOP");
      try {
        const started = Date.now();
        const e = thrown(() => p.node.info(x));
        assert.match(oneLine(e, ErrorCode.TimedOut), /./);
        assert.ok(Date.now() - started < 4000, `${Date.now() - started} ms`);
        // An ID held nowhere here: the fetch times out too.
        const missing = (0x1234n << 64n) | 0x5678n;
        oneLine(thrown(() => p.kernel.stat(missing)), ErrorCode.TimedOut);
      } finally {
        for (const n of names) await f.cluster.kill(n, "SIGCONT");
      }
      await until("the cluster to answer again", () => {
        try {
          return p.node.info(x).version === 1;
        } catch {
          return false;
        }
      }, 30_000);
      assert.equal(u32(p.kernel, x), 9);
      setU32(p.kernel, x, 10);
      assert.deepEqual(p.node.commit([x]), [2]);
    }, []),
);
