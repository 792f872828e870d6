/**
 * The cluster fixture of the global-space tests (tests/global_*_test.ts):
 * three `nats-server`s (`startCluster` of `@twz/global/cluster`) and three
 * nodes, each a `twz boot --serve --cluster URLS --node A|B|C --lease MS`
 * process on a hal-sim image of its own, all in a fresh temporary directory;
 * remote sessions on the nodes (`Twz.open({ image })` through their control
 * sockets), `twz run` on them, and in-process nodes (a kernel on an
 * anonymous hal-sim region joined with `GlobalNode.join`) for the races.
 *
 * Everything a test starts is stopped by PID in `finally` (sessions closed,
 * `twz run` clients and nodes killed, servers stopped, the directory
 * removed), also when the test fails. Cluster tests take an exclusive lock
 * on one file in the temporary directory while they run, so the files of
 * this suite run one at a time even under `deno test --parallel` (leases of
 * 2 s on two busy cores).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Cluster,
  NATS_SKIPPED_LINE,
  natsServerPath,
  startCluster,
  withClusterLock,
} from "@twz/global/cluster";
import { GlobalNode } from "@twz/global";
import { Kernel } from "@twz/kernel";
import { BASE_OFFSET, type ObjID } from "@twz/kernel/abi";
import { openSim } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { MAIN, type Run, userEnv } from "../../_twz.ts";

/** Lease length of every node in these tests (the issue asks for 2 s or less). */
export const LEASE_MS = 2000;

/** Skip the cluster tests: nats-server is missing outside CI (under CI=true they run and fail). */
export const CLUSTER_IGNORE = natsServerPath() === null && Deno.env.get("CI") !== "true";

let skipSaid = false;

/**
 * A cluster test: serial (the suite's lock), sanitizers off (the NATS
 * client's Worker and sockets outlive a test's ops), skipped with one line
 * when nats-server is missing outside CI.
 *
 * @param name The test's name.
 * @param fn The test.
 */
export function clusterTest(name: string, fn: () => Promise<void>): void {
  if (CLUSTER_IGNORE && !skipSaid) {
    skipSaid = true;
    console.log(NATS_SKIPPED_LINE);
  }
  Deno.test({
    name,
    ignore: CLUSTER_IGNORE,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => withClusterLock(fn),
  });
}

/** Sleep `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait until `check()` is true (polling every 50 ms), at most `ms`; fails naming `what`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A `twz` command in a child process (stdin closed), its output collected
 * as it comes: what the node and `twz run` processes share.
 */
export class TwzProcess {
  /** The process. */
  readonly child: Deno.ChildProcess;
  /** What it printed on stdout so far. */
  stdout = "";
  /** What it printed on stderr so far. */
  stderr = "";
  /** Its exit status, once it ended. */
  status: Deno.CommandStatus | undefined;
  /** Resolves once it ended and its output is read to the end. */
  readonly ended: Promise<void>;

  /** Start `twz ARGS` (the repository's cli) with a user's environment. */
  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: userEnv(),
      clearEnv: true,
    }).spawn();
    const collect = async (stream: ReadableStream<Uint8Array>, err: boolean) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        if (err) this.stderr += text;
        else this.stdout += text;
      }
    };
    this.ended = Promise.all([
      collect(this.child.stdout, false),
      collect(this.child.stderr, true),
      this.child.status.then((s) => void (this.status = s)),
    ]).then(() => {});
  }
}

/** A `twz boot --serve` node process. */
export class NodeProcess extends TwzProcess {
  /**
   * Start `twz boot` for node `name` on `image`.
   *
   * @param name The node's name.
   * @param image Its image file (created when absent).
   * @param urls The cluster's server URLs.
   * @param leaseMs The node lease.
   */
  constructor(
    readonly name: string,
    readonly image: string,
    readonly urls: string[],
    readonly leaseMs = LEASE_MS,
  ) {
    super([
      "boot",
      "--image",
      image,
      "--size",
      "32M",
      "--cluster",
      urls.join(","),
      "--node",
      name,
      "--lease",
      String(leaseMs),
      "--serve",
    ]);
  }

  /** Its process ID. */
  get pid(): number {
    return this.child.pid;
  }

