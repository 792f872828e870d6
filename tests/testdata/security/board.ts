// Shared by the security suites (tests/security_programs_test.ts,
// security_gaps_test.ts, security_fsck_test.ts): a board with the probe
// program installed (tests/testdata/security/probe.ts), keys whose private
// half the test holds, keyed objects holding a secret, signed grants, and a
// probe run in chosen contexts. See docs/SECURITY.md.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ErrorCode, Kernel, type ThreadInfo } from "@twz/kernel";
import type { Hal } from "@twz/kernel/hal";
import { scratchDirs } from "@twz/kernel/hal/testing";
import {
  type Capability,
  type CapFields,
  CapFlag,
  encodeGrant,
  formatId,
  generateKeyPair,
  type Grant,
  type KernelPort,
  type KeyPairBytes,
  type KeyScheme,
  type ObjID,
  signCapability,
  WHOLE_OBJECT,
} from "@twz/kernel/abi";
import { plugin as sim } from "@twz/hal-sim";
import { plugin as pmem } from "@twz/hal-pmem";
import {
  attachThreads,
  bundleFile,
  installProgram,
  stopThreads,
  type ThreadSystem,
} from "@twz/cli/run";

/** Scratch directories, removed at exit. */
export const tmpDir = scratchDirs("twz-security-");

const described = pmem.describe();
/** Skip hal-pmem tests when libpmem2 cannot load (never under CI=true). */
export const PMEM_IGNORE = !described.available && Deno.env.get("CI") !== "true";
/** What a skipped hal-pmem test's name says. */
export const PMEM_SKIP = described.available ? "" : ` (skipped: ${described.reason})`;

/** The secret the protected objects hold (at their base, offset 256). */
export const SECRET = "the password is swordfish";
/** Where object data starts (libtwz's base offset). */
export const BASE = 256;

/** The probe program's file. */
export const PROBE = new URL("./probe.ts", import.meta.url).pathname;

let probeText: Promise<string> | undefined;

/** The probe's bundle (made once per test run). */
function probe(): Promise<string> {
  return probeText ??= bundleFile(PROBE).then((b) => b.text);
}

/** A kernel with the probe installed at /bin/probe. */
export interface Board {
  hal: Hal;
  kernel: Kernel;
  system: ThreadSystem;
  /** The admin session's port (`kernel.port()`). */
  port: KernelPort;
  /** The image file (hal-pmem), or "" (an anonymous hal-sim region). */
  image: string;
  /** Console output of every thread (shown when an assertion fails). */
  out: string[];
}

/** Boot a board on a new hal-pmem image (`pmem`) or an anonymous hal-sim region. */
export async function board(kind: "pmem" | "sim", image?: string): Promise<Board> {
  const path = image ?? (kind === "pmem" ? join(tmpDir(), "sec.img") : "");
  const hal = kind === "pmem"
    ? await pmem.open({ image: path, size: 32 << 20, create: true })
    : await sim.open({ size: 32 << 20 });
  const kernel = Kernel.boot(hal, { formatBlank: true });
  const out: string[] = [];
  const system = attachThreads({ kernel }, { console: (t) => out.push(t) });
  installProgram(system, "probe", await probe());
  return { hal, kernel, system, port: kernel.port(), image: path, out };
}

/** Stop the board's threads, its kernel and its HAL. */
export async function close(b: Board): Promise<void> {
  await stopThreads(b);
  b.kernel.shutdown();
  b.hal.close();
}

/** Run `fn` on a new board, closed after. */
export async function on(kind: "pmem" | "sim", fn: (b: Board) => Promise<void>): Promise<void> {
  const b = await board(kind);
  try {
    await fn(b);
  } finally {
    await close(b);
  }
}

/** A key whose private half the test holds (imported into the kernel). */
export interface TestKey {
  kuid: ObjID;
  privateId: ObjID;
  scheme: KeyScheme;
  pair: KeyPairBytes;
}

/** Make a key pair here and import it (`keyCreate` with both halves). */
export async function makeKey(
  port: KernelPort,
  scheme: KeyScheme = "ecdsa-p256",
): Promise<TestKey> {
  const pair = await generateKeyPair(scheme);
  const ids = await port.keyCreate({
    scheme,
    publicKey: pair.publicKey,
    privateKey: pair.privateKey,
  });
  return { ...ids, scheme, pair };
}

/**
 * A persistent object under `key` with default protections `prot` (none by
 * default) holding `text` at offset 256: the bytes come from a scratch
 * object as a create source, since nobody may write it afterwards.
 */
export function secretObject(port: KernelPort, key: ObjID, text = SECRET, prot = 0): ObjID {
  const scratch = port.create({ size: 4096, lifetime: "volatile" });
  try {
    port.write(scratch, BASE, new TextEncoder().encode(text));
    return port.create({
      size: 4096,
      prot,
      keyId: key,
      sources: [{ id: scratch, srcOffset: 0, dstOffset: 0, length: 4096 }],
    });
  } finally {
    port.delete(scratch);
  }
}

