/**
 * Security from a program's side: keys, security contexts, capabilities and
 * delegations, effective protections, and secure gates — over the kernel
 * port's security calls (docs/SECURITY.md).
 *
 * | What | Functions |
 * | --- | --- |
 * | Keys (a key object and its private object) | {@linkcode createKey}, {@linkcode rotateKey} |
 * | Security contexts | {@linkcode createContext}, {@linkcode attach}, {@linkcode detach}, {@linkcode contexts} |
 * | Grants | {@linkcode grant} (a capability), {@linkcode delegate} (a narrower grant), {@linkcode revoke} |
 * | Why | {@linkcode access}: effective protections and one reason per grant |
 * | Gates | {@linkcode serveGate}, {@linkcode callGate} |
 * | Keyed objects | `twz.create({ key })` (`@twz/libtwz`): the ID is derived from the key; {@linkcode createProtected}: one only the session's context may use |
 *
 * Every function takes the session first, as the other modules do. Signing
 * happens here, in the caller: {@linkcode grant} reads the private object of
 * the target's key through the port (the caller needs Read on it: the
 * creator's first context gets that capability when it makes the key, and
 * the kernel's own session may read every object), signs with WebCrypto and
 * hands the encoded grant to the kernel, which verifies it at the next map.
 *
 * **Revocation.** Removing a grant ({@linkcode revoke}), rotating a key,
 * setting a mask or detaching narrows access at the next map; mappings a
 * thread already holds are withdrawn by the kernel, which adds one to the
 * thread's epoch word (`port.epoch`). libtwz compares that word at map, at
 * pointer resolution and on each cross-object hop; when it moved, the
 * session gives back the withdrawn mappings and maps again on next use — an
 * object no longer allowed then fails with `TwzError` `AccessDenied` naming
 * it.
 *
 * @example A key, a protected object, a context and a read capability
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { access, createContext, createKey, grant, revoke } from "@twz/libtwz/security";
 * import { formatSecProt, SecProt } from "@twz/kernel/abi";
 *
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const key = await createKey(twz);
 * // Default protections none; the ID is derived from the key.
 * const secret = twz.port.create({ size: 4096, prot: 0, keyId: key.kuid });
 * const reader = createContext(twz);
 * const { index } = await grant(twz, { target: secret, to: reader, prot: SecProt.Read });
 * console.log(formatSecProt((await access(twz, secret, [reader])).prot)); // r----
 * revoke(twz, reader, index);
 * console.log(formatSecProt((await access(twz, secret, [reader])).prot)); // -----
 * twz.close();
 * ```
 *
 * @example A libtwz object under a key (readable and writable by default)
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { createKey } from "@twz/libtwz/security";
 *
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const key = await createKey(twz);
 * const obj = twz.create({ key: key.kuid, size: 4096 });
 * console.log(obj.meta.keyId === key.kuid); // true
 * twz.close();
 * ```
 *
 * @module
 */
import {
  type AccessReport,
  BASE_OFFSET,
  type Capability,
  type CapFields,
  CapFlag,
  type Delegation,
  encodeGrant,
  ErrorCode,
  formatId,
  formatSecProt,
  type Gate,
  type Grant,
  type KernelPort,
  type KeyIds,
  type KeyScheme,
  type ObjID,
  SecProt,
  signCapability,
  signDelegation,
  TwzError,
  WHOLE_OBJECT,
} from "@twz/kernel/abi";
import type { CreateOptions, Twz } from "./twz.ts";
import type { TwzObject } from "./object.ts";

export type { AccessReport, Capability, Delegation, Gate, KeyIds, KeyScheme };

/** Options of {@linkcode createKey}. */
export interface CreateKeyOptions {
  /** The signing scheme. @default {"ecdsa-p256"} */
  scheme?: KeyScheme | undefined;
}

/** Options of {@linkcode createContext}. */
export interface CreateContextOptions {
  /**
   * The key that speaks for the context: it signs the context's delegations
   * (and capabilities with Use on the context, to let others attach).
   */
  key?: ObjID | undefined;
}

