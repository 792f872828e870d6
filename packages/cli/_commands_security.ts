/**
 * The shell's security commands — `key`, `ctx`, `grant`, `delegate`,
 * `revoke` and `access` — as entries of the command table (`_commands.ts`
 * lists them with the others). The rules they drive (capabilities,
 * delegations, masks, revocation) are in docs/SECURITY.md; the commands call
 * libtwz's `@twz/libtwz/security` and the kernel port, and only parse,
 * name and print here.
 *
 * Names: `key new NAME` binds the key object at `/sec/keys/NAME`, `ctx new
 * NAME` the context at `/sec/ctx/NAME`. A KEY or CTX argument is such a bare
 * name, a path (`/sec/ctx/reader`, anything with a `/`) or an object ID
 * (`secObject` in `_run.ts`).
 *
 * The shell is the admin session: it may read every private key object, so
 * it can sign a grant for any keyed object, and attach any thread to any
 * context.
 *
 * @example A read grant, checked, then revoked
 * ```text
 * > key new owner
 * > new --key owner --prot none --name /secret
 * > ctx new reader
 * > grant /secret reader r
 * grant 0: r---- on 5f… for context 9a…
 * > access /secret --context reader
 * r----  5f… (/secret)  defaults -----
 *   defaults: -----
 *   context 9a…: grant 0: gives r----
 * > revoke reader 0
 * revoked grant 0 of 9a…
 * ```
 *
 * @module
 */
import {
  CapFlag,
  formatId,
  formatSecProt,
  type Gate,
  type Grant,
  type ObjID,
  parseSecProt,
  ThreadState,
  WHOLE_OBJECT,
} from "@twz/kernel/abi";
import type { Twz } from "@twz/libtwz";
import {
  access,
  createContext,
  createKey,
  delegate,
  grant,
  revoke,
  rotateKey,
} from "@twz/libtwz/security";
import { UsageError } from "./board.ts";
import { count, listOf, type Parsed, quoted } from "./_args.ts";
import type { Command, ShellContext } from "./_commands.ts";
import { SEC_DIRS, secObject, secPath } from "./_run.ts";
import { attachThreads } from "./run.ts";

/** Signing schemes `key new --scheme` takes (the first is the default). */
const SCHEMES = ["ecdsa-p256", "ed25519"] as const;

/** Units of an `--expires` duration, in milliseconds. */
const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The largest u64: what a gate's fields hold. */
const U64_MAX = (1n << 64n) - 1n;

/**
 * Protections as `grant`, `delegate` and `ctx mask` take them: letters of
 * `rwxud` (`r`, `rw`, `r--u-`), or `none` / `-` for nothing.
 *
 * @param text The word.
 * @param what Its name for the error (`PROT`).
 * @returns The `SecProt` bits.
 * @throws {UsageError} Anything else.
 */
export function parseProtArg(text: string, what: string): number {
  if (text === "none") return 0;
  try {
    return parseSecProt(text);
  } catch (error) {
    if (error instanceof TypeError) {
      throw new UsageError(
        `${what}: ${quoted(text)} is not a protection (letters of rwxud like "r" or "rw", or none)`,
      );
    }
    throw error;
  }
}

/**
 * An `--expires` value: a duration from now (`30s`, `5m`, `2h`, `1d`) or an
 * ISO time (`2026-12-31`, `2026-12-31T12:00:00Z`), which must be later than
 * `now`.
 *
 * @param text The value.
 * @param now Milliseconds since the Unix epoch (the kernel's clock).
 * @returns The expiry, milliseconds since the Unix epoch.
 * @throws {UsageError} A malformed value, a zero duration, a time not in
 *   the future.
 */
