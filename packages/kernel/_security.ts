/**
 * The kernel's security core: key objects, security contexts and the
 * effective protections a caller has on an object (docs/SECURITY.md; the
 * byte layouts of key and context objects are in docs/FORMATS.md).
 *
 * - **Who calls**: a {@linkcode Principal} — the admin (the kernel's own
 *   session: the shell, `Twz.open`, the control socket) or a thread with
 *   its security contexts.
 * - **What it may do**: {@linkcode Security.allowed} — the object's default
 *   protections plus every valid grant in each of the caller's contexts,
 *   limited by the context's masks, OR-ed over the contexts. Signatures are
 *   verified once (WebCrypto, asynchronous) and the verdicts cached; the
 *   effective protections are cached per (context, object) until a change to
 *   a context or key, or until the earliest expiry among the grants they rest on.
 * - **Kernel-written objects**: key objects, private-key objects and contexts
 *   are written by the kernel only (never writable through a port); every
 *   change is durable and crash-safe (a slot is written and persisted, then
 *   published by one aligned 32-bit store, persisted).
 *
 * @module
 */
import {
  type AccessReason,
  type AccessReport,
  CapFlag,
  type ContextInfo,
  decodeGrant,
  encodeGrant,
  ErrorCode,
  formatId,
  formatSecProt,
  type Gate,
  generateKeyPair,
  type Grant,
  importPublicKey,
  isValidId,
  type KeyIds,
  type KeyInfo,
  type KeyScheme,
  type KeySpec,
  type ObjID,
  Prot,
  readId,
  schemeOf,
  SecProt,
  signCapability,
  signedMessage,
  TwzError,
  verifySignature,
  WHOLE_OBJECT,
  writeId,
} from "./abi/mod.ts";
import type { Kernel } from "./kernel.ts";

/**
 * Who makes a call: the admin (the kernel's own session: shell, `Twz.open`,
 * control socket) or a thread. A thread's `contexts` is its live array (the
 * thread manager changes it on attach and detach).
 */
export type Principal =
  | { readonly admin: true }
  | { readonly admin: false; readonly tid: number; readonly contexts: ObjID[] };

/** The kernel's own session: may read and delete every object, manage every key and context. */
export const ADMIN: Principal = Object.freeze({ admin: true as const });

// ---------------------------------------------------------------------------
// Layouts (docs/FORMATS.md "Key objects", "Security contexts").
// ---------------------------------------------------------------------------

/** Where a kernel-written object's header starts (after the meta-info area). */
export const SEC_BASE = 256;
/** Magic of a key object ("TZKY" in little-endian bytes). */
export const KEY_MAGIC = 0x594b5a54;
/** Magic of a security context ("TZCX"). */
export const CTX_MAGIC = 0x58435a54;
/** Layout version of key and context objects. */
export const SEC_VERSION = 1;

/** Key object header: magic u32, version u16, reserved u16, generation u32 (publishes a slot). */
const KEY_GEN = 8;
/** The two key slots (generation & 1 selects), 128 bytes each. */
const KEY_SLOTS = 16;
const KEY_SLOT_BYTES = 128;
/** Slot fields. */
const KS_SCHEME = 0, KS_PUBLEN = 2, KS_PRIVLEN = 4, KS_GEN = 8, KS_NONCE = 16, KS_PUB = 32;
/** The largest public key a slot holds. */
const KEY_PUB_MAX = 96;
/** Size of a key object. */
export const KEY_OBJECT_SIZE = 1024;

/** Context header fields. */
const CX_GEN = 8, CX_GMASK = 12, CX_KEY = 16, CX_GRANT_BITS = 32, CX_MASK_BITS = 36;
/** Mask entries: 16 × 32 bytes (target 16, prot u32, 12 reserved). */
const CX_MASKS = 64;
/** Most per-object masks in a context. */
export const CTX_MASKS = 16;
const MASK_BYTES = 32;
/** Grant slots: 32 × (length u32, reserved u32, 640 bytes). */
const CX_GRANTS = CX_MASKS + CTX_MASKS * MASK_BYTES;
/** Most grants in a context. */
export const CTX_GRANTS = 32;
/** The largest encoded grant (a capability and three delegations). */
export const GRANT_MAX_BYTES = 640;
const GRANT_SLOT_BYTES = 8 + GRANT_MAX_BYTES;
/** Size of a context object. */
export const CTX_OBJECT_SIZE =
  Math.ceil((SEC_BASE + CX_GRANTS + CTX_GRANTS * GRANT_SLOT_BYTES) / 1024) *
  1024;

const SCHEME_CODE: Record<KeyScheme, number> = { "ecdsa-p256": 1, "ed25519": 2 };
const SCHEMES: Record<number, KeyScheme> = { 1: "ecdsa-p256", 2: "ed25519" };

type Kind = "key" | "ctx" | "private" | "none";

interface KeyState {
  kuid: ObjID;
  scheme: KeyScheme;
  publicKey: Uint8Array;
  nonce: bigint;
  privateId: ObjID;
  privLen: number;
  generation: number;
}

interface GrantEntry {
  bytes: Uint8Array;
  grant: Grant;
}

interface CtxState {
  id: ObjID;
  key: ObjID;
  globalMask: number;
  generation: number;
  grantBits: number;
  maskBits: number;
  grants: Map<number, GrantEntry>;
  masks: Map<number, { target: ObjID; prot: number }>;
}

interface ObjRecord {
  defaults: number;
  keyId: ObjID;
  kernelObject: boolean;
}

interface Effective {
  prot: number;
  gen: number;
  /** Wall-clock ms at which the earliest contributing grant expires. */
  until: number;
}

/** What one grant gives for (context, object): `prot` 0 with a reason when nothing. */
interface Verdict {
  prot: number;
  why: string;
  gate: Gate;
  /** Earliest expiry among its links, in wall-clock ms (Infinity: none). */
  until: number;
}

const NS_PER_MS = 1_000_000n;
const U64_MAX = (1n << 64n) - 1n;

/**
 * The kernel's security: key and context objects, the effective protections
 * of callers, and the caches that make a repeated check cost a lookup.
 * `kernel.security` makes one per kernel on first use.
 */