/** What a new grant gives (shared by {@linkcode grant} and {@linkcode delegate}). */
export interface GrantTerms {
  /** The context that receives the grant (its `accessor`). */
  to: ObjID;
  /** `SecProt` bits. */
  prot: number;
  /** When it stops granting: a `Date` or milliseconds since the Unix epoch. Absent: never. */
  expires?: Date | number | undefined;
  /** The range it covers. @default {WHOLE_OBJECT} */
  gate?: Gate | undefined;
  /** Whether the receiver may delegate it further. @default {false} */
  delegable?: boolean | undefined;
  /** Add it to `to` (`port.ctxAdd`); `false` only signs it. @default {true} */
  add?: boolean | undefined;
}

/** Options of {@linkcode grant}. */
export interface GrantOptions extends GrantTerms {
  /** The object; the grant is signed with the private half of its key. */
  target: ObjID;
}

/** Options of {@linkcode delegate}. */
export interface DelegateOptions extends GrantTerms {
  /** The context holding the parent grant; its key signs the delegation. */
  from: ObjID;
  /** The parent's index in `from`. */
  index: number;
}

/** A signed grant, its encoding, and its index in `to` (-1 when not added). */
export interface Granted<G> {
  /** The grant. */
  grant: G;
  /** Its encoding (`encodeGrant`): what a context stores. */
  bytes: Uint8Array;
  /** Its index in the receiving context, or -1 when `add` was `false`. */
  index: number;
}

/** Who called a gate entry point, as its handler sees it. */
export interface GateCaller {
  /** The calling thread. */
  tid: number;
  /** The calling thread's security contexts. */
  contexts: ObjID[];
}

/** A gate entry point's handler: the caller's argument bytes in, the answer out. */
export type GateHandler = (
  args: Uint8Array,
  caller: GateCaller,
) => Uint8Array | Promise<Uint8Array>;

/** Options of {@linkcode serveGate}. */
export interface ServeGateOptions {
  /** Stops serving (between calls). */
  signal?: AbortSignal | undefined;
  /** Stop after this long without a call (ms). Absent: serve until `signal`. */
  timeoutMs?: number | undefined;
}

/**
 * Create a key: the kernel generates a pair and stores its public half in a
 * new key object (objects name it as their `kuid`) and its private half in a
 * private object readable by the caller's first context (and the kernel's
 * own session).
 *
 * @param twz The session.
 * @param opts The scheme.
 * @returns The key object's ID (`kuid`) and the private object's.
 */
export function createKey(twz: Twz, opts: CreateKeyOptions = {}): Promise<KeyIds> {
  return twz.port.keyCreate(opts.scheme === undefined ? {} : { scheme: opts.scheme });
}

/**
 * Give a key a new pair: grants signed with the old one stop granting (at
 * the next map; live mappings under them are withdrawn).
 *
 * @param twz The session.
 * @param kuid The key object.
 */
export function rotateKey(twz: Twz, kuid: ObjID): Promise<void> {
  return twz.port.keyRotate(kuid);
}

/**
 * Create a security context.
 *
 * @param twz The session.
 * @param opts The key that speaks for it.
 * @returns The context's ID.
 */
export function createContext(twz: Twz, opts: CreateContextOptions = {}): ObjID {
  return twz.port.ctxCreate(opts.key === undefined ? {} : { key: opts.key });
}

/**
 * Sign a capability for `opts.to` on `opts.target` with the private half of
 * the target's key, and add it to `to` (unless `add: false`).
 *
 * @param twz The session.
 * @param opts Target, receiver, protections, expiry, gate, delegable.
 * @returns The capability, its encoding and its index in `to`.
 * @throws {TwzError} `InvalidArgument` (the target has no key, bad terms),
 * `AccessDenied` (the session may not read the key's private object).
 */