export function parseExpiry(text: string, now: number): number {
  const d = /^(\d+)([smhd])$/.exec(text);
  if (d !== null) {
    const n = Number(d[1]);
    if (n < 1) throw new UsageError(`--expires: ${quoted(text)} is too short (at least 1s)`);
    const at = now + n * UNITS[d[2]!]!;
    if (!Number.isSafeInteger(at) || at > 8.64e15) {
      throw new UsageError(`--expires: ${quoted(text)} is too far away`);
    }
    return at;
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const at = Date.parse(text);
    if (Number.isNaN(at)) throw new UsageError(`--expires: ${quoted(text)} is not a valid time`);
    if (at <= now) throw new UsageError(`--expires: ${text} is in the past`);
    return at;
  }
  throw new UsageError(
    `--expires: ${
      quoted(text)
    } is not a duration (30s, 5m, 2h, 1d) or an ISO time (2026-12-31T12:00Z)`,
  );
}

/**
 * A `--gate OFFSET:LENGTH:ALIGN` value (decimal or `0x` hex each): the
 * range a grant covers and the alignment of entry points in it.
 *
 * @throws {UsageError} Not three numbers, a field past 2^64 − 1, a zero
 *   length or alignment.
 */
export function parseGate(text: string): Gate {
  const num = "(0x[0-9a-fA-F]+|\\d+)";
  const m = new RegExp(`^${num}:${num}:${num}$`).exec(text);
  if (m === null) {
    throw new UsageError(`--gate: ${quoted(text)} is not OFFSET:LENGTH:ALIGN (like 0:4096:8)`);
  }
  const [offset, length, align] = [m[1]!, m[2]!, m[3]!].map((f) => BigInt(f)) as [
    bigint,
    bigint,
    bigint,
  ];
  if (offset > U64_MAX || length > U64_MAX || align > U64_MAX) {
    throw new UsageError(`--gate: ${quoted(text)} has a field past 2^64 - 1`);
  }
  if (length === 0n) throw new UsageError(`--gate: ${quoted(text)}: LENGTH is 0`);
  if (align === 0n) throw new UsageError(`--gate: ${quoted(text)}: ALIGN is 0 (1: any offset)`);
  return { offset, length, align };
}

/** A gate as `ctx show` prints it: `whole`, or `OFFSET:LENGTH:ALIGN`. */
export function formatGate(g: Gate): string {
  if (
    g.offset === WHOLE_OBJECT.offset && g.length === WHOLE_OBJECT.length &&
    g.align === WHOLE_OBJECT.align
  ) {
    return "whole";
  }
  return `${g.offset}:${g.length}:${g.align}`;
}

/** An expiry (ns since the Unix epoch, 0n: never) as `ctx show` prints it. */
export function formatExpiry(ns: bigint): string {
  if (ns === 0n) return "never";
  const ms = Number(ns / 1_000_000n);
  return ms > 8.64e15 ? `${ns}ns` : new Date(ms).toISOString();
}

/** The options `grant` and `delegate` share. */
const GRANT_OPTIONS = [
  {
    name: "--expires",
    value: "WHEN",
    summary: "a duration from now (30s, 5m, 2h, 1d) or an ISO time (default: never)",
  },
  {
    name: "--gate",
    value: "OFFSET:LENGTH:ALIGN",
    summary: "only this range, entry points aligned to ALIGN (default: the whole object)",
  },
  { name: "--delegable", summary: "the holder may delegate it (narrowed) to other contexts" },
] as const;

/** `--expires`, `--gate` and `--delegable` of a parsed line, as libtwz takes them. */
function grantOptions(
  sh: ShellContext,
  p: Parsed,
): { expires?: number; gate?: Gate; delegable: boolean } {
  const expires = p.value("--expires");
  const gate = p.value("--gate");
  return {
    ...(expires !== undefined ? { expires: parseExpiry(expires, sh.twz.port.clock().wall) } : {}),
    ...(gate !== undefined ? { gate: parseGate(gate) } : {}),
    delegable: p.has("--delegable"),
  };
}

/** A grant's PROT: letters of rwxud, at least one. */
function grantProt(text: string): number {
  const prot = parseProtArg(text, "PROT");
  if (prot === 0) throw new UsageError("PROT: a grant gives at least one of r, w, x, u, d");
  return prot;
}

/** Every name bound to each object (a damaged directory is skipped). */
function namesOf(twz: Twz): Map<ObjID, string> {
  const names = new Map<ObjID, string>();
  try {
    for (const b of twz.naming.walk()) if (!names.has(b.id)) names.set(b.id, b.path);
  } catch { /* damaged naming: IDs only */ }
  return names;
}