export class Security {
  readonly #kernel: Kernel;
  /** Bumped by every change to a context or key: cached protections older than it are stale. */
  #gen = 1;
  readonly #kinds = new Map<ObjID, Kind>();
  readonly #records = new Map<ObjID, ObjRecord>();
  readonly #keys = new Map<ObjID, KeyState>();
  readonly #ctxs = new Map<ObjID, CtxState>();
  /** Signature verdicts of grant chains: encoded bytes + signer generations. */
  readonly #verdicts = new Map<string, boolean | Promise<boolean>>();
  readonly #cryptoKeys = new Map<string, Promise<CryptoKey>>();
  /** Effective protections per context, per object. */
  readonly #effective = new Map<ObjID, Map<ObjID, Effective>>();

  /**
   * Hook (the thread manager sets it): called after every change that may
   * narrow access (grant removed, key rotated, mask set or changed, context
   * or key deleted, a thread detached); the manager re-checks live mappings
   * and withdraws those no longer allowed.
   */
  onNarrow: ((change: { contexts: ObjID[]; keys: ObjID[] }) => void) | undefined = undefined;

  /** The security of `kernel` (use `kernel.security`, which makes one per kernel). */
  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  /** The security generation: bumped by every change to a context or key. */
  get generation(): number {
    return this.#gen;
  }

  // -------------------------------------------------------------------------
  // Effective protections.
  // -------------------------------------------------------------------------

  /**
   * Effective protections ({@linkcode SecProt} bits) of `id` for `who`: a
   * number when known now (cached verdicts), else a Promise (signatures to
   * verify); once it resolves, the same call answers a number until a change.
   *
   * The admin: defaults | Read | Delete. A thread with no contexts: the
   * defaults. Otherwise, per context, (defaults | valid grants for `id`) &
   * mask(`id`) & global mask, OR-ed over its contexts. Key and context
   * objects never allow Write.
   *
   * @throws {TwzError} `ObjectNotFound`.
   */
  allowed(who: Principal, id: ObjID): number | Promise<number> {
    if (who.admin) {
      const rec = this.#record(id);
      const all = rec.defaults | SecProt.Read | SecProt.Delete;
      return rec.kernelObject ? all & ~SecProt.Write : all;
    }
    const ctxs = who.contexts;
    if (ctxs.length === 0) {
      const rec = this.#record(id);
      return rec.kernelObject ? rec.defaults & ~SecProt.Write : rec.defaults;
    }
    // Each context's cached answer (Write already stripped for kernel objects).
    let out = 0;
    let pending: Promise<number>[] | undefined;
    for (let i = 0; i < ctxs.length; i++) {
      const r = this.#effectiveOf(ctxs[i]!, id);
      if (typeof r === "number") out |= r;
      else (pending ??= []).push(r);
    }
    if (pending !== undefined) return Promise.all(pending).then(() => this.#settled(who, id));
    return out;
  }

  /** `allowed`, once every verification it waited for is done (loops on a race with a change). */
  async #settled(who: Principal, id: ObjID): Promise<number> {
    for (;;) {
      const r = this.allowed(who, id);
      if (typeof r === "number") return r;
      await r;
    }
  }

  /** The cached or computed protections of context `ctx` on `id`. */
  #effectiveOf(ctx: ObjID, id: ObjID): number | Promise<number> {
    const e = this.#effective.get(ctx)?.get(id);
    if (
      e !== undefined && e.gen === this.#gen &&
      (e.until === Infinity || this.#kernel.hal.clock.wallclock() < e.until)
    ) {
      return e.prot;
    }
    return this.#computeEffective(ctx, id, this.#record(id));
  }

  #computeEffective(ctx: ObjID, id: ObjID, rec: ObjRecord): number | Promise<number> {
    const gen = this.#gen;
    const st = this.#ctxState(ctx);
    if (st === undefined) {
      // Not (or no longer) a context: the defaults only.
      return rec.kernelObject ? rec.defaults & ~SecProt.Write : rec.defaults;
    }
    const size = this.#kernel.objectBytes(id).length;
    const now = this.#nowNs();
    let prot = rec.defaults;
    let until = Infinity;
    let pending: Promise<unknown>[] | undefined;
    for (const entry of st.grants.values()) {
      if (entry.grant.target !== id) continue;
      const v = this.#verdict(ctx, entry, id, now);
      if (v instanceof Promise) {
        (pending ??= []).push(v);
        continue;
      }
      if (v.prot === 0 || !coversWhole(v.gate, size)) continue;
      prot |= v.prot;
      if (v.until < until) until = v.until;
    }
    if (pending !== undefined) {
      return Promise.all(pending).then(() => this.#computeEffective(ctx, id, rec));
    }
    prot &= maskOf(st, id) & st.globalMask;
    if (rec.kernelObject) prot &= ~SecProt.Write;
    let m = this.#effective.get(ctx);
    if (m === undefined) this.#effective.set(ctx, m = new Map());
    m.set(id, { prot, gen, until });
    if (until !== Infinity) this.#armExpiry(until);
    return prot;
  }