/** The fields of a grant of `prot` on `target` to `accessor`, whole object, no expiry. */
export function fields(key: TestKey, target: ObjID, accessor: ObjID, prot: number): CapFields {
  return {
    target,
    accessor,
    prot,
    flags: CapFlag.Sha256 | (key.scheme === "ed25519" ? CapFlag.Ed25519 : 0),
    expiry: 0n,
    gate: { ...WHOLE_OBJECT },
  };
}

/** Sign `f` with `key`. */
export function sign(key: TestKey, f: CapFields): Promise<Capability> {
  return signCapability(f, key.pair.privateKey);
}

/**
 * Add `grant` to `ctx` as the admin. Returns its index, or the kernel's
 * refusal (a bad grant may be refused at once: it grants nothing either way).
 */
export function add(port: KernelPort, ctx: ObjID, grant: Grant | Uint8Array): number | Error {
  try {
    return port.ctxAdd(ctx, grant instanceof Uint8Array ? grant : encodeGrant(grant));
  } catch (e) {
    return e as Error;
  }
}

/** What the probe printed for one operation. */
export interface ProbeResult {
  op: string;
  ok: boolean;
  code?: number;
  error?: string;
  text?: string;
  prot?: number | string;
  length?: number;
  epoch?: number | null;
  reply?: string;
  found?: boolean;
  seen?: string[];
  reasons?: string[];
  contexts?: string[];
  [k: string]: unknown;
}

/** A running probe: its thread and, once ended, what each operation did. */
export interface Probe {
  info: ThreadInfo;
  /** The thread's console text so far. */
  out: string[];
  /** Wait for its end; its results by operation, in order. */
  done(): Promise<ProbeResult[]>;
}

/** Start the probe in `contexts` (none: no contexts) with the operations `ops`. */
export function start(b: Board, contexts: ObjID[] | undefined, ops: string[]): Probe {
  const out: string[] = [];
  const info = b.system.manager.spawn(
    {
      code: b.system.twz.naming.lookup("/bin/probe")!.id,
      name: "probe",
      args: ops,
      ...(contexts ? { contexts } : {}),
    },
    { console: (t) => out.push(t) },
  );
  return {
    info,
    out,
    async done() {
      const end = await ended(b, info.tid, out);
      const results = out.join("").split("\n").filter((l) => l.startsWith("R ")).map((l) =>
        JSON.parse(l.slice(2)) as ProbeResult
      );
      assert.equal(
        end.exitCode,
        0,
        `probe ended with ${end.exitCode} ${end.fault?.message}: ${out.join("")}`,
      );
      assert.equal(results.length, ops.length, `one result per operation: ${out.join("")}`);
      return results;
    },
  };
}

/** Run the probe to its end (see {@linkcode start}). */
export function probeIn(
  b: Board,
  contexts: ObjID[] | undefined,
  ops: string[],
): Promise<ProbeResult[]> {
  return start(b, contexts, ops).done();
}

/** The thread once ended; gives up (fails) after `limitMs`. */
export async function ended(
  b: Board,
  tid: number,
  out: string[],
  limitMs = 60_000,
): Promise<ThreadInfo> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`gave up waiting for thread ${tid}: ${out.join("")}`)),
      limitMs,
    );
  });
  try {
    return await Promise.race([b.system.manager.wait(tid), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Hex of an ID as the probe takes it. */
export const hex = (id: ObjID): string => formatId(id);

/**
 * A plain object (default read-write) the test and the probe step through:
 * the probe stores K in word 0 at `step:SYNC:K`, waits for word 1 >= K.
 */
export class Stepper {
  readonly id: ObjID;
  readonly #view: DataView;
  readonly #port: KernelPort;
  /** Make the object on the admin port. */
  constructor(port: KernelPort) {
    this.#port = port;
    this.id = port.create({ size: 4096 });
    const m = port.map(this.id, 3);
    this.#view = new DataView(m.bytes.buffer, m.bytes.byteOffset, 8);
  }
  /** Wait until the probe has reached step `k`. */
  async reached(k: number, out: string[], limitMs = 60_000): Promise<void> {
    const end = Date.now() + limitMs;
    while (this.#view.getUint32(0, true) < k) {
      if (Date.now() > end) throw new Error(`the probe never reached step ${k}: ${out.join("")}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  /** Let the probe past step `k`. */
  go(k: number): void {
    this.#view.setUint32(4, k, true);
    this.#port.threadSync([{ op: "wake", id: this.id, offset: 4, count: 8 }]);
  }
}

/** Assert `r` was refused (with `code`, AccessDenied unless given). */
export function denied(r: ProbeResult, what: string, code: number = ErrorCode.AccessDenied): void {
  assert.equal(r.ok, false, `${what}: ${r.op} should be refused, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code, `${what}: ${r.op} refused with code ${r.code}: ${r.error}`);
}

/** Assert `r` succeeded. */
export function allowed(r: ProbeResult, what: string): void {
  assert.equal(r.ok, true, `${what}: ${r.op} should succeed, got ${JSON.stringify(r)}`);
}