/** `5f…` or `5f… (/sec/ctx/reader)`. */
function labelled(id: ObjID, names: Map<ObjID, string>): string {
  const name = names.get(id);
  return name === undefined ? formatId(id) : `${formatId(id)} (${name})`;
}

/** The bindings of a /sec directory (none when it does not exist yet). */
function secBindings(twz: Twz, dir: string): { name: string; id: ObjID }[] {
  if (!twz.naming.exists(dir)) return [];
  return twz.naming.list(dir);
}

/** Bind `path` to a new security object; delete `ids` when the bind fails. */
function bindNew(sh: ShellContext, path: string, ids: ObjID[]): void {
  try {
    sh.twz.naming.bind(path, ids[0]!, { parents: true });
  } catch (error) {
    for (const id of ids) {
      try {
        if (id !== 0n && sh.kernel.exists(id)) sh.kernel.delete(id);
      } catch { /* what cannot be deleted fsck --deep lists */ }
    }
    throw error;
  }
}

/** Refuse a name already bound, before anything is made. */
function freeName(sh: ShellContext, kind: "key" | "context", name: string): string {
  const path = secPath(kind, name);
  if (sh.twz.naming.exists(path)) throw new UsageError(`the name ${path} is already bound`);
  return path;
}

/** A running thread of the board's kernel, or a one-line error. */
function liveThread(sh: ShellContext, tid: number): { tid: number; name: string } {
  const t = attachThreads(sh.board).manager.threads().find((x) => x.tid === tid);
  if (t === undefined) throw new UsageError(`no thread ${tid} (see ps)`);
  if (t.state === ThreadState.Exited) throw new UsageError(`thread ${tid} (${t.name}) has ended`);
  return { tid, name: t.name };
}

/** One grant as `ctx show` lists it. */
function grantLine(index: number, g: Grant, names: Map<ObjID, string>): string {
  let depth = 1;
  for (let at: Grant = g; at.kind === "delegation"; at = at.parent) depth++;
  const extra = [
    g.flags & CapFlag.Delegate ? "delegable" : "",
    g.flags & CapFlag.Ed25519 ? "ed25519" : "",
    g.kind === "delegation" ? `from ${formatId(g.provider)} (chain of ${depth})` : "",
  ].filter((s) => s !== "");
  return [
    `  ${String(index).padStart(3)}  ${g.kind.padEnd(10)}  ${formatSecProt(g.prot)}`,
    `target ${labelled(g.target, names)}`,
    `accessor ${formatId(g.accessor)}`,
    `expires ${formatExpiry(g.expiry)}`,
    `gate ${formatGate(g.gate)}`,
    ...extra,
  ].join("  ");
}

const KEY_ARG = { name: "KEY", summary: "a key: its name in /sec/keys, a path or an ID" } as const;
const CTX_ARG = {
  name: "CTX",
  summary: "a security context: its name in /sec/ctx, a path or an ID",
} as const;
const OBJ_ARG = { name: "OBJ", summary: "an object ID (32 hex digits) or a name (/a/b)" } as const;
const TID_ARG = { name: "TID", summary: "a running thread's number (see ps)" } as const;