  /** When the earliest cached expiry passes (wall-clock milliseconds), or Infinity. */
  #expiryAt = Infinity;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Withdraw live mappings when a grant they rest on expires: at `until`
   * (or the earliest such time) every cached protection goes stale and
   * `onNarrow` names the contexts whose cached answers expired, so the thread
   * manager re-checks their threads' mappings. The timer does not keep the
   * process alive.
   */
  #armExpiry(until: number): void {
    if (until >= this.#expiryAt) return;
    if (this.#expiryTimer !== undefined) clearTimeout(this.#expiryTimer);
    this.#expiryAt = until;
    const delay = Math.max(0, until - this.#kernel.hal.clock.wallclock());
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expiryAt = Infinity;
      if (this.#kernel.isShutdown) return;
      const now = this.#kernel.hal.clock.wallclock();
      const contexts: ObjID[] = [];
      for (const [ctx, m] of this.#effective) {
        let next = Infinity;
        let expired = false;
        for (const [id, e] of m) {
          if (e.until <= now) {
            expired = true;
            m.delete(id); // handled: recomputed at the next use
          } else if (e.until < next) next = e.until;
        }
        if (expired) contexts.push(ctx);
        if (next !== Infinity) this.#armExpiry(next);
      }
      if (contexts.length === 0) return;
      this.#changed();
      this.onNarrow?.({ contexts, keys: [] });
    }, Math.min(delay + 1, 2 ** 31 - 1));
    Deno.unrefTimer(this.#expiryTimer as unknown as number);
  }

  /**
   * Effective protections with reasons, for explicit contexts (or the
   * principal's): one reason per grant for `id` looked at, and per mask.
   *
   * @throws {TwzError} `ObjectNotFound`.
   */
  async report(who: Principal, id: ObjID, contexts?: readonly ObjID[]): Promise<AccessReport> {
    const rec = this.#record(id);
    const size = this.#kernel.objectBytes(id).length;
    const reasons: AccessReason[] = [];
    const strip = rec.kernelObject ? ~SecProt.Write : SecProt.All;
    reasons.push({
      context: 0n,
      index: -1,
      prot: rec.defaults,
      why: `defaults: ${formatSecProt(rec.defaults)}`,
    });
    if (rec.kernelObject) {
      reasons.push({
        context: 0n,
        index: -1,
        prot: 0,
        why: "a key or context object: never writable (the kernel writes it)",
      });
    }
    const ctxs = contexts ?? (who.admin ? undefined : who.contexts);
    if (ctxs === undefined) {
      const prot = (rec.defaults | SecProt.Read | SecProt.Delete) & strip;
      reasons.push({
        context: 0n,
        index: -1,
        prot,
        why: "the admin may read and delete every object",
      });
      return { id, defaults: rec.defaults, prot, reasons };
    }
    if (ctxs.length === 0) {
      reasons.push({ context: 0n, index: -1, prot: 0, why: "no contexts: the defaults apply" });
      return { id, defaults: rec.defaults, prot: rec.defaults & strip, reasons };
    }
    let total = 0;
    for (const ctx of ctxs) {
      const st = this.#ctxState(ctx);
      if (st === undefined) {
        reasons.push({ context: ctx, index: -1, prot: 0, why: "not a security context" });
        total |= rec.defaults;
        continue;
      }
      let prot = rec.defaults;
      const now = this.#nowNs();
      for (const [index, entry] of st.grants) {
        if (entry.grant.target !== id) continue;
        const v = await this.#verdict(ctx, entry, id, now);
        let gives = v.prot;
        let why = v.why;
        if (gives !== 0 && !coversWhole(v.gate, size)) {
          why =
            `gate [${v.gate.offset}, +${v.gate.length}) align ${v.gate.align} is not the whole object: gate calls only`;
          gives = 0;
        }
        prot |= gives;
        reasons.push({ context: ctx, index, prot: gives, why: `grant ${index}: ${why}` });
      }
      const mask = maskOf(st, id);
      if (mask !== SecProt.All) {
        reasons.push({
          context: ctx,
          index: -1,
          prot: mask,
          why: `mask: limits to ${formatSecProt(mask)}`,
        });
      }
      if (st.globalMask !== SecProt.All) {
        reasons.push({
          context: ctx,
          index: -1,
          prot: st.globalMask,
          why: `global mask: limits to ${formatSecProt(st.globalMask)}`,
        });
      }
      total |= prot & mask & st.globalMask;
    }
    return { id, defaults: rec.defaults, prot: total & strip, reasons };
  }

  /**
   * Whether `who` may call entry point `offset` of gate object `id`: its
   * default protections have Exec (any offset), or a valid grant with Exec
   * (not masked off) whose gate admits `offset` (inside `[gate.offset,
   * gate.offset + length)`, a multiple of `align`).
   *
   * @throws {TwzError} `ObjectNotFound`.
   */
  gateAllowed(who: Principal, id: ObjID, offset: number): boolean | Promise<boolean> {
    const rec = this.#record(id);
    if (rec.defaults & SecProt.Exec) return true;
    if (who.admin || who.contexts.length === 0) return false;
    const at = BigInt(offset);
    const now = this.#nowNs();
    let pending: Promise<unknown>[] | undefined;
    for (const ctx of who.contexts) {
      const st = this.#ctxState(ctx);
      if (st === undefined) continue;
      if (!(maskOf(st, id) & st.globalMask & SecProt.Exec)) continue;
      for (const entry of st.grants.values()) {
        if (entry.grant.target !== id) continue;
        const v = this.#verdict(ctx, entry, id, now);
        if (v instanceof Promise) {
          (pending ??= []).push(v);
          continue;
        }
        if ((v.prot & SecProt.Exec) && gateAdmits(v.gate, at)) return true;
      }
    }
    if (pending !== undefined) {
      return Promise.all(pending).then(() => this.gateAllowed(who, id, offset));
    }
    return false;
  }

  /**
   * Whether `who` may attach to context `ctx`: the admin may; a thread when
   * it is attached already or `allowed(who, ctx)` has Use.
   */
  mayAttach(who: Principal, ctx: ObjID): boolean | Promise<boolean> {
    if (who.admin || who.contexts.includes(ctx)) return true;
    if (this.#ctxState(ctx) === undefined) {
      throw new TwzError(ErrorCode.InvalidArgument, `${formatId(ctx)} is not a security context`);
    }
    const a = this.allowed(who, ctx);
    return typeof a === "number" ? (a & SecProt.Use) !== 0 : a.then((p) => (p & SecProt.Use) !== 0);
  }

  /**
   * What a thread's port awaits before a synchronous `ctxAdd` or `ctxRemove`
   * (whose rights may rest on protections not yet verified): resolves once
   * {@linkcode Security.ctxAdd} / {@linkcode Security.ctxRemove} can answer
   * without `Busy`.
   */
  async settleRights(
    who: Principal,
    call: "ctxAdd" | "ctxRemove",
    ctx: ObjID,
    arg: Uint8Array | number,
  ): Promise<void> {
    if (who.admin || who.contexts.includes(ctx)) return;
    let ids: ObjID[] = [];
    try {
      ids = call === "ctxAdd"
        ? this.#addRightsIds(decodeGrant(arg as Uint8Array))
        : this.#removeRightsIds(ctx, arg as number);
    } catch {
      return; // the call itself says what is wrong
    }
    for (const p of ids) await this.allowed(who, p);
  }

  // -------------------------------------------------------------------------
  // Verification of one grant.
  // -------------------------------------------------------------------------

  /**
   * What `entry` (a grant in context `ctx`) gives on `id`: structure, expiry
   * and narrowing checked now; the signatures from the verdict cache, or a
   * Promise that verifies them (and then answers the verdict).
   */
  #verdict(ctx: ObjID, entry: GrantEntry, id: ObjID, now: bigint): Verdict | Promise<Verdict> {
    const g = entry.grant;
    const none = (why: string): Verdict => ({ prot: 0, why, gate: g.gate, until: Infinity });
    if (g.target !== id) return none(`for another object (${formatId(g.target)})`);
    if (g.accessor !== ctx) return none(`for another context (${formatId(g.accessor)})`);
    // The chain, leaf first.
    const links: Grant[] = [];
    for (
      let l: Grant | undefined = g;
      l !== undefined;
      l = l.kind === "delegation" ? l.parent : undefined
    ) {
      links.push(l);
    }
    let until = Infinity;
    for (let i = 0; i < links.length; i++) {
      const l = links[i]!;
      const which = i === 0 ? "" : ` (link ${i})`;
      if (l.target !== id) return none(`names another object${which}`);
      if (l.flags & CapFlag.Blake3) return none(`uses Blake3 hashes, not supported${which}`);
      if (!(l.flags & CapFlag.Sha256)) return none(`does not use SHA-256${which}`);
      if (l.expiry !== 0n) {
        if (now >= l.expiry) return none(`expired ${isoOf(l.expiry)}${which}`);
        const ms = Number((l.expiry + NS_PER_MS - 1n) / NS_PER_MS);
        if (ms < until) until = ms;
      }
      if (l.gate.align < 1n) return none(`gate alignment 0${which}`);
      if (l.kind === "delegation") {
        const p = l.parent;
        if (l.provider !== p.accessor) {
          return none(`delegated by a context that does not hold its parent${which}`);
        }
        if (!(p.flags & CapFlag.Delegate)) return none(`its parent may not be delegated${which}`);
        if (l.prot & ~p.prot) {
          return none(
            `widens ${formatSecProt(p.prot)} to ${formatSecProt(l.prot)}${which}`,
          );
        }
        if (p.expiry !== 0n && (l.expiry === 0n || l.expiry > p.expiry)) {
          return none(`outlives its parent (expiry ${isoOf(p.expiry)})${which}`);
        }
        if (!gateWithin(l.gate, p.gate)) return none(`enlarges its parent's gate${which}`);
      }
    }
    // The signers: the target's key signs the capability, each provider's key its delegation.
    const signers: KeyState[] = [];
    for (let i = 0; i < links.length; i++) {
      const l = links[i]!;
      let kuid: ObjID;
      if (l.kind === "capability") {
        kuid = this.#record(id).keyId;
        if (kuid === 0n) return none("the object has no key: capabilities cannot name it");
      } else {
        const pst = this.#ctxState(l.provider);
        if (pst === undefined) return none(`delegated by ${formatId(l.provider)}, not a context`);
        kuid = pst.key;
        if (kuid === 0n) {
          return none(`delegated by context ${formatId(l.provider)}, which has no key`);
        }
      }
      const key = this.#keyState(kuid);
      if (key === undefined) {
        return none(`signed by the wrong key (${formatId(kuid)} is not a key)`);
      }
      if (schemeOf(l.flags) !== key.scheme) {
        return none(`signed by the wrong key (${schemeOf(l.flags)}, the key is ${key.scheme})`);
      }
      signers.push(key);
    }
    const ok = (): Verdict => ({
      prot: g.prot,
      why: `gives ${formatSecProt(g.prot)}`,
      gate: g.gate,
      until,
    });
    const bad = () =>
      none("signed by the wrong key, forged or tampered (the signature does not verify)");
    const cacheKey = chainKey(entry.bytes, signers);
    const cached = this.#verdicts.get(cacheKey);
    if (cached === true) return ok();
    if (cached === false) return bad();
    const p = cached ?? this.#verifyChain(cacheKey, links, signers);
    return p.then((good) => (good ? ok() : bad()));
  }

  #verifyChain(cacheKey: string, links: Grant[], signers: KeyState[]): Promise<boolean> {
    const p = (async () => {
      for (let i = 0; i < links.length; i++) {
        const l = links[i]!;
        const key = await this.#cryptoKey(signers[i]!);
        let good = false;
        try {
          good = await verifySignature(signers[i]!.scheme, key, signedMessage(l), l.signature);
        } catch {
          good = false;
        }
        if (!good) return false;
      }
      return true;
    })();
    this.#verdicts.set(cacheKey, p);
    p.then(
      (v) => {
        if (this.#verdicts.get(cacheKey) === p) this.#verdicts.set(cacheKey, v);
      },
      () => this.#verdicts.delete(cacheKey),
    );
    return p;
  }

  #cryptoKey(k: KeyState): Promise<CryptoKey> {
    const name = `${k.kuid}/${k.generation}`;
    let p = this.#cryptoKeys.get(name);
    if (p === undefined) {
      p = importPublicKey(k.scheme, k.publicKey);
      this.#cryptoKeys.set(name, p);
      p.catch(() => this.#cryptoKeys.delete(name));
    }
    return p;
  }

  // -------------------------------------------------------------------------
  // Objects: kinds, defaults, keys, contexts (read from their bytes, cached).
  // -------------------------------------------------------------------------

  /** Whether `id` is a key object (what a keyed create names as its `kuid`). */
  isKeyObject(id: ObjID): boolean {
    return this.#kind(id) === "key";
  }

  /** Whether `id` is a key, private-key or context object (mapped read-only at most). */
  isKernelObject(id: ObjID): boolean {
    return this.#kind(id) !== "none";
  }

  #kind(id: ObjID): Kind {
    let k = this.#kinds.get(id);
    if (k === undefined) {
      k = this.#detect(id);
      // An absent object is not remembered: it may be created later.
      if (k !== "none" || this.#kernel.exists(id)) this.#kinds.set(id, k);
    }
    return k;
  }

  #detect(id: ObjID): Kind {
    if (!this.#kernel.exists(id)) return "none";
    const st = this.#kernel.stat(id);
    if (st.prot & Prot.Write) return "none"; // a kernel-written object is never writable by default
    const bytes = this.#kernel.objectBytes(id);
    if (bytes.length >= SEC_BASE + 8) {
      const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const magic = v.getUint32(SEC_BASE, true);
      const current = v.getUint16(SEC_BASE + 4, true) === SEC_VERSION;
      if (magic === KEY_MAGIC && current && st.keyId === 0n) return "key";
      if (magic === CTX_MAGIC && current) return "ctx";
    }
    if (st.keyId !== 0n && st.prot === 0 && this.#kind(st.keyId) === "key") {
      if (this.#keyState(st.keyId)?.privateId === id) return "private";
    }
    return "none";
  }

  #record(id: ObjID): ObjRecord {
    let r = this.#records.get(id);
    if (r === undefined) {
      const st = this.#kernel.stat(id); // throws ObjectNotFound
      r = { defaults: st.prot, keyId: st.keyId, kernelObject: this.isKernelObject(id) };
      this.#records.set(id, r);
    }
    return r;
  }

  #keyIdOf(id: ObjID): ObjID {
    return this.#kernel.stat(id).keyId;
  }

