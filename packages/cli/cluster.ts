/**
 * `twz cluster up|down`: a local demo cluster of the global object space
 * (docs/GLOBAL.md) — `nats-server` processes on free loopback ports
 * (`@twz/global/cluster`, loaded only here) and `twz boot --serve` nodes,
 * each on its own image, that outlive the command. `up` records what it
 * started in the cluster's directory (`cluster.json` for the servers,
 * `nodes.json` for the nodes), so `down`, from any process, stops exactly
 * those: the nodes first (SIGTERM, so each shuts down cleanly and leaves
 * the cluster), then the servers; then it removes what `up` made there.
 *
 * @example
 * ```text
 * $ twz cluster up --servers 3 --nodes 3 --dir /tmp/demo
 * $ twz run --image /tmp/demo/n1.img prog.ts
 * $ twz cluster down --dir /tmp/demo
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";
import { UsageError } from "./board.ts";
import { EXIT } from "./_exit.ts";
import { type CommandSpec, count, parseArgv, quoted } from "./_args.ts";

/** The directory `up` and `down` use when `--dir` is not given. */
export const DEFAULT_CLUSTER_DIR = "./twz-cluster";

/** The nodes' state file in a cluster's directory. */
export const NODES_FILE = "nodes.json";

/** How long `up` waits for a node to serve, and `down` for one to shut down. */
const NODE_START_MS = 120_000;
const NODE_STOP_MS = 20_000;