export async function grant(twz: Twz, opts: GrantOptions): Promise<Granted<Capability>> {
  const port = twz.port;
  const target = opts.target;
  const kuid = port.stat(target).keyId;
  if (kuid === 0n) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `object ${formatId(target)} has no key: only an object created with a key takes capabilities`,
    );
  }
  const key = port.keyInfo(kuid);
  const fields: CapFields = {
    target,
    accessor: opts.to,
    prot: checkProt(opts.prot),
    flags: flagsFor(key.scheme, opts.delegable),
    expiry: expiryOf(opts.expires),
    gate: checkGate(opts.gate ?? WHOLE_OBJECT),
  };
  const secret = await privateKey(port, kuid, key.privateId);
  const cap = await signCapability(fields, secret);
  secret.fill(0);
  const bytes = encodeGrant(cap);
  return { grant: cap, bytes, index: opts.add === false ? -1 : await add(port, opts.to, bytes) };
}

/**
 * Delegate: sign, with the private half of `from`'s key, a grant for `to`
 * that is at most what grant `index` of `from` gives (never wider in
 * protections, expiry or gate), and add it to `to` (unless `add: false`).
 *
 * @param twz The session.
 * @param opts The parent (`from`, `index`), receiver and terms.
 * @returns The delegation, its encoding and its index in `to`.
 * @throws {TwzError} `InvalidArgument` (a wider delegation, a parent that may
 * not be delegated, `from` has no key), `AccessDenied` (the session may not
 * read the private object of `from`'s key).
 */
export async function delegate(twz: Twz, opts: DelegateOptions): Promise<Granted<Delegation>> {
  const port = twz.port;
  const from = opts.from;
  const info = port.ctxInfo(from);
  const parent = info.grants.find((g) => g.index === opts.index)?.grant;
  if (parent === undefined) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `context ${formatId(from)} has no grant ${opts.index}`,
    );
  }
  if ((parent.flags & CapFlag.Delegate) === 0) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `grant ${opts.index} of context ${
        formatId(from)
      } may not be delegated (it was not granted delegable)`,
    );
  }
  if (info.key === 0n) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `context ${formatId(from)} has no key to sign delegations with (create it with a key)`,
    );
  }
  const key = port.keyInfo(info.key);
  const fields: CapFields = {
    target: parent.target,
    accessor: opts.to,
    prot: checkProt(opts.prot),
    flags: flagsFor(key.scheme, opts.delegable),
    expiry: opts.expires === undefined ? parent.expiry : expiryOf(opts.expires),
    gate: checkGate(opts.gate ?? parent.gate),
  };
  const wider = widens(fields, parent);
  if (wider !== undefined) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `a delegation cannot be wider than its parent (grant ${opts.index} of ${
        formatId(from)
      }): ${wider}`,
    );
  }
  const secret = await privateKey(port, info.key, key.privateId);
  const d = await signDelegation(fields, from, parent, secret);
  secret.fill(0);
  const bytes = encodeGrant(d);
  return { grant: d, bytes, index: opts.add === false ? -1 : await add(port, opts.to, bytes) };
}

/** Options of {@linkcode createProtected}. */
export interface CreateProtectedOptions extends Omit<CreateOptions, "key" | "keyId" | "prot"> {
  /** The key whose capabilities grant access (the session must be able to sign with it). */
  key: ObjID;
  /** Default protections: what everybody else gets. @default {0} (none) */
  prot?: number;
  /** What the session's own first context gets, by a capability. @default {SecProt.Read | SecProt.Write} */
  access?: number;
}

/**
 * Create a libtwz object under a key that others may not use (default
 * protections none, or `prot`), give the session's first context a
 * capability for `access` on it, and map it: the way a program makes an
 * object private to its context. ({@linkcode Twz.create} gives a read-write
 * handle, so it needs default protections that allow one.)
 *
 * @param twz The session (a program's thread with a context).
 * @param opts The key, protections, and what `Twz.create` takes.
 * @returns A writable handle.
 * @throws {TwzError} `NotSupported` (the session has no context: the kernel's
 * own session), `AccessDenied` (the session may not sign with `key`), and what
 * `Twz.create` throws.
 */
