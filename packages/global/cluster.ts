/**
 * `@twz/global/cluster`: start and stop local NATS JetStream clusters of
 * `nats-server` processes on loopback, for `twz cluster up|down`, the
 * tests and the benchmarks. Each server has its own data directory under
 * the cluster's directory, free client and route ports, JetStream on and
 * routes to every other server (`--cluster_name twz`); a single server runs
 * without routes. `DIR/cluster.json` records what was started (names, PIDs,
 * ports, URLs) so that {@linkcode stopCluster} in another process stops
 * exactly those processes: by PID, after checking that each is still a
 * `nats-server` of that directory.
 *
 * @example Start three servers, use them, stop them
 * ```ts ignore
 * import { startCluster } from "@twz/global/cluster";
 * const cluster = await startCluster({ servers: 3 });
 * try {
 *   console.log(cluster.urls.join(","));
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * @tags allow-run, allow-net, allow-read, allow-write, allow-env
 * @module
 */
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { ErrorCode, TwzError } from "@twz/kernel/abi";

/** How to install `nats-server` on Debian. */
export const NATS_INSTALL_HINT = "apt-get install -y nats-server";

/**
 * The one line {@linkcode setupNats} answers when `nats-server` is missing
 * and cannot be installed (the cluster tests print it and skip themselves).
 */
export const NATS_SKIPPED_LINE = `SKIPPED: cluster tests need nats-server (${NATS_INSTALL_HINT})`;

/** The state file in a cluster's directory. */
export const STATE_FILE = "cluster.json";

/** One server of a cluster. */
export interface ServerInfo {
  /** Its name (`s1`, `s2`, …; the JetStream leader names are these). */
  name: string;
  /** Its process ID (of the latest start). */
  pid: number;
  /** Its client port on 127.0.0.1. */
  port: number;
  /** Its route port (0 for a single server). */
  clusterPort: number;
  /** Its client URL, `nats://127.0.0.1:PORT`. */
  url: string;
  /** Its JetStream store directory. */
  dataDir: string;
}

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  /**
   * How many servers.
   *
   * @default {3}
   */
  servers?: number | undefined;
  /**
   * The cluster's directory (created when absent; kept by `stop`). Default:
   * a fresh temporary directory, removed by `stop`.
   */
  dir?: string | undefined;
  /**
   * Let the servers outlive this process (`twz cluster up`): each runs in
   * its own session and this process does not wait for it.
   *
   * @default {false}
   */
  detach?: boolean | undefined;
  /**
   * How long to wait for JetStream to be ready, in ms.
   *
   * @default {20000}
   */
  readyTimeoutMs?: number | undefined;
}

/** A running local cluster. */
export interface Cluster {
  /** Its directory (state file, data directories, logs). */
  readonly dir: string;
  /** The client URLs of all servers. */
  readonly urls: string[];
  /** The servers (PIDs current after `restart`). */
  readonly servers: ServerInfo[];
  /** Send `signal` to one server and wait until it has exited (SIGSTOP: until it is stopped). */
  kill(name: string, signal?: Deno.Signal): Promise<void>;
  /** Start a server again with its ports and data (after `kill`); resolves when it accepts clients. */
  restart(name: string): Promise<void>;
  /** Stop every server (SIGTERM, then SIGKILL after a few seconds); remove the directory if it was made here. */
  stop(): Promise<void>;
}

interface State {
  v: 1;
  /** Whether `startCluster` made the directory (then stopping removes it). */
  created: boolean;
  servers: ServerInfo[];
}

/** Environment variable naming the `nats-server` executable (then no search and no install). */
export const NATS_SERVER_ENV = "TWZ_NATS_SERVER";

/**
 * The path of the `nats-server` executable: `$TWZ_NATS_SERVER` when set (if
 * it is a file, else `null`), else the first on `PATH` or in the sbin/bin
 * directories; `null` when there is none.
 *
 * @returns The path, or `null` when it is not installed.
 * @example
 * ```ts
 * import { natsServerPath } from "@twz/global/cluster";
 * console.log(natsServerPath() ?? "no nats-server here");
 * ```
 */