  /** Whether it is still running. */
  get running(): boolean {
    return this.status === undefined;
  }

  /** Wait until its control socket answers with its own PID (at most `ms`). */
  async ready(ms = 60_000): Promise<void> {
    const path = `${this.image}.sock`;
    await until(`node ${this.name} to serve ${path}`, async () => {
      if (!this.running) {
        throw new Error(`node ${this.name} ended (${this.status?.code}): ${this.stderr.trim()}`);
      }
      try {
        const conn = await Deno.connect({ transport: "unix", path });
        try {
          const buf = new Uint8Array(128);
          const n = await conn.read(buf);
          const greeting = new TextDecoder().decode(buf.subarray(0, n ?? 0));
          return greeting.startsWith(`twz-control 1 ${this.pid}`);
        } finally {
          conn.close();
        }
      } catch {
        return false;
      }
    }, ms);
  }

  /** Send `signal` to it (SIGSTOP, SIGCONT, …). */
  signal(signal: Deno.Signal): void {
    if (this.running) Deno.kill(this.pid, signal);
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    if (this.running) {
      try {
        Deno.kill(this.pid, "SIGCONT"); // a stopped process dies too, but go on cleanly
        Deno.kill(this.pid, "SIGKILL");
      } catch { /* ended meanwhile */ }
    }
    await this.ended;
  }

  /**
   * A clean shutdown (SIGTERM), waited for at most `ms`; then SIGKILL.
   *
   * @returns Its exit code (`undefined` when it had to be killed).
   */
  async stop(ms = 15_000): Promise<number | undefined> {
    if (!this.running) {
      await this.ended;
      return this.status?.code;
    }
    try {
      Deno.kill(this.pid, "SIGCONT");
      Deno.kill(this.pid, "SIGTERM");
    } catch { /* ended meanwhile */ }
    const ended = await Promise.race([this.ended.then(() => true), sleep(ms).then(() => false)]);
    if (!ended) {
      await this.kill();
      return undefined;
    }
    return this.status?.code;
  }
}

/** A `twz run` client whose output is read as it comes. */
export class RunProcess extends TwzProcess {
  /** Resolves with the whole run once the client ended. */
  readonly done: Promise<Run>;

  /**
   * Start `twz run --image IMAGE TARGET ARGS`.
   *
   * @param image The node's image (its running system runs the program).
   * @param target A program file or a name in `/bin`.
   * @param args The program's arguments.
   */
  constructor(readonly image: string, target: string, args: string[]) {
    super(["run", "--image", image, target, ...args]);
    this.done = this.ended.then(() => ({
      code: this.status!.code,
      stdout: this.stdout,
      stderr: this.stderr,
    }));
  }

  /** Wait until its stdout matches `pattern` (at most `ms`). */
  async waitFor(pattern: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
    let ended = false;
    this.done.then(() => ended = true, () => ended = true);
    let m: RegExpMatchArray | null = null;
    await until(`${pattern} from twz run (stdout so far: ${JSON.stringify(this.stdout)})`, () => {
      m = pattern.exec(this.stdout);
      if (m === null && ended) {
        throw new Error(`twz run ended without ${pattern}:\n${this.stdout}\n${this.stderr}`);
      }
      return m !== null;
    }, ms);
    return m!;
  }

  /** SIGKILL the client (the system then kills the program), and wait. */
  async kill(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* ended */ }
    await this.done.catch(() => {});
  }
}

/** The three nodes of a fixture. */
export type NodeName = "A" | "B" | "C";

/** What a cluster test gets. */
export class Fixture {
  /** The nodes, by name. */
  readonly nodes = new Map<NodeName, NodeProcess>();
  #sessions: Twz[] = [];
  #runs: RunProcess[] = [];
  #inProcess: { node: GlobalNode; kernel: Kernel }[] = [];

  /**
   * @param dir The test's temporary directory.
   * @param cluster The NATS servers.
   */
  constructor(readonly dir: string, readonly cluster: Cluster) {}

  /** The servers' URLs. */
  get urls(): string[] {
    return this.cluster.urls;
  }

  /** Node `name` (started by {@linkcode withCluster}). */
  node(name: NodeName): NodeProcess {
    const n = this.nodes.get(name);
    assert.ok(n, `node ${name} is not started`);
    return n;
  }