export async function createProtected(
  twz: Twz,
  opts: CreateProtectedOptions,
): Promise<TwzObject> {
  const [mine] = twz.port.contexts();
  if (mine === undefined) {
    throw new TwzError(
      ErrorCode.NotSupported,
      "createProtected needs a session with a security context to hold its capability (the kernel's own session has none: use twz.create)",
    );
  }
  const want = opts.access ?? (SecProt.Read | SecProt.Write);
  if ((want & (SecProt.Read | SecProt.Write)) !== (SecProt.Read | SecProt.Write)) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      "createProtected gives a read-write handle: access must include read and write",
    );
  }
  const { key, prot = 0, access: _, ...rest } = opts;
  // Make sure the session can sign before there is an object to leak.
  (await privateKey(twz.port, key, twz.port.keyInfo(key).privateId)).fill(0);
  const id = twz._createId({ ...rest, key, prot });
  try {
    await grant(twz, { target: id, to: mine, prot: want });
    return await settled(twz.port, id, () => twz.handle(id, true));
  } catch (e) {
    try {
      if (rest.name !== undefined) twz.naming.unbind(rest.name);
      twz.port.delete(id);
    } catch { /* left unnamed or unusable: nobody holds a capability for it */ }
    throw e;
  }
}

/**
 * Remove grant `index` from context `ctx` (takes effect at the next map;
 * live mappings under it are withdrawn).
 *
 * @param twz The session.
 * @param ctx The context.
 * @param index The grant's index.
 */
export function revoke(twz: Twz, ctx: ObjID, index: number): void {
  twz.port.ctxRemove(ctx, index);
}

/**
 * Attach the session's thread to a context (it needs Use on it).
 *
 * @param twz The session (a program's thread).
 * @param ctx The context.
 */
export function attach(twz: Twz, ctx: ObjID): Promise<void> {
  return twz.port.ctxAttach(ctx);
}

/**
 * Detach the session's thread from a context (narrows at the next map).
 *
 * @param twz The session.
 * @param ctx The context.
 */
export function detach(twz: Twz, ctx: ObjID): void {
  twz.port.ctxDetach(ctx);
}

/**
 * The security contexts of the session's thread (none for the kernel's own
 * session, which is the admin).
 *
 * @param twz The session.
 * @returns Context IDs.
 */
export function contexts(twz: Twz): ObjID[] {
  return twz.port.contexts();
}

/**
 * Effective protections of an object for some contexts (default: the
 * session's), and why: one reason per grant looked at.
 *
 * @param twz The session.
 * @param id The object.
 * @param contexts The contexts (default: the session's).
 * @returns The report.
 */
export function access(twz: Twz, id: ObjID, contexts?: ObjID[]): Promise<AccessReport> {
  return twz.port.access(id, contexts);
}

/**
 * Serve the gate calls into object `id` from this thread: each call at an
 * entry point of `entries` runs its handler, whose answer goes back to the
 * caller; a call at another offset is answered with an error. Returns when
 * `signal` aborts or `timeoutMs` passes without a call.
 *
 * @param twz The session (a program's thread with Write on `id`).
 * @param id The gate object.
 * @param entries Handlers by entry-point offset.
 * @param opts Stop signal, idle timeout.
 */