/** `twz cluster`'s options: what parses them and what `twz cluster --help` prints. */
export const CLUSTER: CommandSpec = {
  name: "twz cluster",
  summary: "start (up) or stop (down) a local demo cluster: NATS servers and twz boot nodes",
  options: [
    { name: "--servers", value: "N", summary: "up: how many nats-servers (default 3)" },
    { name: "--nodes", value: "N", summary: "up: how many nodes, n1 … nN (default 3)" },
    {
      name: "--dir",
      value: "D",
      summary:
        `the cluster's directory: state, node images and logs (default ${DEFAULT_CLUSTER_DIR})`,
    },
    {
      name: "--hal",
      value: "HAL",
      choices: ["sim", "pmem"],
      summary: "up: the nodes' HAL (default sim)",
    },
    { name: "--size", value: "SIZE", summary: "up: size of each node's new image (default 32M)" },
    {
      name: "--lease",
      value: "MS",
      summary: "up: the nodes' ownership lease in milliseconds (default 10000)",
    },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  args: [{ name: "ACTION", summary: "up or down" }],
  details: [
    "up starts the servers (each with its own data directory in D), then each node as a " +
    "background twz boot --serve --image D/nK.img --cluster URLS --node nK (output in " +
    "D/nK.log), waits until every node serves its control socket, and prints the URLs and " +
    "how to reach each node: twz run --image D/nK.img PROGRAM, or Twz.open({ image: " +
    '"D/nK.img" }) from a script. The processes outlive the command.',
    "down stops the nodes (SIGTERM: each shuts down cleanly and leaves the cluster; SIGKILL " +
    "after 20 s) and then the servers, by the PIDs up recorded, and removes what up made " +
    "in D (images, logs, server data).",
  ],
};

/** One node as `nodes.json` records it. */
interface NodeRecord {
  name: string;
  pid: number;
  image: string;
  log: string;
}

interface NodesState {
  v: 1;
  /** Whether `up` made the directory (then `down` removes it when empty). */
  created: boolean;
  nodes: NodeRecord[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `pid` is a live `twz boot` of `image` (not a reused PID). */
function isOurNode(pid: number, image: string): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    return argv.includes("boot") && argv.includes(image);
  } catch {
    return false;
  }
}

function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function readNodes(dir: string): Promise<NodesState | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/${NODES_FILE}`)) as NodesState;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`${dir}/${NODES_FILE} cannot be read: ${(e as Error).message}`);
  }
}

/** The last lines of a node's log, on one line. */
function tail(path: string): string {
  try {
    const lines = Deno.readTextFileSync(path).trim().split("\n").filter((l) => l !== "");
    return lines.slice(-2).join(" | ") || "(empty log)";
  } catch {
    return "(no log)";
  }
}

/**
 * How to run `twz` again: this Deno, `run -A`, the entry file, from the
 * entry's folder (so the workspace's deno.json is found wherever the user
 * is; every path handed over is absolute).
 */
function twzCommand(): { args: string[]; cwd: string | undefined } {
  const main = new URL("./main.ts", import.meta.url);
  if (main.protocol !== "file:") return { args: ["run", "-A", main.href], cwd: undefined };
  const path = fileURLToPath(main);
  return { args: ["run", "-A", path], cwd: dirname(path) };
}

/** Start one node in the background, detached (its own session), output to its log. */
function spawnNode(args: string[], log: string, cwd: string | undefined): number {
  // `sh` points the output at the log and execs the node (same PID).
  const script = 'log=$1; shift; exec "$@" >"$log" 2>&1 </dev/null';
  const shArgs = ["-c", script, "sh", log, Deno.execPath(), ...args];
  const detach = onPath("setsid");
  const child = new Deno.Command(detach ? "setsid" : "sh", {
    args: detach ? ["sh", ...shArgs] : shArgs,
    ...(cwd !== undefined ? { cwd } : {}),
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  child.unref();
  child.status.catch(() => {});
  return child.pid;
}

/** SIGTERM each live node, wait, SIGKILL what is left; returns how many were running. */
async function stopNodes(nodes: NodeRecord[]): Promise<number> {
  const live = nodes.filter((n) => isOurNode(n.pid, n.image));
  for (const n of live) {
    try {
      Deno.kill(n.pid, "SIGCONT"); // a paused node cannot act on SIGTERM
      Deno.kill(n.pid, "SIGTERM");
    } catch { /* gone already */ }
  }
  const end = Date.now() + NODE_STOP_MS;
  while (live.some((n) => isOurNode(n.pid, n.image)) && Date.now() < end) await sleep(50);
  for (const n of live) {
    if (!isOurNode(n.pid, n.image)) continue;
    try {
      Deno.kill(n.pid, "SIGKILL");
    } catch { /* gone already */ }
  }
  const killEnd = Date.now() + 5000;
  while (live.some((n) => isOurNode(n.pid, n.image)) && Date.now() < killEnd) await sleep(50);
  return live.length;
}

/** Remove what `up` made in `dir` for the nodes (images, sockets, logs, the state file). */
async function removeNodeFiles(dir: string, nodes: NodeRecord[]): Promise<void> {
  for (const n of nodes) {
    for (const f of [n.image, `${n.image}.sock`, n.log]) await Deno.remove(f).catch(() => {});
  }
  await Deno.remove(`${dir}/${NODES_FILE}`).catch(() => {});
}

/**
 * Run `twz cluster` with `args`; returns the exit code.
 *
 * @param args Its arguments (after `cluster`).
 */
export async function cluster(args: string[]): Promise<number> {
  const p = parseArgv(CLUSTER, args);
  const action = p.arg("ACTION")!;
  const dir = resolve(p.value("--dir") ?? DEFAULT_CLUSTER_DIR);
  if (p.value("--dir") === "") throw new UsageError("--dir is empty");
  if (action === "down") {
    for (const o of ["--servers", "--nodes", "--hal", "--size", "--lease"]) {
      if (p.has(o)) throw new UsageError(`${o} only applies with up`);
    }
    return await down(dir);
  }
  if (action !== "up") {
    throw new UsageError(`unknown action ${quoted(action)} (up or down; see twz cluster --help)`);
  }
  const servers = count(p.value("--servers") ?? "3", "--servers", 1);
  const nodes = count(p.value("--nodes") ?? "3", "--nodes", 0);
  if (servers > 32) throw new UsageError(`--servers: "${servers}" is too large (at most 32)`);
  if (nodes > 64) throw new UsageError(`--nodes: "${nodes}" is too large (at most 64)`);
  const lease = p.value("--lease");
  if (lease !== undefined) count(lease, "--lease", 100);
  return await up(dir, {
    servers,
    nodes,
    hal: p.value("--hal") ?? "sim",
    size: p.value("--size") ?? "32M",
    lease,
    debug: p.has("--debug"),
  });
}

interface UpOptions {
  servers: number;
  nodes: number;
  hal: string;
  size: string;
  lease: string | undefined;
  debug: boolean;
}

async function up(dir: string, o: UpOptions): Promise<number> {
  if (exists(`${dir}/${NODES_FILE}`) || exists(`${dir}/cluster.json`)) {
    console.error(
      `twz: ${dir} already holds a cluster: stop it first (twz cluster down --dir ${dir})`,
    );
    return EXIT.failed;
  }
  const created = !exists(dir);
  await Deno.mkdir(dir, { recursive: true });
  const { startCluster } = await import("@twz/global/cluster");
  let c;
  try {
    c = await startCluster({ servers: o.servers, dir, detach: true });
  } catch (error) {
    console.error(`twz: cannot start the servers: ${(error as Error).message.split("\n")[0]}`);
    if (o.debug) console.error(error);
    if (created) await Deno.remove(dir).catch(() => {});
    return EXIT.failed;
  }
  const urls = c.urls.join(",");
  const { args: twzArgs, cwd } = twzCommand();
  const state: NodesState = { v: 1, created, nodes: [] };
  const record = () =>
    Deno.writeTextFile(`${dir}/${NODES_FILE}`, JSON.stringify(state, null, 2) + "\n");
  await record();
  for (let k = 1; k <= o.nodes; k++) {
    const name = `n${k}`;
    const image = `${dir}/${name}.img`;
    const log = `${dir}/${name}.log`;
    const args = [
      ...twzArgs,
      "boot",
      "--serve",
      "--hal",
      o.hal,
      "--image",
      image,
      "--size",
      o.size,
      "--cluster",
      urls,
      "--node",
      name,
      ...(o.lease !== undefined ? ["--lease", o.lease] : []),
    ];
    state.nodes.push({ name, pid: spawnNode(args, log, cwd), image, log });
    // Recorded at once: `down` stops them even if this command is interrupted.
    await record();
  }
  // Every node serves (its log says so), or one failed: then all goes down.
  const end = Date.now() + NODE_START_MS;
  const waiting = new Set(state.nodes);
  // A node counts as gone only when five checks in a row (half a second)
  // do not find it: while `setsid` and `sh` exec the node, its process can
  // read as neither (a busy machine made one fresh node look gone at once).
  const misses = new Map<NodeRecord, number>();
  let failed: string | undefined;
  while (waiting.size > 0 && failed === undefined) {
    for (const n of [...waiting]) {
      let text = "";
      try {
        text = Deno.readTextFileSync(n.log);
      } catch { /* not yet */ }
      if (/^serving /m.test(text)) waiting.delete(n);
      else if (isOurNode(n.pid, n.image)) misses.set(n, 0);
      else if ((misses.get(n) ?? 0) + 1 >= 5) {
        failed = `node ${n.name} did not start: ${tail(n.log)}`;
      } else misses.set(n, (misses.get(n) ?? 0) + 1);
    }
    if (waiting.size === 0 || failed !== undefined) break;
    if (Date.now() > end) {
      failed = `node ${[...waiting][0]!.name} did not start within ${NODE_START_MS / 1000} s: ${
        tail([...waiting][0]!.log)
      }`;
      break;
    }
    await sleep(100);
  }
  if (failed !== undefined) {
    console.error(`twz: ${failed}`);
    await stopNodes(state.nodes);
    await removeNodeFiles(dir, state.nodes);
    await c.stop();
    await removeServerFiles(dir, c.servers.map((s) => s.name));
    if (created) await Deno.remove(dir).catch(() => {});
    return EXIT.failed;
  }
  console.log(
    `cluster up in ${dir}: ${o.servers} server${o.servers === 1 ? "" : "s"}, ${o.nodes} node${
      o.nodes === 1 ? "" : "s"
    }`,
  );
  console.log(`servers: ${urls}`);
  for (const n of state.nodes) {
    console.log(
      `${n.name}: twz run --image ${n.image} PROGRAM  |  Twz.open({ image: "${n.image}" })  |  log ${n.log}`,
    );
  }
  console.log(`stop it with: twz cluster down --dir ${dir}`);
  return EXIT.ok;
}

/** Remove the servers' data directories and logs `up` left in `dir`. */
async function removeServerFiles(dir: string, names: string[]): Promise<void> {
  for (const s of names) {
    await Deno.remove(`${dir}/${s}`, { recursive: true }).catch(() => {});
    await Deno.remove(`${dir}/${s}.log`).catch(() => {});
  }
}

async function down(dir: string): Promise<number> {
  const nodes = await readNodes(dir);
  const { readClusterState, stopCluster } = await import("@twz/global/cluster");
  const servers = await readClusterState(dir).catch(() => null);
  if (nodes === null && servers === null) {
    console.error(`twz: no cluster in ${dir} (nothing to stop)`);
    return EXIT.failed;
  }
  const stoppedNodes = nodes === null ? 0 : await stopNodes(nodes.nodes);
  if (nodes !== null) await removeNodeFiles(dir, nodes.nodes);
  const stoppedServers = servers === null ? 0 : Math.max(0, await stopCluster(dir));
  if (servers !== null) await removeServerFiles(dir, servers.map((s) => s.name));
  if (nodes?.created) await Deno.remove(dir).catch(() => {});
  console.log(
    `cluster down in ${dir}: stopped ${stoppedNodes} node${
      stoppedNodes === 1 ? "" : "s"
    } and ${stoppedServers} server${stoppedServers === 1 ? "" : "s"}`,
  );
  return EXIT.ok;
}