  /** The image of node `name`. */
  image(name: NodeName): string {
    return join(this.dir, `${name}.img`);
  }

  /** Start (or restart) node `name` and wait until it serves. */
  async start(name: NodeName): Promise<NodeProcess> {
    const old = this.nodes.get(name);
    if (old) await old.kill();
    const node = new NodeProcess(name, this.image(name), this.urls);
    this.nodes.set(name, node);
    await node.ready();
    return node;
  }

  /** A remote session on node `name` (closed by the fixture). */
  async session(name: NodeName): Promise<Twz> {
    const twz = await Twz.open({ image: this.image(name) });
    this.#sessions.push(twz);
    return twz;
  }

  /** Close a session opened with {@linkcode Fixture.session} (before its node goes). */
  closeSession(twz: Twz): void {
    this.#sessions = this.#sessions.filter((s) => s !== twz);
    try {
      twz.close();
    } catch { /* its node is gone */ }
  }

  /** `twz run` a program on node `name`, its output read as it comes (killed by the fixture). */
  run(name: NodeName, target: string, args: string[]): RunProcess {
    const r = new RunProcess(this.image(name), target, args);
    this.#runs.push(r);
    return r;
  }

  /** `twz run` a program on node `name` to its end. */
  runToEnd(name: NodeName, target: string, args: string[]): Promise<Run> {
    return this.run(name, target, args).done;
  }

  /**
   * An in-process node: a kernel on an anonymous hal-sim region joined to
   * the cluster (left and shut down by the fixture).
   */
  async inProcess(
    name: string,
    options: { leaseMs?: number; timeoutMs?: number } = {},
  ): Promise<{ node: GlobalNode; kernel: Kernel }> {
    const kernel = Kernel.boot(openSim({ size: 16 << 20 }));
    try {
      const node = await GlobalNode.join(kernel, {
        servers: this.urls,
        node: name,
        leaseMs: options.leaseMs ?? LEASE_MS,
        timeoutMs: options.timeoutMs ?? 5000,
        log: () => {},
      });
      const pair = { node, kernel };
      this.#inProcess.push(pair);
      return pair;
    } catch (e) {
      kernel.shutdown();
      throw e;
    }
  }

  /** Stop everything this fixture started, by PID; never throws. */
  async stopAll(): Promise<void> {
    for (const s of this.#sessions.splice(0)) {
      try {
        s.close();
      } catch { /* its node is gone */ }
    }
    await Promise.all(this.#runs.splice(0).map((r) => r.kill()));
    for (const { node, kernel } of this.#inProcess.splice(0)) {
      await node.leave().catch(() => {});
      try {
        kernel.shutdown();
      } catch { /* already down */ }
    }
    await Promise.all([...this.nodes.values()].map((n) => n.stop(5000)));
  }
}

/**
 * Run `fn` on a fresh cluster: three nats-servers and the nodes `names`
 * (default A, B and C; none for in-process tests), in a new temporary
 * directory; everything is stopped and removed afterwards, whatever `fn` did.
 *
 * @param fn The test body.
 * @param names The `twz boot` nodes to start.
 */
export async function withCluster(
  fn: (f: Fixture) => Promise<void>,
  names: NodeName[] = ["A", "B", "C"],
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twz-global-" });
  let cluster: Cluster | undefined;
  let fixture: Fixture | undefined;
  try {
    cluster = await startCluster({ servers: 3, dir: join(dir, "nats") });
    fixture = new Fixture(dir, cluster);
    const f = fixture;
    await Promise.all(names.map((n) => f.start(n)));
    await fn(f);
  } finally {
    await fixture?.stopAll();
    await cluster?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The u32 at the base offset of `id`, read now (not from a mapping's copy). */
export function u32At(twz: Twz, id: ObjID): number {
  const bytes = twz.port.read(id, BASE_OFFSET, 4);
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
}

/** Lines of `text` that match `pattern`, their first group as numbers. */
export function numbers(text: string, pattern: RegExp): number[] {
  const g = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : "gm");
  return [...text.matchAll(g)].map((m) => Number(m[1]));
}