export function natsServerPath(): string | null {
  const forced = Deno.env.get(NATS_SERVER_ENV);
  if (forced !== undefined && forced !== "") {
    try {
      return Deno.statSync(forced).isFile ? forced : null;
    } catch {
      return null;
    }
  }
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  for (const dir of [...dirs, "/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]) {
    try {
      if (Deno.statSync(`${dir}/nats-server`).isFile) return `${dir}/nats-server`;
    } catch { /* not here */ }
  }
  return null;
}

function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

async function serverVersion(path: string): Promise<string> {
  try {
    const out = await new Deno.Command(path, { args: ["--version"], stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout).trim().replace(/^nats-server:\s*/, "");
  } catch {
    return "";
  }
}

/**
 * Make sure `nats-server` is installed: when it is missing, the process is
 * root, apt-get is on the path and `TWZ_NATS_SERVER` is unset, install it
 * (`apt-get install -y nats-server`, output on stderr). Prints nothing on
 * stdout.
 *
 * @returns `ok` and one line for the caller to print: `nats_setup: …` when
 *   it is there, else {@linkcode NATS_SKIPPED_LINE}.
 * @example
 * ```ts ignore
 * import { setupNats } from "@twz/global/cluster";
 * const { ok, line } = await setupNats();
 * console.log(line);
 * if (!ok && Deno.env.get("CI") === "true") Deno.exit(1);
 * ```
 */
export async function setupNats(): Promise<{ ok: boolean; line: string }> {
  let path = natsServerPath();
  let installed = false;
  // With an explicit path, installing the package would not help.
  if (!path && !Deno.env.get(NATS_SERVER_ENV) && Deno.uid() === 0 && onPath("apt-get")) {
    console.error(`nats_setup: nats-server is missing; installing it (${NATS_INSTALL_HINT})`);
    const { success } = await new Deno.Command("sh", {
      args: ["-c", "apt-get update -qq && apt-get install -y nats-server"],
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    path = success ? natsServerPath() : null;
    installed = path !== null;
  }
  if (!path) return { ok: false, line: NATS_SKIPPED_LINE };
  const version = await serverVersion(path);
  return {
    ok: true,
    line: `nats_setup: nats-server ${version} ${path}${installed ? " (installed)" : ""}`,
  };
}

/** `n` free loopback TCP ports (held together while picking, so they differ). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

function args(all: ServerInfo[], s: ServerInfo, dir: string): string[] {
  const a = [
    "-a",
    "127.0.0.1",
    "-p",
    String(s.port),
    "-n",
    s.name,
    "-js",
    "-sd",
    s.dataDir,
    "-l",
    `${dir}/${s.name}.log`,
  ];
  if (all.length > 1) {
    const routes = all.filter((o) => o !== s).map((o) => `nats://127.0.0.1:${o.clusterPort}`);
    a.push(
      "--cluster_name",
      "twz",
      "--cluster",
      `nats://127.0.0.1:${s.clusterPort}`,
      "--routes",
      routes.join(","),
    );
  }
  return a;
}

function procState(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

/** Whether `pid` is a live `nats-server` whose arguments name `dataDir`. */
function isOurServer(pid: number, dataDir: string): boolean {
  const state = procState(pid);
  if (state === null || state === "Z" || state === "X") return false;
  try {
    const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    return (argv[0] ?? "").endsWith("nats-server") && argv.includes(dataDir);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pid: number, dataDir: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isOurServer(pid, dataDir)) return true;
    await sleep(25);
  }
  return !isOurServer(pid, dataDir);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
async function stopPid(pid: number, dataDir: string, graceMs = 5000): Promise<void> {
  if (!isOurServer(pid, dataDir)) return;
  try {
    Deno.kill(pid, "SIGCONT"); // a paused server cannot act on SIGTERM
    Deno.kill(pid, "SIGTERM");
  } catch { /* gone already */ }
  if (await waitGone(pid, dataDir, graceMs)) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone already */ }
  await waitGone(pid, dataDir, 5000);
}

async function tail(path: string): Promise<string> {
  try {
    const lines = (await Deno.readTextFile(path)).trim().split("\n");
    return lines.slice(-3).join(" | ");
  } catch {
    return "no log";
  }
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/** Wait until JetStream has a meta leader and a replicated KV bucket can be made. */
async function waitReady(urls: string[], replicas: number, deadline: number): Promise<void> {
  let last = "no answer";
  while (Date.now() < deadline) {
    let nc: NatsConnection | null = null;
    try {
      nc = await connect({ servers: urls, timeout: 1000, maxReconnectAttempts: 0 });
      const jsm = await jetstreamManager(nc, { timeout: 2000 });
      await jsm.getAccountInfo();
      const name = `twz-probe-${crypto.randomUUID().slice(0, 8)}`;
      const kv = await new Kvm(nc).create(name, { replicas, history: 1 });
      await kv.put("probe", new Uint8Array([1]));
      await kv.destroy();
      return;
    } catch (e) {
      last = (e as Error).message;
    } finally {
      await nc?.close().catch(() => {});
    }
    await sleep(100);
  }
  throw new TwzError(ErrorCode.TimedOut, `the NATS cluster did not become ready: ${last}`);
}

async function writeState(dir: string, state: State): Promise<void> {
  const tmp = `${dir}/${STATE_FILE}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(tmp, `${dir}/${STATE_FILE}`);
}

/**
 * Start a local cluster of `nats-server`s and wait until JetStream is ready
 * (a meta leader, and a test KV bucket with `min(3, servers)` replicas
 * could be written).
 *
 * @param options How many servers, where, whether they outlive this process.
 * @returns The running cluster; stop it with `stop()` (or {@linkcode stopCluster}).
 * @throws {TwzError} `NotSupported` when `nats-server` is not installed;
 *   `TimedOut` when the cluster does not become ready (the servers are
 *   stopped again).
 * @example
 * ```ts ignore
 * import { startCluster } from "@twz/global/cluster";
 * const c = await startCluster({ servers: 1 });
 * console.log(c.urls[0]);
 * await c.stop();
 * ```
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const exe = natsServerPath();
  if (!exe) {
    throw new TwzError(
      ErrorCode.NotSupported,
      `nats-server is not installed (${NATS_INSTALL_HINT})`,
    );
  }
  const n = options.servers ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 32) {
    throw new TwzError(ErrorCode.InvalidArgument, `a cluster has 1 to 32 servers, not ${n}`);
  }
  let created = false;
  let dir: string;
  if (options.dir === undefined) {
    dir = await Deno.makeTempDir({ prefix: "twz-nats-" });
    created = true;
  } else {
    dir = options.dir;
    try {
      await Deno.stat(`${dir}/${STATE_FILE}`);
      throw new TwzError(
        ErrorCode.ImageBusy,
        `${dir} already holds a cluster (${STATE_FILE}): stop it first (twz cluster down --dir ${dir})`,
      );
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await Deno.mkdir(dir, { recursive: true });
  }
  dir = await Deno.realPath(dir);
  const ports = freePorts(2 * n);
  const servers: ServerInfo[] = Array.from({ length: n }, (_, i) => ({
    name: `s${i + 1}`,
    pid: 0,
    port: ports[2 * i]!,
    clusterPort: n > 1 ? ports[2 * i + 1]! : 0,
    url: `nats://127.0.0.1:${ports[2 * i]}`,
    dataDir: `${dir}/s${i + 1}`,
  }));
  const children = new Map<string, Deno.ChildProcess>();
  const detach = options.detach === true && onPath("setsid");

  const spawn = (s: ServerInfo) => {
    const a = args(servers, s, dir);
    const child = new Deno.Command(detach ? "setsid" : exe, {
      args: detach ? [exe, ...a] : a,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    if (detach) child.unref();
    s.pid = child.pid;
    children.set(s.name, child);
  };

  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.pid ? stopPid(s.pid, s.dataDir) : Promise.resolve()));
    await Promise.all(
      [...children.values()].map((c) => detach ? Promise.resolve() : c.status.catch(() => {})),
    );
  };

  try {
    for (const s of servers) {
      await Deno.mkdir(s.dataDir, { recursive: true });
      spawn(s);
    }
    await writeState(dir, { v: 1, created, servers });
    const deadline = Date.now() + (options.readyTimeoutMs ?? 20000);
    // A server that exits at once (a port taken meanwhile) is reported with its log.
    await sleep(50);
    for (const s of servers) {
      if (!isOurServer(s.pid, s.dataDir) && !(await canConnect(s.port))) {
        throw new TwzError(
          ErrorCode.NotSupported,
          `nats-server ${s.name} exited at start: ${await tail(`${dir}/${s.name}.log`)}`,
        );
      }
    }
    await waitReady(servers.map((s) => s.url), Math.min(3, n), deadline);
  } catch (e) {
    await stopAll();
    if (created) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else await Deno.remove(`${dir}/${STATE_FILE}`).catch(() => {});
    throw e;
  }

  const find = (name: string) => {
    const s = servers.find((x) => x.name === name);
    if (!s) throw new TwzError(ErrorCode.InvalidArgument, `no server ${name} in this cluster`);
    return s;
  };
  let stopped = false;
  return {
    dir,
    urls: servers.map((s) => s.url),
    servers,
    async kill(name: string, signal: Deno.Signal = "SIGKILL") {
      const s = find(name);
      if (!isOurServer(s.pid, s.dataDir)) return;
      Deno.kill(s.pid, signal);
      if (signal === "SIGSTOP") {
        const end = Date.now() + 5000;
        while (procState(s.pid) !== "T" && Date.now() < end) await sleep(10);
        return;
      }
      if (signal === "SIGCONT") return;
      const child = children.get(name);
      if (child && !detach) await child.status;
      else await waitGone(s.pid, s.dataDir, 10000);
    },
    async restart(name: string) {
      const s = find(name);
      if (isOurServer(s.pid, s.dataDir)) {
        throw new TwzError(ErrorCode.Busy, `server ${name} is still running (pid ${s.pid})`);
      }
      spawn(s);
      await writeState(dir, { v: 1, created, servers });
      const end = Date.now() + 10000;
      while (!(await canConnect(s.port))) {
        if (Date.now() > end || !isOurServer(s.pid, s.dataDir)) {
          throw new TwzError(
            ErrorCode.TimedOut,
            `nats-server ${name} did not come back: ${await tail(`${dir}/${name}.log`)}`,
          );
        }
        await sleep(25);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopAll();
      if (created) await Deno.remove(dir, { recursive: true }).catch(() => {});
      else await Deno.remove(`${dir}/${STATE_FILE}`).catch(() => {});
    },
  };
}

/**
 * Read the state file of a cluster's directory.
 *
 * @param dir The cluster's directory.
 * @returns Its servers, or `null` when there is no state file.
 * @example
 * ```ts ignore
 * import { readClusterState } from "@twz/global/cluster";
 * console.log((await readClusterState("/tmp/demo"))?.map((s) => s.url));
 * ```
 */
export async function readClusterState(dir: string): Promise<ServerInfo[] | null> {
  try {
    const s = JSON.parse(await Deno.readTextFile(`${dir}/${STATE_FILE}`)) as State;
    return s.servers;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new TwzError(
      ErrorCode.ImageCorrupt,
      `${dir}/${STATE_FILE} cannot be read: ${(e as Error).message}`,
    );
  }
}

/**
 * Stop the cluster recorded in `dir/cluster.json` (from any process): each
 * recorded PID that is still a `nats-server` of that directory gets
 * SIGTERM, then SIGKILL after a few seconds; then the directory is removed
 * if `startCluster` had made it, else only its state file.
 *
 * @param dir The cluster's directory.
 * @returns How many servers were still running and were stopped (`-1`: no state file there).
 * @example
 * ```ts ignore
 * import { stopCluster } from "@twz/global/cluster";
 * await stopCluster("/tmp/demo");
 * ```
 */
export async function stopCluster(dir: string): Promise<number> {
  let state: State;
  try {
    state = JSON.parse(await Deno.readTextFile(`${dir}/${STATE_FILE}`)) as State;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return -1;
    throw new TwzError(
      ErrorCode.ImageCorrupt,
      `${dir}/${STATE_FILE} cannot be read: ${(e as Error).message}`,
    );
  }
  const live = state.servers.filter((s) => isOurServer(s.pid, s.dataDir));
  await Promise.all(live.map((s) => stopPid(s.pid, s.dataDir)));
  if (state.created) await Deno.remove(dir, { recursive: true }).catch(() => {});
  else await Deno.remove(`${dir}/${STATE_FILE}`).catch(() => {});
  return live.length;
}

/**
 * Run `fn` holding this machine's cluster-test lock (an exclusive `flock`
 * on `$TMPDIR/twz-global-tests.lock`): tests that start clusters with short
 * leases run one at a time, also when two test runs meet.
 *
 * @param fn The test body.
 * @returns What `fn` returns.
 */
export async function withClusterLock<T>(fn: () => Promise<T>): Promise<T> {
  const path = join(Deno.env.get("TMPDIR") ?? "/tmp", "twz-global-tests.lock");
  const file = await Deno.open(path, { create: true, write: true });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close(); // drops the lock
  }
}