export async function serveGate(
  twz: Twz,
  id: ObjID,
  entries: Record<number, GateHandler>,
  opts: ServeGateOptions = {},
): Promise<void> {
  const port = twz.port;
  port.gateServe(id);
  let idleUntil = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    if (opts.signal?.aborted) return;
    const left = idleUntil - Date.now();
    if (left <= 0) return;
    // Short slices: an abort is seen between them, and the event loop runs
    // (handlers may await) between calls.
    const call = port.gateReceive(Math.min(left, GATE_SLICE_MS));
    if (call === null) {
      await new Promise((r) => setTimeout(r, 0));
      continue;
    }
    const handler = Object.hasOwn(entries, call.offset) ? entries[call.offset] : undefined;
    let answer: Uint8Array;
    if (handler === undefined) {
      answer = gateFailure(ErrorCode.NotSupported, "the server has no such entry point");
    } else {
      try {
        answer = await handler(call.args, { tid: call.callerTid, contexts: call.callerContexts });
        if (!(answer instanceof Uint8Array)) {
          throw new TypeError("the handler answered no Uint8Array");
        }
      } catch (e) {
        answer = gateFailure(
          e instanceof TwzError ? e.code : ErrorCode.InvalidArgument,
          e instanceof Error ? e.message : String(e),
        );
      }
    }
    port.gateReply(call.call, answer);
    if (opts.timeoutMs !== undefined) idleUntil = Date.now() + opts.timeoutMs;
  }
}

/**
 * Call entry point `offset` of gate object `id` (the kernel checks that a
 * grant of the session's contexts admits it) and wait for the answer.
 *
 * @param twz The session (a program's thread).
 * @param id The gate object.
 * @param offset The entry point.
 * @param args Argument bytes.
 * @param timeoutMs How long to wait for the answer. @default {10000}
 * @returns The callee's answer.
 */
export function callGate(
  twz: Twz,
  id: ObjID,
  offset: number,
  args: Uint8Array,
  timeoutMs?: number,
): Uint8Array {
  const answer = twz.port.gateCall(id, offset, args, timeoutMs);
  const failure = gateFailureOf(answer);
  if (failure === undefined) return answer;
  throw new TwzError(
    failure.code,
    `gate ${formatId(id)} entry point ${offset} failed: ${failure.message}`,
  );
}

/** How long one `gateReceive` waits before the server looks at its signal (ms). */
const GATE_SLICE_MS = 100;
/**
 * Prefix of an answer that reports a failure (no handler, a handler threw):
 * these bytes, the `ErrorCode` (u8), the message (UTF-8). {@linkcode callGate}
 * throws it as a `TwzError`.
 */
const GATE_FAILURE = new Uint8Array([0, 0x74, 0x77, 0x7a, 0x21, 0x67, 0x61, 0x74]); // "\0twz!gat"

function gateFailure(code: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message);
  const out = new Uint8Array(GATE_FAILURE.length + 1 + text.length);
  out.set(GATE_FAILURE);
  out[GATE_FAILURE.length] = code;
  out.set(text, GATE_FAILURE.length + 1);
  return out;
}

function gateFailureOf(answer: Uint8Array): { code: ErrorCode; message: string } | undefined {
  if (answer.length <= GATE_FAILURE.length) return undefined;
  for (let i = 0; i < GATE_FAILURE.length; i++) {
    if (answer[i] !== GATE_FAILURE[i]) return undefined;
  }
  const code = answer[GATE_FAILURE.length]!;
  return {
    code: (Object.values(ErrorCode) as number[]).includes(code)
      ? code as ErrorCode
      : ErrorCode.InvalidArgument,
    message: new TextDecoder().decode(answer.subarray(GATE_FAILURE.length + 1)),
  };
}

/** Checked `SecProt` bits. */
function checkProt(prot: number): number {
  if (!Number.isInteger(prot) || prot <= 0 || (prot & ~SecProt.All) !== 0) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `${prot} is not a protection to grant (SecProt bits: 1 to ${SecProt.All})`,
    );
  }
  return prot;
}

/** A grant's flags: SHA-256 of the serialization, the key's scheme, delegable. */
function flagsFor(scheme: KeyScheme, delegable: boolean | undefined): number {
  return CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0) |
    (delegable === true ? CapFlag.Delegate : 0);
}

/** Expiry in nanoseconds since the Unix epoch (`0n`: never). */
function expiryOf(expires: Date | number | undefined): bigint {
  if (expires === undefined) return 0n;
  const ms = expires instanceof Date ? expires.getTime() : expires;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `${String(expires)} is not an expiry (a Date or milliseconds since 1970)`,
    );
  }
  return BigInt(Math.floor(ms)) * 1_000_000n;
}