  #keyState(kuid: ObjID): KeyState | undefined {
    let k = this.#keys.get(kuid);
    if (k !== undefined) return k;
    if (this.#kind(kuid) !== "key") return undefined;
    k = this.#readKey(kuid);
    if (k !== undefined) this.#keys.set(kuid, k);
    return k;
  }

  #readKey(kuid: ObjID): KeyState | undefined {
    const bytes = this.#kernel.objectBytes(kuid);
    if (bytes.length < SEC_BASE + KEY_SLOTS + 2 * KEY_SLOT_BYTES) return undefined;
    const v = new DataView(bytes.buffer, bytes.byteOffset + SEC_BASE, bytes.byteLength - SEC_BASE);
    const generation = v.getUint32(KEY_GEN, true);
    const s = KEY_SLOTS + (generation & 1) * KEY_SLOT_BYTES;
    const scheme = SCHEMES[v.getUint8(s + KS_SCHEME)];
    const pubLen = v.getUint16(s + KS_PUBLEN, true);
    if (scheme === undefined || pubLen > KEY_PUB_MAX) return undefined;
    const nonce = readU128(v, s + KS_NONCE);
    const privLen = v.getUint16(s + KS_PRIVLEN, true);
    return {
      kuid,
      scheme,
      publicKey: bytes.slice(SEC_BASE + s + KS_PUB, SEC_BASE + s + KS_PUB + pubLen),
      nonce,
      privateId: nonce === 0n ? 0n : this.#kernel.keyedId(nonce, kuid, 0),
      privLen,
      generation,
    };
  }

  #ctxState(ctx: ObjID): CtxState | undefined {
    let c = this.#ctxs.get(ctx);
    if (c !== undefined) return c;
    if (this.#kind(ctx) !== "ctx") return undefined;
    c = this.#readCtx(ctx);
    this.#ctxs.set(ctx, c);
    return c;
  }

  #readCtx(ctx: ObjID): CtxState {
    const bytes = this.#kernel.objectBytes(ctx);
    const v = new DataView(bytes.buffer, bytes.byteOffset + SEC_BASE, bytes.byteLength - SEC_BASE);
    const st: CtxState = {
      id: ctx,
      key: readId(v, CX_KEY),
      globalMask: v.getUint32(CX_GMASK, true) & SecProt.All,
      generation: v.getUint32(CX_GEN, true),
      grantBits: v.getUint32(CX_GRANT_BITS, true),
      maskBits: v.getUint32(CX_MASK_BITS, true) & ((1 << CTX_MASKS) - 1),
      grants: new Map(),
      masks: new Map(),
    };
    for (let i = 0; i < CTX_MASKS; i++) {
      if (!(st.maskBits & (1 << i))) continue;
      const at = CX_MASKS + i * MASK_BYTES;
      st.masks.set(i, { target: readId(v, at), prot: v.getUint32(at + 16, true) & SecProt.All });
    }
    for (let i = 0; i < CTX_GRANTS; i++) {
      if (!(st.grantBits & (1 << i))) continue;
      const at = CX_GRANTS + i * GRANT_SLOT_BYTES;
      const len = v.getUint32(at, true);
      if (len > GRANT_MAX_BYTES || at + 8 + len > v.byteLength) continue;
      const b = bytes.slice(SEC_BASE + at + 8, SEC_BASE + at + 8 + len);
      try {
        st.grants.set(i, { bytes: b, grant: decodeGrant(b) });
      } catch {
        // An undecodable slot grants nothing (the kernel only ever stores decodable grants).
      }
    }
    return st;
  }

  #requireCtx(ctx: ObjID): CtxState {
    const st = this.#ctxState(ctx);
    if (st === undefined) {
      throw new TwzError(ErrorCode.InvalidArgument, `${formatId(ctx)} is not a security context`);
    }
    return st;
  }

  #requireKey(kuid: ObjID): KeyState {
    const k = this.#keyState(kuid);
    if (k === undefined) {
      throw new TwzError(ErrorCode.InvalidArgument, `${formatId(kuid)} is not a key object`);
    }
    return k;
  }

  // -------------------------------------------------------------------------
  // Keys.
  // -------------------------------------------------------------------------

  /**
   * Create a key: its key object (default prot Read, kuid 0) and, when there
   * is a private key, its private object (kuid = the key object, default
   * prot none, PKCS#8 at its base). A thread with contexts gets a Read
   * capability on the private object for its first context, signed by the
   * new key.
   *
   * @throws {TwzError} `InvalidArgument` (bad spec), `ReadOnly`, `OutOfSpace`.
   */
  async keyCreate(who: Principal, spec: KeySpec = {}): Promise<KeyIds> {
    const pair = await this.#pairOf(spec, spec.scheme ?? "ecdsa-p256");
    const nonce = pair.privateKey ? this.#nonce() : 0n;
    const content = new Uint8Array(KEY_OBJECT_SIZE);
    const v = new DataView(content.buffer, SEC_BASE);
    v.setUint32(0, KEY_MAGIC, true);
    v.setUint16(4, SEC_VERSION, true);
    v.setUint32(KEY_GEN, 0, true);
    writeKeySlot(v, KEY_SLOTS, pair.scheme, pair.publicKey, pair.privateKey?.length ?? 0, 0, nonce);
    const kuid = this.#kernel.createWith(content, { prot: Prot.Read });
    let privateId = 0n;
    if (pair.privateKey) privateId = this.#createPrivate(kuid, nonce, pair.privateKey);
    this.#kinds.delete(kuid);
    this.#keys.delete(kuid);
    if (!who.admin && who.contexts.length > 0 && privateId !== 0n) {
      await this.#grantPrivate(who.contexts[0]!, privateId, pair.scheme, pair.privateKey!);
    }
    return { kuid, privateId };
  }

  /**
   * Replace a key's pair (generated unless given): grants signed by the old
   * pair stop granting at the next check. The admin may, or a caller whose
   * protections on the key's private object include Read.
   *
   * @throws {TwzError} `InvalidArgument`, `AccessDenied`, `ReadOnly`.
   */
  async keyRotate(who: Principal, kuid: ObjID, spec: KeySpec = {}): Promise<void> {
    const old = this.#requireKey(kuid);
    if (!who.admin) {
      const p = old.privateId === 0n ? 0 : await this.allowed(who, old.privateId);
      if (!(p & SecProt.Read)) {
        throw new TwzError(
          ErrorCode.AccessDenied,
          `cannot rotate key ${formatId(kuid)}: its private object may not be read`,
        );
      }
    }
    const pair = await this.#pairOf(spec, spec.scheme ?? old.scheme);
    // New private object first, then the other slot, then publish the generation.
    const nonce = pair.privateKey ? this.#nonce() : 0n;
    const privateId = pair.privateKey ? this.#createPrivate(kuid, nonce, pair.privateKey) : 0n;
    this.#kinds.delete(privateId); // a private object once published, not before
    this.#records.delete(privateId);
    const generation = old.generation + 1;
    const slot = new Uint8Array(KEY_SLOT_BYTES);
    writeKeySlot(
      new DataView(slot.buffer),
      0,
      pair.scheme,
      pair.publicKey,
      pair.privateKey?.length ?? 0,
      generation,
      nonce,
    );
    this.#kernel.kernelWrite(kuid, SEC_BASE + KEY_SLOTS + (generation & 1) * KEY_SLOT_BYTES, slot);
    this.#kernel.kernelStore32(kuid, SEC_BASE + KEY_GEN, generation);
    this.#keys.delete(kuid);
    if (old.privateId !== 0n && this.#kernel.exists(old.privateId)) {
      this.#kernel.delete(old.privateId); // forget() narrows for it
    }
    this.#changed();
    this.onNarrow?.({ contexts: [], keys: [kuid] });
    if (!who.admin && who.contexts.length > 0 && privateId !== 0n) {
      await this.#grantPrivate(who.contexts[0]!, privateId, pair.scheme, pair.privateKey!);
    }
  }

  /**
   * A key object's contents.
   *
   * @throws {TwzError} `InvalidArgument` (not a key object).
   */
  keyInfo(kuid: ObjID): KeyInfo {
    const k = this.#requireKey(kuid);
    return {
      kuid,
      privateId: k.privateId,
      scheme: k.scheme,
      publicKey: k.publicKey.slice(),
      generation: k.generation,
    };
  }

  async #pairOf(
    spec: KeySpec,
    scheme: KeyScheme,
  ): Promise<{ scheme: KeyScheme; publicKey: Uint8Array; privateKey?: Uint8Array | undefined }> {
    if (scheme !== "ecdsa-p256" && scheme !== "ed25519") {
      throw new TwzError(ErrorCode.InvalidArgument, `unknown key scheme "${scheme}"`);
    }
    this.#kernel.requireWritable("create a key");
    if (spec.publicKey === undefined) {
      if (spec.privateKey !== undefined) {
        throw new TwzError(ErrorCode.InvalidArgument, "a private key needs its public key");
      }
      const p = await generateKeyPair(scheme);
      return { scheme, publicKey: p.publicKey, privateKey: p.privateKey };
    }
    if (!(spec.publicKey instanceof Uint8Array) || spec.publicKey.length > KEY_PUB_MAX) {
      throw new TwzError(ErrorCode.InvalidArgument, "a public key is raw bytes (at most 96)");
    }
    try {
      await importPublicKey(scheme, spec.publicKey);
    } catch (error) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `the public key is not a raw ${scheme} key: ${(error as Error).message}`,
      );
    }
    if (
      spec.privateKey !== undefined &&
      (!(spec.privateKey instanceof Uint8Array) || spec.privateKey.length > 4096)
    ) {
      throw new TwzError(ErrorCode.InvalidArgument, "a private key is PKCS#8 bytes (at most 4096)");
    }
    return { scheme, publicKey: spec.publicKey.slice(), privateKey: spec.privateKey?.slice() };
  }

  #nonce(): bigint {
    const b = new Uint8Array(16);
    this.#kernel.hal.entropy.fill(b);
    let n = 0n;
    for (let i = 15; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
    return n || 1n;
  }

  /** The private object of key `kuid`: PKCS#8 at its base, copied from a scratch object. */
  #createPrivate(kuid: ObjID, nonce: bigint, privateKey: Uint8Array): ObjID {
    const content = new Uint8Array(SEC_BASE + privateKey.length);
    content.set(privateKey, SEC_BASE);
    return this.#kernel.createWith(content, { prot: 0, keyId: kuid, nonce, ties: [kuid] });
  }

  /** Store a Read capability on `privateId` for `ctx`, signed by the key itself. */
  async #grantPrivate(
    ctx: ObjID,
    privateId: ObjID,
    scheme: KeyScheme,
    privateKey: Uint8Array,
  ): Promise<void> {
    if (this.#ctxState(ctx) === undefined) return;
    const cap = await signCapability({
      target: privateId,
      accessor: ctx,
      prot: SecProt.Read,
      flags: CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0),
      expiry: 0n,
      gate: { ...WHOLE_OBJECT },
    }, privateKey);
    this.#store(this.#requireCtx(ctx), encodeGrant(cap));
  }

  // -------------------------------------------------------------------------
  // Contexts.
  // -------------------------------------------------------------------------

  /**
   * Create a security context (default prot Read; kuid = `spec.key` when
   * given, so capabilities with Use on it can be signed with that key).
   *
   * @throws {TwzError} `InvalidArgument` (`key` is not a key object), `ReadOnly`.
   */
  ctxCreate(_who: Principal, spec: { key?: ObjID | undefined } = {}): ObjID {
    const key = spec.key ?? 0n;
    if (key !== 0n) this.#requireKey(key);
    const content = new Uint8Array(CTX_OBJECT_SIZE);
    const v = new DataView(content.buffer, SEC_BASE);
    v.setUint32(0, CTX_MAGIC, true);
    v.setUint16(4, SEC_VERSION, true);
    v.setUint32(CX_GMASK, SecProt.All, true);
    writeId(v, CX_KEY, key);
    return this.#kernel.createWith(content, { prot: Prot.Read, keyId: key });
  }

  /**
   * A context's contents.
   *
   * @throws {TwzError} `InvalidArgument` (not a context).
   */
  ctxInfo(ctx: ObjID): ContextInfo {
    const st = this.#requireCtx(ctx);
    return {
      id: ctx,
      key: st.key,
      grants: [...st.grants].sort((a, b) => a[0] - b[0]).map(([index, e]) => ({
        index,
        grant: e.grant,
      })),
      masks: [...st.masks.values()].map((m) => ({ target: m.target, prot: m.prot })),
      globalMask: st.globalMask,
      generation: st.generation,
    };
  }

  /**
   * Add an encoded grant to a context; returns its index. The admin may, a
   * thread attached to `ctx`, or a caller with Read on the private object of
   * the key that signed the grant's root capability (or its leaf).
   *
   * @throws {TwzError} `InvalidArgument`, `AccessDenied`, `OutOfSpace` (full),
   * `Busy` (rights not verified yet: await `settleRights`).
   */
  ctxAdd(who: Principal, ctx: ObjID, grant: Uint8Array): number {
    const st = this.#requireCtx(ctx);
    if (!(grant instanceof Uint8Array) || grant.length > GRANT_MAX_BYTES) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `a grant is at most ${GRANT_MAX_BYTES} encoded bytes`,
      );
    }
    const g = decodeGrant(grant);
    if (!who.admin && !who.contexts.includes(ctx)) {
      const ids = this.#addRightsIds(g);
      if (!ids.some((p) => this.#mayRead(who, p))) {
        throw new TwzError(
          ErrorCode.AccessDenied,
          `cannot add to context ${
            formatId(ctx)
          }: not attached to it, and the grant's signing key is not yours`,
        );
      }
    }
    return this.#store(st, grant.slice());
  }

  /**
   * Remove grant `index` from a context (takes effect at the next check).
   * The admin may, a thread attached to `ctx`, or a caller with Read on the
   * private object of the grant's target's key.
   *
   * @throws {TwzError} `InvalidArgument` (no such grant), `AccessDenied`, `Busy`.
   */
  ctxRemove(who: Principal, ctx: ObjID, index: number): void {
    const st = this.#requireCtx(ctx);
    if (!st.grants.has(index) && !(Number.isInteger(index) && st.grantBits & (1 << index))) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `context ${formatId(ctx)} has no grant ${index}`,
      );
    }
    if (!who.admin && !who.contexts.includes(ctx)) {
      const ids = this.#removeRightsIds(ctx, index);
      if (!ids.some((p) => this.#mayRead(who, p))) {
        throw new TwzError(
          ErrorCode.AccessDenied,
          `cannot remove grant ${index} of context ${
            formatId(ctx)
          }: not attached to it, and the target's key is not yours`,
        );
      }
    }
    this.#kernel.requireWritable("change a security context");
    const bits = st.grantBits & ~(1 << index);
    this.#kernel.kernelStore32(ctx, SEC_BASE + CX_GRANT_BITS, bits >>> 0);
    st.grantBits = bits;
    st.grants.delete(index);
    this.#bumpCtx(st);
    this.#changed();
    this.onNarrow?.({ contexts: [ctx], keys: [] });
  }

  /**
   * Set (or with `null` remove) the context's mask for `target` (`0n`: its
   * global mask). The admin may, or a thread attached to `ctx`.
   *
   * @throws {TwzError} `InvalidArgument` (bad prot, too many masks), `AccessDenied`.
   */
  ctxMask(who: Principal, ctx: ObjID, target: ObjID, prot: number | null): void {
    const st = this.#requireCtx(ctx);
    if (!who.admin && !who.contexts.includes(ctx)) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `cannot set a mask of context ${formatId(ctx)}: not attached to it`,
      );
    }
    if (prot !== null && (!Number.isInteger(prot) || prot < 0 || prot > SecProt.All)) {
      throw new TwzError(ErrorCode.InvalidArgument, `mask ${prot} is not rwxud bits`);
    }
    if (target !== 0n && !isValidId(target)) {
      throw new TwzError(ErrorCode.InvalidArgument, `mask target ${target} is not an object ID`);
    }
    this.#kernel.requireWritable("change a security context");
    if (target === 0n) {
      const p = prot ?? SecProt.All;
      this.#kernel.kernelStore32(ctx, SEC_BASE + CX_GMASK, p);
      st.globalMask = p;
    } else {
      let slot = -1;
      for (const [i, m] of st.masks) if (m.target === target) slot = i;
      if (prot === null) {
        if (slot >= 0) {
          const bits = st.maskBits & ~(1 << slot);
          this.#kernel.kernelStore32(ctx, SEC_BASE + CX_MASK_BITS, bits);
          st.maskBits = bits;
          st.masks.delete(slot);
        }
      } else if (slot >= 0) {
        this.#kernel.kernelStore32(ctx, SEC_BASE + CX_MASKS + slot * MASK_BYTES + 16, prot);
        st.masks.get(slot)!.prot = prot;
      } else {
        for (let i = 0; i < CTX_MASKS && slot < 0; i++) if (!(st.maskBits & (1 << i))) slot = i;
        if (slot < 0) {
          throw new TwzError(
            ErrorCode.InvalidArgument,
            `context ${formatId(ctx)} holds ${CTX_MASKS} masks already: remove one first`,
          );
        }
        const entry = new Uint8Array(MASK_BYTES);
        const ev = new DataView(entry.buffer);
        writeId(ev, 0, target);
        ev.setUint32(16, prot, true);
        this.#kernel.kernelWrite(ctx, SEC_BASE + CX_MASKS + slot * MASK_BYTES, entry);
        const bits = st.maskBits | (1 << slot);
        this.#kernel.kernelStore32(ctx, SEC_BASE + CX_MASK_BITS, bits);
        st.maskBits = bits;
        st.masks.set(slot, { target, prot });
      }
    }
    this.#bumpCtx(st);
    this.#changed();
    this.onNarrow?.({ contexts: [ctx], keys: [] });
  }

  /** Write `grant` into a free slot of `st`, persist it, then publish it in the bitmap. */
  #store(st: CtxState, grant: Uint8Array): number {
    this.#kernel.requireWritable("change a security context");
    let slot = -1;
    for (let i = 0; i < CTX_GRANTS && slot < 0; i++) if (!(st.grantBits & (1 << i))) slot = i;
    if (slot < 0) {
      throw new TwzError(
        ErrorCode.OutOfSpace,
        `context ${formatId(st.id)} holds ${CTX_GRANTS} grants already: remove one first`,
      );
    }
    const entry = new Uint8Array(8 + grant.length);
    new DataView(entry.buffer).setUint32(0, grant.length, true);
    entry.set(grant, 8);
    this.#kernel.kernelWrite(st.id, SEC_BASE + CX_GRANTS + slot * GRANT_SLOT_BYTES, entry);
    const bits = (st.grantBits | (1 << slot)) >>> 0;
    this.#kernel.kernelStore32(st.id, SEC_BASE + CX_GRANT_BITS, bits);
    st.grantBits = bits;
    st.grants.set(slot, { bytes: grant, grant: decodeGrant(grant) });
    this.#bumpCtx(st);
    this.#changed();
    return slot;
  }

  #bumpCtx(st: CtxState): void {
    st.generation = (st.generation + 1) >>> 0;
    this.#kernel.kernelStore32(st.id, SEC_BASE + CX_GEN, st.generation);
  }

  /** The private objects whose readers may add `g` to a context (root signer's, leaf signer's). */
  #addRightsIds(g: Grant): ObjID[] {
    const out: ObjID[] = [];
    let root: Grant = g;
    while (root.kind === "delegation") root = root.parent;
    if (this.#kernel.exists(root.target)) {
      const k = this.#keyState(this.#keyIdOf(root.target));
      if (k !== undefined && k.privateId !== 0n) out.push(k.privateId);
    }
    if (g.kind === "delegation") {
      const pst = this.#ctxState(g.provider);
      const k = pst && pst.key !== 0n ? this.#keyState(pst.key) : undefined;
      if (k !== undefined && k.privateId !== 0n) out.push(k.privateId);
    }
    return out;
  }

  /** The private object whose readers may remove grant `index` of `ctx`. */
  #removeRightsIds(ctx: ObjID, index: number): ObjID[] {
    const e = this.#ctxState(ctx)?.grants.get(index);
    if (e === undefined || !this.#kernel.exists(e.grant.target)) return [];
    const k = this.#keyState(this.#keyIdOf(e.grant.target));
    return k !== undefined && k.privateId !== 0n ? [k.privateId] : [];
  }

  /** Whether `who` may read `id` now; `Busy` when that needs a verification first. */
  #mayRead(who: Principal, id: ObjID): boolean {
    if (!this.#kernel.exists(id)) return false;
    const a = this.allowed(who, id);
    if (typeof a !== "number") {
      a.catch(() => {}); // the verification goes on; the caller retries after settleRights
      throw new TwzError(
        ErrorCode.Busy,
        `the rights on ${formatId(id)} are being verified: await port.access(${
          formatId(id)
        }) first`,
      );
    }
    return (a & SecProt.Read) !== 0;
  }

  // -------------------------------------------------------------------------
  // Changes made elsewhere (the kernel calls these).
  // -------------------------------------------------------------------------

  /** Every cached protection is stale from now on. */
  #changed(): void {
    this.#gen++;
  }

  /**
   * @internal The kernel deleted `ids`: forget them; when keys or contexts
   * went, bump the generation and call `onNarrow`.
   */
  forget(ids: readonly ObjID[]): void {
    const contexts: ObjID[] = [], keys: ObjID[] = [];
    for (const id of ids) {
      const k = this.#kinds.get(id);
      if (k === "ctx") contexts.push(id);
      else if (k === "key" || k === "private") keys.push(id);
      this.#kinds.delete(id);
      if (this.#records.delete(id)) { for (const m of this.#effective.values()) m.delete(id); }
      this.#keys.delete(id);
      this.#ctxs.delete(id);
      this.#effective.delete(id);
    }
    if (contexts.length + keys.length > 0) {
      this.#changed();
      this.onNarrow?.({ contexts, keys });
    }
  }

  /** @internal An object changed size: protections resting on whole-object gates are recomputed. */
  resized(_id: ObjID): void {
    this.#changed();
  }

  /**
   * @internal A thread detached from `ctx` (the thread manager calls this):
   * bumps the generation and calls `onNarrow`.
   */
  detached(ctx: ObjID): void {
    this.#changed();
    this.onNarrow?.({ contexts: [ctx], keys: [] });
  }

  #nowNs(): bigint {
    return BigInt(Math.floor(this.#kernel.hal.clock.wallclock())) * NS_PER_MS;
  }
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

function writeKeySlot(
  v: DataView,
  at: number,
  scheme: KeyScheme,
  publicKey: Uint8Array,
  privLen: number,
  generation: number,
  nonce: bigint,
): void {
  v.setUint8(at + KS_SCHEME, SCHEME_CODE[scheme]);
  v.setUint16(at + KS_PUBLEN, publicKey.length, true);
  v.setUint16(at + KS_PRIVLEN, privLen, true);
  v.setUint32(at + KS_GEN, generation, true);
  v.setBigUint64(at + KS_NONCE, nonce & U64_MAX, true);
  v.setBigUint64(at + KS_NONCE + 8, nonce >> 64n, true);
  new Uint8Array(v.buffer, v.byteOffset + at + KS_PUB, publicKey.length).set(publicKey);
}

function readU128(v: DataView, at: number): bigint {
  return (v.getBigUint64(at + 8, true) << 64n) | v.getBigUint64(at, true);
}

function maskOf(st: CtxState, id: ObjID): number {
  if (st.maskBits === 0) return SecProt.All;
  for (const m of st.masks.values()) if (m.target === id) return m.prot;
  return SecProt.All;
}

/** Whether a gate covers a whole object of `size` bytes (what mapping needs). */
function coversWhole(g: Gate, size: number): boolean {
  return g.offset === 0n && g.align === 1n && g.length >= BigInt(size);
}

/** Whether `inner` lies within `outer`, with an alignment that is a multiple of outer's. */
function gateWithin(inner: Gate, outer: Gate): boolean {
  return inner.offset >= outer.offset &&
    inner.offset + inner.length <= outer.offset + outer.length &&
    inner.align >= 1n && outer.align >= 1n && inner.align % outer.align === 0n;
}

function gateAdmits(g: Gate, at: bigint): boolean {
  return at >= g.offset && at < g.offset + g.length && g.align >= 1n && at % g.align === 0n;
}

function chainKey(bytes: Uint8Array, signers: KeyState[]): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  for (const k of signers) s += `|${k.kuid}/${k.generation}`;
  return s;
}

function isoOf(ns: bigint): string {
  const ms = Number(ns / NS_PER_MS);
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `${ns} ns` : d.toISOString();
}