/** The `key` subcommands, in the order help lists them. */
const KEY: readonly Command[] = [
  {
    spec: {
      name: "key new",
      summary: "make a key pair; prints its key and private object IDs",
      options: [{
        name: "--scheme",
        value: "SCHEME",
        choices: SCHEMES,
        summary: "the signing scheme (default ecdsa-p256)",
      }],
      args: [{ name: "NAME", summary: "the key's name: it is bound at /sec/keys/NAME" }],
      details: [
        "The key object (the public half) is what keyed objects name as their key; the private " +
        "object holds the private key and is readable by the admin (this shell) only.",
      ],
    },
    async run(sh, p) {
      const path = freeName(sh, "key", p.arg("NAME")!);
      const scheme = (p.value("--scheme") ?? SCHEMES[0]) as typeof SCHEMES[number];
      const ids = await createKey(sh.twz, { scheme });
      bindNew(sh, path, [ids.kuid, ids.privateId]);
      sh.io.out(`key:      ${formatId(ids.kuid)}`);
      sh.io.out(`private:  ${ids.privateId === 0n ? "none" : formatId(ids.privateId)}`);
      sh.io.out(`scheme:   ${scheme}`);
      sh.io.out(`name:     ${path}`);
    },
  },
  {
    spec: {
      name: "key rotate",
      summary: "replace a key's pair: every grant it signed stops granting",
      args: [KEY_ARG],
      details: ["Mappings made under those grants are withdrawn at once (docs/SECURITY.md)."],
    },
    async run(sh, p) {
      const kuid = secObject(sh.twz, p.arg("KEY")!, "key");
      await rotateKey(sh.twz, kuid);
      sh.io.out(`rotated ${formatId(kuid)}: generation ${sh.twz.port.keyInfo(kuid).generation}`);
    },
  },
  {
    spec: {
      name: "key show",
      summary: "print a key's scheme, generation and objects",
      args: [KEY_ARG],
    },
    run(sh, p) {
      const kuid = secObject(sh.twz, p.arg("KEY")!, "key");
      const k = sh.twz.port.keyInfo(kuid);
      const names = namesOf(sh.twz);
      const hex = [...k.publicKey].map((b) => b.toString(16).padStart(2, "0")).join("");
      sh.io.out(`key:        ${labelled(k.kuid, names)}`);
      sh.io.out(`scheme:     ${k.scheme}`);
      sh.io.out(`generation: ${k.generation}`);
      sh.io.out(
        `private:    ${k.privateId === 0n ? "none (public key only)" : formatId(k.privateId)}`,
      );
      sh.io.out(`public:     ${hex}`);
    },
  },
  {
    spec: { name: "key list", summary: "list the keys named in /sec/keys" },
    run(sh) {
      for (const b of secBindings(sh.twz, SEC_DIRS.key)) {
        let facts: string;
        try {
          const k = sh.twz.port.keyInfo(b.id);
          facts = `${k.scheme.padEnd(10)}  gen ${String(k.generation).padEnd(3)}  ${
            k.privateId === 0n ? "public only" : "with private"
          }`;
        } catch (error) {
          facts = `(not a key: ${(error as Error).message})`;
        }
        sh.io.out(`${formatId(b.id)}  ${facts}  ${b.name}`);
      }
    },
  },
];