const U64_MAX = (1n << 64n) - 1n;

/** A checked gate. */
function checkGate(gate: Gate): Gate {
  const { offset, length, align } = gate;
  for (const [name, v] of [["offset", offset], ["length", length], ["align", align]] as const) {
    if (typeof v !== "bigint" || v < 0n || v > U64_MAX) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `gate ${name} ${String(v)} is not a u64 (a bigint from 0 to 2^64 - 1)`,
      );
    }
  }
  if (align === 0n) {
    throw new TwzError(ErrorCode.InvalidArgument, "gate align must be at least 1");
  }
  if (offset + length > U64_MAX) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `gate ${offset}:${length} ends past 2^64 - 1`,
    );
  }
  return { offset, length, align };
}

/**
 * How `child` would be wider than `parent`, or `undefined` when it is not:
 * more protections, a later (or no) expiry where the parent has one, a gate
 * outside the parent's, an alignment that is not a multiple of the parent's.
 */
function widens(child: CapFields, parent: Grant): string | undefined {
  if ((child.prot & ~parent.prot) !== 0) {
    return `protections ${formatSecProt(child.prot)} exceed the parent's ${
      formatSecProt(parent.prot)
    }`;
  }
  if (parent.expiry !== 0n && (child.expiry === 0n || child.expiry > parent.expiry)) {
    return `it would outlive the parent, which expires at ${isoOf(parent.expiry)}`;
  }
  const c = child.gate, p = parent.gate;
  if (c.offset < p.offset || c.offset + c.length > p.offset + p.length) {
    return `gate ${c.offset}:${c.length} lies outside the parent's ${p.offset}:${p.length}`;
  }
  if (c.align % p.align !== 0n) {
    return `gate alignment ${c.align} is not a multiple of the parent's ${p.align}`;
  }
  return undefined;
}

function isoOf(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

/**
 * A port call that the kernel may answer with `Busy` on an in-process
 * session whose principal's verdict is not known yet: warm the verdict of
 * `id` (`port.access`) and try again.
 */
async function settled<T>(port: KernelPort, id: ObjID, call: () => T): Promise<T> {
  for (let tries = 0;; tries++) {
    try {
      return call();
    } catch (e) {
      if (!(e instanceof TwzError && e.code === ErrorCode.Busy) || tries >= 3) throw e;
    }
    await port.access(id);
  }
}

/** Add encoded grant `bytes` to context `to`. */
function add(port: KernelPort, to: ObjID, bytes: Uint8Array): Promise<number> {
  return settled(port, to, () => port.ctxAdd(to, bytes));
}

/**
 * The PKCS#8 bytes of key `kuid`'s private object: a DER SEQUENCE at its
 * base, read through the port (the session needs Read on it).
 */
async function privateKey(port: KernelPort, kuid: ObjID, privateId: ObjID): Promise<Uint8Array> {
  if (privateId === 0n) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `key ${formatId(kuid)} has no private half here (only its public key was imported)`,
    );
  }
  const read = (offset: number, length: number) =>
    settled(port, privateId, () => port.read(privateId, BASE_OFFSET + offset, length));
  try {
    const head = await read(0, 4);
    let length = -1, header = 0;
    if (head[0] === 0x30) {
      const b = head[1]!;
      if (b < 0x80) [length, header] = [b, 2];
      else if (b === 0x81) [length, header] = [head[2]!, 3];
      else if (b === 0x82) [length, header] = [(head[2]! << 8) | head[3]!, 4];
    }
    if (length < 0) {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `the private object ${formatId(privateId)} of key ${
          formatId(kuid)
        } holds no PKCS#8 key at its base`,
      );
    }
    return await read(0, header + length);
  } catch (e) {
    if (e instanceof TwzError && e.code === ErrorCode.AccessDenied) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `cannot sign with key ${formatId(kuid)}: this session may not read its private object ${
          formatId(privateId)
        }`,
        { cause: e },
      );
    }
    throw e;
  }
}
