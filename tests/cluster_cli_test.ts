// `twz cluster up|down` for real (nats-servers and `twz boot --serve` nodes,
// then every process gone), `twz boot --serve` (no shell; SIGTERM shuts it
// down cleanly), and `twz boot --cluster` with no server reachable (one
// line, exit 6, the image left clean). Serial: the cluster test starts five
// processes on two busy cores.
import assert from "node:assert/strict";
import { join } from "node:path";
import { natsServerPath } from "@twz/global/cluster";
import { Twz } from "@twz/libtwz";
import { info, publish } from "@twz/libtwz/global";
import { MAIN, twz, userEnv } from "./_twz.ts";

/** Whether `pid` is a live process (not a zombie). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Every PID the cluster's state files in `dir` record. */
function recordedPids(dir: string): number[] {
  const pids: number[] = [];
  for (const f of ["nodes.json", "cluster.json"]) {
    try {
      const s = JSON.parse(Deno.readTextFileSync(join(dir, f)));
      for (const x of s.nodes ?? s.servers ?? []) pids.push(x.pid);
    } catch { /* not there */ }
  }
  return pids;
}

async function until(what: string, ok: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const missing = natsServerPath() === null;
if (missing) {
  if (Deno.env.get("CI") === "true") throw new Error("nats-server is missing (CI=true)");
  console.log("SKIPPED: cluster tests need nats-server (apt-get install -y nats-server)");
}

Deno.test({
  name: "twz cluster up starts servers and nodes that serve; down stops every one of them",
  ignore: missing,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "twz-cluster-cli-" });
  const dir = join(tmp, "c");
  let pids: number[] = [];
  try {
    const upRun = await twz([
      "cluster",
      "up",
      "--dir",
      dir,
      "--servers",
      "3",
      "--nodes",
      "2",
      "--lease",
      "2000",
      "--size",
      "16M",
    ]);
    assert.equal(upRun.code, 0, upRun.stderr);
    pids = recordedPids(dir);
    assert.equal(pids.length, 5, "2 nodes and 3 servers recorded");
    for (const pid of pids) assert.ok(alive(pid), `process ${pid} runs after up returned`);
    const lines = upRun.stdout.trim().split("\n");
    assert.equal(lines[0], `cluster up in ${dir}: 3 servers, 2 nodes`);
    assert.match(lines[1]!, /^servers: nats:\/\/127\.0\.0\.1:\d+(,nats:\/\/127\.0\.0\.1:\d+){2}$/);
    assert.ok(lines.some((l) => l.startsWith(`n2: twz run --image ${dir}/n2.img PROGRAM`)));
    assert.match(
      Deno.readTextFileSync(join(dir, "n1.log")),
      /node n1 joined the cluster \(3 servers\)/,
    );

    // The nodes are reachable as the output says: one publishes, the other reads.
    const a = await Twz.open({ image: join(dir, "n1.img") });
    let id: bigint;
    try {
      const obj = a.create({ size: 4096 });
      obj.write(obj.baseOffset, new TextEncoder().encode("across"));
      obj.persist(obj.baseOffset, 6);
      id = obj.id;
      assert.deepEqual(publish(a, obj, { name: "/global/cli/x" }).versions, [1]);
    } finally {
      a.close();
    }
    const b = await Twz.open({ image: join(dir, "n2.img") });
    try {
      const obj = b.open("/global/cli/x");
      assert.equal(obj.id, id);
      assert.equal(new TextDecoder().decode(obj.read(obj.baseOffset, 6)), "across");
      assert.equal(info(b, obj).owner, "n1");
    } finally {
      b.close();
    }

    // A second up on the same directory is refused; nothing else starts.
    const again = await twz(["cluster", "up", "--dir", dir, "--nodes", "1"]);
    assert.equal(again.code, 1);
    assert.deepEqual(again.stderr.trim().split("\n"), [
      `twz: ${dir} already holds a cluster: stop it first (twz cluster down --dir ${dir})`,
    ]);

    const downRun = await twz(["cluster", "down", "--dir", dir]);
    assert.equal(downRun.code, 0, downRun.stderr);
    assert.equal(downRun.stdout.trim(), `cluster down in ${dir}: stopped 2 nodes and 3 servers`);
    for (const pid of pids) await until(`process ${pid} to end`, () => !alive(pid), 5000);
    assert.throws(() => Deno.statSync(dir), Deno.errors.NotFound, "up made it, down removed it");

    const nothing = await twz(["cluster", "down", "--dir", dir]);
    assert.equal(nothing.code, 1);
    assert.equal(nothing.stderr.trim(), `twz: no cluster in ${dir} (nothing to stop)`);
  } finally {
    // Whatever happened above, nothing is left running.
    if (recordedPids(dir).some(alive)) await twz(["cluster", "down", "--dir", dir]);
    for (const pid of pids) {
      if (alive(pid)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
    }
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test({
  name: "twz boot --serve reads no input, serves its socket, and SIGTERM shuts it down cleanly",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "twz-serve-" });
  const image = join(tmp, "s.img");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "boot", "--serve", "--image", image, "--size", "16M"],
    stdin: "piped", // never closed: --serve must not wait for it
    stdout: "piped",
    stderr: "piped",
    env: userEnv(),
    clearEnv: true,
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    assert.equal(first.value?.trim(), `serving ${image}.sock`);
    const t = await Twz.open({ image });
    t.create({ name: "/served", size: 1024 });
    t.close();
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
    reader.releaseLock();
    const err = new TextDecoder().decode(
      new Uint8Array(await new Response(child.stderr).arrayBuffer()),
    );
    assert.match(err.trim().split("\n").at(-1)!, /^twz: terminated; shut down cleanly$/);
    assert.throws(() => Deno.statSync(`${image}.sock`), Deno.errors.NotFound);
    const fsck = await twz(["fsck", "--image", image]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
    await child.stdin.close().catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("twz boot --cluster with no server reachable: one line, exit 6, the image clean", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "twz-cluster-none-" });
  try {
    const image = join(tmp, "n.img");
    // Port 1 on loopback: nothing listens there.
    const r = await twz([
      "boot",
      "--quiet",
      "--image",
      image,
      "--size",
      "16M",
      "--cluster",
      "nats://127.0.0.1:1",
      "--node",
      "a",
    ], "");
    assert.equal(r.code, 6, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^twz: node a: cannot reach the cluster at nats:\/\/127\.0\.0\.1:1/);
    const fsck = await twz(["fsck", "--image", image]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    assert.throws(() => Deno.statSync(`${image}.sock`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** PIDs of live processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (argv.includes(text) && alive(Number(e.name))) pids.push(Number(e.name));
    } catch { /* ended */ }
  }
  return pids;
}

Deno.test({
  name: "twz cluster up: a node that cannot start is one line, and everything started is stopped",
  ignore: missing,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "twz-cluster-bad-" });
  const dir = join(tmp, "c");
  try {
    // An image of 1K is refused by every node's boot.
    const r = await twz([
      "cluster",
      "up",
      "--dir",
      dir,
      "--servers",
      "1",
      "--nodes",
      "1",
      "--size",
      "1K",
    ]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^twz: node n1 did not start: .*too small/);
    await until("no process of the cluster", () => processesMentioning(dir).length === 0, 10000);
    assert.throws(() => Deno.statSync(dir), Deno.errors.NotFound, "up made it and removed it");
  } finally {
    for (const pid of processesMentioning(dir)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await Deno.remove(tmp, { recursive: true });
  }
});