/** The `ctx` subcommands, in the order help lists them. */
const CTX: readonly Command[] = [
  {
    spec: {
      name: "ctx new",
      summary: "make a security context; prints its ID",
      options: [{
        name: "--key",
        value: "KEY",
        summary: "the key that speaks for it (signs its delegations; attaches by capability)",
      }],
      args: [{ name: "NAME", summary: "the context's name: it is bound at /sec/ctx/NAME" }],
    },
    run(sh, p) {
      const path = freeName(sh, "context", p.arg("NAME")!);
      const keyText = p.value("--key");
      const key = keyText === undefined ? undefined : secObject(sh.twz, keyText, "key");
      const id = createContext(sh.twz, key === undefined ? {} : { key });
      bindNew(sh, path, [id]);
      sh.io.out(formatId(id));
    },
  },
  {
    spec: { name: "ctx list", summary: "list the contexts named in /sec/ctx" },
    run(sh) {
      for (const b of secBindings(sh.twz, SEC_DIRS.context)) {
        let facts: string;
        try {
          const c = sh.twz.port.ctxInfo(b.id);
          const n = c.grants.length, m = c.masks.length;
          facts = `${n} grant${n === 1 ? "" : "s"}  ${m} mask${m === 1 ? "" : "s"}  key ${
            c.key === 0n ? "none" : formatId(c.key)
          }`;
        } catch (error) {
          facts = `(not a context: ${(error as Error).message})`;
        }
        sh.io.out(`${formatId(b.id)}  ${facts}  ${b.name}`);
      }
    },
  },
  {
    spec: {
      name: "ctx show",
      summary: "print a context's key, grants and masks",
      args: [CTX_ARG],
    },
    run(sh, p) {
      const c = sh.twz.port.ctxInfo(secObject(sh.twz, p.arg("CTX")!, "context"));
      const names = namesOf(sh.twz);
      const { out } = sh.io;
      out(`context:     ${labelled(c.id, names)}`);
      out(`key:         ${c.key === 0n ? "none" : labelled(c.key, names)}`);
      out(`generation:  ${c.generation}`);
      out(`global mask: ${formatSecProt(c.globalMask)}`);
      out(`grants:      ${c.grants.length}`);
      for (const { index, grant } of c.grants) out(grantLine(index, grant, names));
      out(`masks:       ${c.masks.length}`);
      for (const m of c.masks) out(`  ${formatSecProt(m.prot)}  ${labelled(m.target, names)}`);
    },
  },
  {
    spec: {
      name: "ctx mask",
      summary: "limit what a context may have on an object",
      options: [
        { name: "--object", value: "OBJ", summary: "the object (default: every object)" },
        { name: "--remove", summary: "remove the mask instead (every object: back to rwxud)" },
      ],
      args: [CTX_ARG, {
        name: "PROT",
        optional: true,
        summary: "the most it may have: letters of rwxud, or none",
      }],
      details: [
        "Grants in the context give at most the mask; a narrower mask takes effect at once.",
      ],
    },
    run(sh, p) {
      const text = p.arg("PROT");
      const remove = p.has("--remove");
      if (text === undefined && !remove) throw new UsageError("missing PROT (or --remove)");
      if (text !== undefined && remove) throw new UsageError("give PROT or --remove, not both");
      const prot = text === undefined ? null : parseProtArg(text, "PROT");
      const ctx = secObject(sh.twz, p.arg("CTX")!, "context");
      const objText = p.value("--object");
      const target = objText === undefined ? 0n : sh.resolve(objText);
      sh.twz.port.ctxMask(ctx, target, prot);
      const on = target === 0n ? "every object" : formatId(target);
      sh.io.out(
        prot === null
          ? `mask of ${formatId(ctx)} on ${on}: removed`
          : `mask of ${formatId(ctx)} on ${on}: ${formatSecProt(prot)}`,
      );
    },
  },
  {
    spec: {
      name: "ctx attach",
      summary: "attach a running thread to a context",
      args: [CTX_ARG, TID_ARG],
      details: ["The thread gets what the context's grants give from its next map on."],
    },
    async run(sh, p) {
      const tid = count(p.arg("TID")!, "TID");
      const ctx = secObject(sh.twz, p.arg("CTX")!, "context");
      const t = liveThread(sh, tid);
      await sh.twz.port.ctxAttach(ctx, t.tid);
      sh.io.out(`thread ${t.tid} (${t.name}) attached to ${formatId(ctx)}`);
    },
  },
  {
    spec: {
      name: "ctx detach",
      summary: "detach a running thread from a context",
      args: [CTX_ARG, TID_ARG],
      details: ["Mappings the thread holds only through the context are withdrawn at once."],
    },
    run(sh, p) {
      const tid = count(p.arg("TID")!, "TID");
      const ctx = secObject(sh.twz, p.arg("CTX")!, "context");
      const t = liveThread(sh, tid);
      sh.twz.port.ctxDetach(ctx, t.tid);
      sh.io.out(`thread ${t.tid} (${t.name}) detached from ${formatId(ctx)}`);
    },
  },
];

/** `new` of `key new`. */
function word(c: Command): string {
  return c.spec.name.slice(c.spec.name.lastIndexOf(" ") + 1);
}

/** The security commands, in the order help lists them. */
export const SECURITY_COMMANDS: readonly Command[] = [
  {
    spec: {
      name: "key",
      summary: "signing keys: the keys of keyed objects and of contexts",
      args: [{ name: "COMMAND", summary: listOf(KEY.map(word)) }],
      details: ["key COMMAND --help prints that command's help."],
    },
    sub: KEY,
  },
  {
    spec: {
      name: "ctx",
      summary: "security contexts: grants and masks threads attach to",
      args: [{ name: "COMMAND", summary: listOf(CTX.map(word)) }],
      details: ["ctx COMMAND --help prints that command's help."],
    },
    sub: CTX,
  },
  {
    spec: {
      name: "grant",
      summary: "give a context protections on a keyed object",
      options: GRANT_OPTIONS,
      args: [
        OBJ_ARG,
        CTX_ARG,
        { name: "PROT", summary: "what it gives: letters of rwxud (r, rw, rx)" },
      ],
      details: [
        "Signed with the private key of the object's key; prints the grant's index in CTX " +
        "(revoke CTX INDEX takes it back).",
      ],
    },
    async run(sh, p) {
      const prot = grantProt(p.arg("PROT")!);
      const terms = grantOptions(sh, p);
      const target = sh.resolve(p.arg("OBJ"));
      const to = secObject(sh.twz, p.arg("CTX")!, "context");
      const r = await grant(sh.twz, { target, to, prot, ...terms });
      sh.io.out(
        `grant ${r.index}: ${formatSecProt(prot)} on ${formatId(target)} for context ${
          formatId(to)
        }${r.grant.expiry === 0n ? "" : `, expires ${formatExpiry(r.grant.expiry)}`}`,
      );
    },
  },
  {
    spec: {
      name: "delegate",
      summary: "pass on a delegable grant, narrowed, to another context",
      options: GRANT_OPTIONS,
      args: [
        { name: "CTX", summary: "the context holding the grant (its key signs)" },
        { name: "INDEX", summary: "the grant's index in CTX (see ctx show)" },
        { name: "TO-CTX", summary: "the context that gets the delegation" },
        { name: "PROT", summary: "what it gives: at most what the grant gives" },
      ],
      details: [
        "A delegation never gives more than its parent: not more protections, no later expiry, " +
        "no wider gate. CTX needs a key (ctx new --key) and the grant must be --delegable.",
      ],
    },
    async run(sh, p) {
      const index = count(p.arg("INDEX")!, "INDEX");
      const prot = grantProt(p.arg("PROT")!);
      const terms = grantOptions(sh, p);
      const from = secObject(sh.twz, p.arg("CTX")!, "context");
      const to = secObject(sh.twz, p.arg("TO-CTX")!, "context");
      const r = await delegate(sh.twz, { from, index, to, prot, ...terms });
      sh.io.out(
        `grant ${r.index}: delegation ${formatSecProt(prot)} on ${
          formatId(r.grant.target)
        } for context ${formatId(to)}${
          r.grant.expiry === 0n ? "" : `, expires ${formatExpiry(r.grant.expiry)}`
        }`,
      );
    },
  },
  {
    spec: {
      name: "revoke",
      summary: "take a grant back; mappings made under it are withdrawn",
      args: [CTX_ARG, { name: "INDEX", summary: "the grant's index (see ctx show)" }],
    },
    run(sh, p) {
      const index = count(p.arg("INDEX")!, "INDEX");
      const ctx = secObject(sh.twz, p.arg("CTX")!, "context");
      revoke(sh.twz, ctx, index);
      sh.io.out(`revoked grant ${index} of ${formatId(ctx)}`);
    },
  },
  {
    spec: {
      name: "access",
      summary: "an object's effective protections (rwxud), and why",
      options: [{
        name: "--context",
        value: "CTX",
        repeat: true,
        summary: "a context (default: this shell, the admin)",
      }],
      args: [OBJ_ARG],
      details: [
        "The first line is the effective protections, the object and its default protections; " +
        "then one line per reason (a grant looked at, a mask, the defaults).",
      ],
    },
    async run(sh, p) {
      const id = sh.resolve(p.arg("OBJ"));
      const contexts = p.values("--context").map((c) => secObject(sh.twz, c, "context"));
      const r = await access(sh.twz, id, contexts.length > 0 ? contexts : undefined);
      const names = namesOf(sh.twz);
      sh.io.out(
        `${formatSecProt(r.prot)}  ${labelled(r.id, names)}  defaults ${formatSecProt(r.defaults)}`,
      );
      for (const reason of r.reasons) {
        sh.io.out(
          reason.context === 0n
            ? `  ${reason.why}`
            : `  context ${formatId(reason.context)}: ${reason.why}`,
        );
      }
    },
  },
];
