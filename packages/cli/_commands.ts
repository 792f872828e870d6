/**
 * The shell's commands, as one table: each entry is a {@linkcode CommandSpec}
 * (name, summary, options, arguments, details; see `_args.ts`) and a
 * handler. The shell tokenizes every line once (quotes and escapes), parses
 * it by the command's spec, and hands the handler the {@linkcode Parsed}
 * result; `--help`, `help CMD` and the `help` list are printed from the same
 * specs ({@linkcode helpText}), so a command and its help cannot drift apart.
 *
 * A handler prints on `io.out` and reports a mistake by throwing a
 * {@linkcode UsageError} (or a `TwzError` / `RangeError` from below), which
 * the shell prints as one line, `NAME: message`.
 *
 * @module
 */
import { formatId, formatProt, Kernel, type ObjID, parseProt } from "@twz/kernel";
import type { EvictionPolicy } from "@twz/kernel/hal";
import type { Twz } from "@twz/libtwz";
import {
  attachDevices,
  type Board,
  EVICTION_POLICIES,
  formatSize,
  parseSize,
  rebootBoard,
  UsageError,
} from "./board.ts";
import {
  type CommandSpec,
  count,
  helpFor,
  listOf,
  type Parsed,
  quoted,
  synopsisOf,
} from "./_args.ts";
import { THREAD_COMMANDS } from "./_commands_threads.ts";
import { SECURITY_COMMANDS } from "./_commands_security.ts";
import { GLOBAL_COMMANDS } from "./_commands_global.ts";
import { secObject } from "./_run.ts";
import { byteRange, newObject } from "./_objects.ts";
import { KV_OBJECT, kvStore } from "./programs/kv.ts";

/** Name of the object that holds the shell's key-value store. */
export const KV_NAME: string = KV_OBJECT;

/** Where the shell writes. */
export interface ShellIO {
  /** Print one line of output. */
  out(line: string): void;
  /** Print one line of diagnostics (errors, warnings). */
  err(line: string): void;
}

/** What a command asks of the loop. */
export type Flow = "continue" | "shutdown";

/** What a handler may use of the shell. */
export interface ShellContext {
  /** The board: HAL and current kernel (`crash` and `reboot` replace the kernel). */
  readonly board: Board;
  /** Where output goes. */
  readonly io: ShellIO;
  /** The current kernel. */
  readonly kernel: Kernel;
  /** The libtwz session on the current kernel (names, transactions). */
  readonly twz: Twz;
  /** Report a boot (after `crash` and `reboot`). */
  readonly bootLog: (k: Kernel) => void;
  /** Resolve an OBJ argument (an ID or a name). */
  resolve(text: string | undefined): ObjID;
  /**
   * Refuse a writing command on one of the system's own objects unless
   * `force`: throws a one-line {@linkcode UsageError}.
   */
  guard(command: string, text: string, id: ObjID, force: boolean): void;
}

/** How a line is being run, besides its words. */
export interface Invocation {
  /** Aborted when the user interrupts the command (Ctrl-C). */
  readonly signal?: AbortSignal | undefined;
  /** The line ended in an unquoted `&` (only for `background` commands). */
  readonly background: boolean;
}

/** A command's handler: the shell, the parsed line, how it runs. */
export type Handler = (
  sh: ShellContext,
  p: Parsed,
  call: Invocation,
) => Flow | void | Promise<Flow | void>;

/**
 * One entry of the command table: a spec with a handler, or a spec whose
 * second word picks a subcommand (`kv put`), each with its own spec.
 */
export interface Command {
  /** What it takes; its help and its line in `help` come from here. */
  readonly spec: CommandSpec;
  /** Other words that run it. */
  readonly aliases?: readonly string[];
  /** Its `--force` lets it write or delete the system's own objects. */
  readonly guarded?: boolean;
  /** A final unquoted `&` runs it in the background (`run`). */
  readonly background?: boolean;
  /** The handler (absent for a command of subcommands). */
  readonly run?: Handler;
  /** Subcommands, chosen by the second word; their spec names are `kv put`. */
  readonly sub?: readonly Command[];
}

/** Where help's summaries start. */
const SUMMARY_COLUMN = 40;

/** The `--force` of the commands that write or delete. */
const FORCE = {
  name: "--force",
  summary: "even one of the system's own objects (/.txlog, the kv store, the naming root)",
} as const;

/** `--raw` of read, write and hexdump. */
const RAW = {
  name: "--raw",
  summary: "OFFSET counts from the object's first byte, not from its base",
} as const;

/** `--force` of read and hexdump (only with --raw). */
const RAW_FORCE = {
  name: "--force",
  summary: "with --raw: also the null region and meta-info (bytes 0-255)",
} as const;

const OBJ = { name: "OBJ", summary: "an object ID (32 hex digits) or a name (/a/b)" } as const;

/** OFFSET, and `--force` only with `--raw` for the reading commands. */
function rangeOptions(p: Parsed): { raw: boolean; force: boolean } {
  const raw = p.has("--raw");
  if (p.has("--force") && !raw) {
    throw new UsageError("--force goes with --raw (to reach the null region and meta-info)");
  }
  return { raw, force: p.has("--force") };
}

/** Bytes `hexdump` shows when no LEN is given. */
const HEXDUMP_DEFAULT = 256;

/**
 * Lines of a hex dump of `data`, which starts at `offset`: the offset (8 hex
 * digits), 16 bytes in hex (two groups of 8), then the bytes as text (`.`
 * for anything not printable ASCII); a run of lines equal to the one before
 * shows as one `*` line, and the last line is the end offset (as
 * `hexdump -C` prints them).
 *
 * @param data The bytes.
 * @param offset Where they start in their object.
 * @returns The lines.
 */
export function hexLines(data: Uint8Array, offset: number): string[] {
  const out: string[] = [];
  const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
  let previous = "";
  let starred = false;
  for (let at = 0; at < data.length; at += 16) {
    const row = data.subarray(at, Math.min(at + 16, data.length));
    const key = row.join(",");
    if (key === previous && row.length === 16) {
      if (!starred) out.push("*");
      starred = true;
      continue;
    }
    previous = key;
    starred = false;
    let bytes = "";
    let text = "";
    for (let i = 0; i < 16; i++) {
      bytes += i < row.length ? `${hex(row[i]!, 2)} ` : "   ";
      if (i === 7) bytes += " ";
      if (i < row.length) {
        const c = row[i]!;
        text += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".";
      }
    }
    out.push(`${hex(offset + at, 8)}  ${bytes} |${text}|`);
  }
  out.push(hex(offset + data.length, 8));
  return out;
}

/**
 * Bytes written in hex: pairs of hex digits, spaces between bytes allowed
 * (`48 65 6c`, `48656c`).
 *
 * @throws {UsageError} Anything but hex digits and spaces, or an odd digit.
 */
export function parseHex(text: string): Uint8Array {
  const groups = text.trim().split(/\s+/);
  const bad = groups.find((g) => !/^(?:[0-9a-fA-F]{2})+$/.test(g));
  if (bad !== undefined) {
    const shown = bad.length > 16 ? `${bad.slice(0, 16)}…` : bad;
    throw new UsageError(`HEX: "${shown}" is not bytes in hex (pairs of 0-9 a-f)`);
  }
  const digits = groups.join("");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Every name bound to each object, walking the naming tree from `/`
 * (directories once each; sorted paths). A damaged directory is skipped:
 * listing objects must not fail on it.
 */
function namesById(twz: Twz): Map<ObjID, string[]> {
  const names = new Map<ObjID, string[]>();
  const seen = new Set<ObjID>();
  const walk = (dir: string) => {
    let entries;
    try {
      entries = twz.naming.list(dir);
    } catch {
      return;
    }
    for (const b of entries) {
      const path = dir === "/" ? `/${b.name}` : `${dir}/${b.name}`;
      const list = names.get(b.id);
      if (list) list.push(path);
      else names.set(b.id, [path]);
      if (b.kind === "directory" && !seen.has(b.id)) {
        seen.add(b.id);
        walk(path);
      }
    }
  };
  let root: ObjID | undefined;
  try {
    root = twz.naming.lookup("/")?.id;
  } catch {
    root = undefined; // read-only and no namespace yet, or damaged naming
  }
  if (root !== undefined) {
    names.set(root, ["/"]);
    seen.add(root);
  }
  walk("/");
  for (const list of names.values()) list.sort();
  return names;
}

/** Run an argument parser that throws TypeError (like `parseProt`) as a usage mistake. */
function parseArg<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(`${what}: ${error.message}`);
    throw error;
  }
}

const KEY = { name: "KEY", summary: "the key (quote it to hold spaces)" } as const;

/** The kv subcommands, in the order help lists them. */
const KV: readonly Command[] = [
  {
    spec: {
      name: "kv put",
      summary: 'set KEY to VALUE; "ok" once durable',
      args: [KEY, {
        name: "VALUE",
        rest: true,
        summary: "the rest of the line (spacing kept, quotes and escapes applied)",
      }],
    },
    run(sh, p) {
      kvStore(sh.twz, true)!.set(p.arg("KEY")!, p.arg("VALUE")!);
      sh.io.out("ok");
    },
  },
  {
    spec: { name: "kv get", summary: "print KEY's value", args: [KEY] },
    run(sh, p) {
      const k = p.arg("KEY")!;
      const v = kvStore(sh.twz, false)?.get(k);
      if (v === undefined) throw new UsageError(`no key ${quoted(k)}`);
      sh.io.out(v);
    },
  },
  {
    spec: { name: "kv del", summary: 'delete KEY; "ok" once durable', args: [KEY] },
    run(sh, p) {
      const k = p.arg("KEY")!;
      if (!kvStore(sh.twz, false)?.delete(k)) throw new UsageError(`no key ${quoted(k)}`);
      sh.io.out("ok");
    },
  },
  {
    spec: { name: "kv count", summary: "print how many keys the store holds" },
    run(sh) {
      sh.io.out(String(kvStore(sh.twz, false)?.size ?? 0));
    },
  },
  {
    spec: {
      name: "kv scan",
      summary: "list the keys in [FROM, TO) in order, with values",
      args: [
        { name: "FROM", optional: true, summary: "the first key (default: the smallest)" },
        { name: "TO", optional: true, summary: "the key to stop before (default: none)" },
      ],
    },
    run(sh, p) {
      const map = kvStore(sh.twz, false);
      if (!map) return;
      for (const [k, v] of map.range(p.arg("FROM"), p.arg("TO"))) sh.io.out(`${k}\t${v}`);
    },
  },
];

/** The shell's commands, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  {
    spec: {
      name: "help",
      summary: "list the commands, or print one command's help",
      args: [
        { name: "COMMAND", optional: true, summary: "the command (same as COMMAND --help)" },
        { name: "SUBCOMMAND", optional: true, summary: "its subcommand (help kv put)" },
      ],
    },
    run(sh, p) {
      const name = p.arg("COMMAND");
      const text = name === undefined ? HELP : helpOf(name, p.arg("SUBCOMMAND"));
      for (const line of text.split("\n")) sh.io.out(line);
    },
  },
  {
    spec: {
      name: "new",
      summary: "create an object (as libtwz does) and name it; prints its ID",
      options: [
        { name: "--volatile", summary: "gone at the next boot (cannot be named)" },
        {
          name: "--size",
          value: "SIZE",
          summary: "total size, meta-info and FOT included (default 64K, at least 256)",
        },
        {
          name: "--prot",
          value: "PROT",
          summary: "default protections: letters of rwx, or - or none (default rw)",
        },
        {
          name: "--key",
          value: "KEY",
          summary: "a keyed object: its ID derives from KEY, grants are signed with it",
        },
        { name: "--tie", value: "OBJ", repeat: true, summary: "delete it when OBJ is deleted" },
        {
          name: "--name",
          value: "PATH",
          summary: "bind PATH to it (missing directories are made)",
        },
      ],
    },
    run(sh, p) {
      const size = p.value("--size");
      const prot = p.value("--prot");
      const name = p.value("--name");
      const key = p.value("--key");
      const id = newObject(sh.twz, sh.kernel, {
        volatile: p.has("--volatile"),
        ties: p.values("--tie").map((t) => sh.resolve(t)),
        ...(size !== undefined ? { size: parseSize(size, "--size") } : {}),
        ...(prot !== undefined
          ? { prot: prot === "none" ? 0 : parseArg("--prot", () => parseProt(prot)) }
          : {}),
        ...(name !== undefined ? { name } : {}),
        ...(key !== undefined ? { key: secObject(sh.twz, key, "key") } : {}),
      });
      sh.io.out(formatId(id));
    },
  },
  {
    spec: { name: "ls", summary: "list objects, with the names bound to each" },
    run(sh) {
      const names = namesById(sh.twz);
      for (const s of sh.kernel.list()) {
        const named = names.get(s.id);
        sh.io.out(
          `${formatId(s.id)}  ${s.lifetime === "persistent" ? "pers" : "vola"}  ${
            formatProt(s.prot)
          }  ${String(s.size).padStart(10)}${named ? `  ${named.join(" ")}` : ""}`,
        );
      }
    },
  },
  {
    spec: { name: "stat", summary: "facts about an object", args: [OBJ] },
    run(sh, p) {
      const { out } = sh.io;
      const s = sh.kernel.stat(sh.resolve(p.arg("OBJ")));
      out(`id:         ${formatId(s.id)}`);
      out(`lifetime:   ${s.lifetime}`);
      out(`size:       ${s.size}`);
      out(`capacity:   ${s.capacity}`);
      out(`prot:       ${formatProt(s.prot)}`);
      out(`key:        ${s.keyId === 0n ? "none" : formatId(s.keyId)}`);
      out(`dependents: ${s.dependents}`);
      out(`created:    ${new Date(s.created).toISOString()}`);
      out(`names:      ${namesById(sh.twz).get(s.id)?.join(" ") ?? "none"}`);
    },
  },
  {
    guarded: true,
    spec: {
      name: "write",
      summary: "store TEXT, or with --hex bytes in hex, at OFFSET, durably",
      options: [
        FORCE,
        {
          name: "--raw",
          summary:
            "OFFSET counts from the object's first byte; with --force also bytes 0-255 and the FOT",
        },
        { name: "--hex", summary: "TEXT is bytes in hex (48 65 6c or 48656c)" },
      ],
      args: [
        OBJ,
        { name: "OFFSET", summary: "where, from the object's base (its first data byte)" },
        {
          name: "TEXT",
          rest: true,
          summary: "the rest of the line (spacing kept, quotes and escapes applied)",
        },
      ],
      details: ["Options come before TEXT: what follows OFFSET is all text."],
    },
    run(sh, p) {
      const obj = p.arg("OBJ")!;
      const id = sh.resolve(obj);
      const force = p.has("--force");
      sh.guard("write", obj, id, force);
      const offset = count(p.arg("OFFSET")!, "OFFSET");
      const text = p.arg("TEXT")!;
      const data = p.has("--hex") ? parseHex(text) : new TextEncoder().encode(text);
      const r = byteRange(sh.kernel, id, offset, data.length, {
        raw: p.has("--raw"),
        force,
        write: true,
      });
      sh.kernel.write(id, r.start, data);
      sh.io.out(`wrote ${data.length} bytes`);
    },
  },
  {
    spec: {
      name: "read",
      summary: "print bytes as text (trailing zero bytes dropped)",
      options: [RAW, RAW_FORCE],
      args: [
        OBJ,
        { name: "OFFSET", summary: "where, from the object's base (its first data byte)" },
        {
          name: "LEN",
          optional: true,
          summary: "how many bytes (default: to the end of the data)",
        },
      ],
    },
    run(sh, p) {
      const id = sh.resolve(p.arg("OBJ"));
      const offset = count(p.arg("OFFSET")!, "OFFSET");
      const len = p.arg("LEN");
      const r = byteRange(
        sh.kernel,
        id,
        offset,
        len === undefined ? undefined : count(len, "LEN"),
        { ...rangeOptions(p), write: false },
      );
      const data = sh.kernel.read(id, r.start, r.length);
      let end = data.length;
      while (end > 0 && data[end - 1] === 0) end--;
      sh.io.out(new TextDecoder().decode(data.subarray(0, end)));
    },
  },
  {
    spec: {
      name: "hexdump",
      summary: "print bytes as hex and text, 16 a line",
      options: [RAW, RAW_FORCE],
      args: [
        OBJ,
        { name: "OFFSET", optional: true, summary: "where, from the object's base (default 0)" },
        {
          name: "LEN",
          optional: true,
          summary: `how many bytes (default ${HEXDUMP_DEFAULT} or to the end)`,
        },
      ],
      details: ["The offsets shown count as OFFSET does (from the base; with --raw from byte 0)."],
    },
    run(sh, p) {
      const id = sh.resolve(p.arg("OBJ"));
      const at = p.arg("OFFSET");
      const len = p.arg("LEN");
      const offset = at === undefined ? 0 : count(at, "OFFSET");
      const r = byteRange(
        sh.kernel,
        id,
        offset,
        len === undefined ? undefined : count(len, "LEN"),
        { ...rangeOptions(p), write: false, defaultLength: HEXDUMP_DEFAULT },
      );
      for (const line of hexLines(sh.kernel.read(id, r.start, r.length), offset)) sh.io.out(line);
    },
  },
  {
    guarded: true,
    spec: {
      name: "grow",
      summary: "grow an object",
      options: [FORCE],
      args: [OBJ, { name: "SIZE", summary: "its new size (K, M, G suffixes)" }],
    },
    run(sh, p) {
      const k = sh.kernel;
      const obj = p.arg("OBJ")!;
      const id = sh.resolve(obj);
      sh.guard("grow", obj, id, p.has("--force"));
      k.grow(id, parseSize(p.arg("SIZE")!, "SIZE"));
      sh.io.out(`size ${k.stat(id).size}`);
    },
  },
  {
    guarded: true,
    spec: {
      name: "rm",
      summary: "delete an object, what is tied to it, their names",
      options: [FORCE],
      args: [OBJ],
      details: [
        "A directory of names is not removed: unbind its names first, then unbind it. " +
        "The naming root directory (/) is never removed.",
      ],
    },
    run(sh, p) {
      const k = sh.kernel;
      const naming = sh.twz.naming;
      const obj = p.arg("OBJ")!;
      const id = sh.resolve(obj);
      if (id === naming.lookup("/")?.id) {
        throw new UsageError(`${obj} is the naming root directory: it cannot be removed`);
      }
      sh.guard("rm", obj, id, p.has("--force"));
      // The whole tree is read first: a damaged directory anywhere fails
      // the command before anything is deleted.
      const names = [...naming.walk()];
      if (names.some((b) => b.kind === "directory" && b.id === id)) {
        const inside = naming.list(names.find((b) => b.id === id)!.path).length;
        throw new UsageError(
          `${obj} is a directory of names (${inside} name${inside === 1 ? "" : "s"} in it): ` +
            "rm deletes objects; unbind its names first, then unbind the directory",
        );
      }
      const n = k.delete(id);
      sh.io.out(`deleted ${n} object${n === 1 ? "" : "s"}`);
      // Names of the object and of everything deleted with it (ties) go too.
      naming.unbindDangling({ onUnbind: (path) => sh.io.out(`unbound ${path}`) });
    },
  },
  {
    spec: {
      name: "bind",
      summary: "name an object (missing directories are made)",
      args: [{ name: "PATH", summary: "the name" }, OBJ],
    },
    run(sh, p) {
      const path = p.arg("PATH")!;
      const id = sh.resolve(p.arg("OBJ"));
      sh.twz.naming.bind(path, id, { parents: true });
      sh.io.out(`${path} -> ${formatId(id)}`);
    },
  },
  {
    guarded: true,
    spec: {
      name: "unbind",
      summary: "remove a name (the object stays)",
      options: [FORCE],
      args: [{ name: "PATH", summary: "the name" }],
    },
    run(sh, p) {
      const naming = sh.twz.naming;
      const path = p.arg("PATH")!;
      const bound = naming.lookup(path);
      if (bound) sh.guard("unbind", path, bound.id, p.has("--force"));
      sh.io.out(`unbound ${path} (was ${formatId(naming.unbind(path))})`);
    },
  },
  {
    guarded: true,
    spec: {
      name: "rename",
      summary: "move a name",
      options: [FORCE],
      args: [{ name: "FROM", summary: "the name" }, {
        name: "TO",
        summary: "its new name (missing directories are made)",
      }],
    },
    run(sh, p) {
      const naming = sh.twz.naming;
      const from = p.arg("FROM")!;
      const moved = naming.lookup(from);
      if (moved) sh.guard("rename", from, moved.id, p.has("--force"));
      const to = p.arg("TO")!;
      naming.rename(from, to, { parents: true });
      sh.io.out(`${from} -> ${to}`);
    },
  },
  {
    spec: {
      name: "mkdir",
      summary: "make a directory of names",
      args: [{ name: "PATH", summary: "the directory (missing parents are made)" }],
    },
    run(sh, p) {
      const path = p.arg("PATH")!;
      const id = sh.twz.naming.mkdir(path, { parents: true });
      // A global directory is a tree in the cluster's names, not an object.
      sh.io.out(id === 0n ? `made ${path}` : formatId(id));
    },
  },
  {
    spec: {
      name: "names",
      summary: "list the names in a directory",
      args: [{ name: "DIR", optional: true, summary: "the directory (default /)" }],
    },
    run(sh, p) {
      for (const b of sh.twz.naming.list(p.arg("DIR") ?? "/")) {
        sh.io.out(
          `${formatId(b.id)}  ${b.kind === "directory" ? "dir " : "obj "} ${b.name}${
            b.kind === "directory" ? "/" : ""
          }`,
        );
      }
    },
  },
  {
    spec: {
      name: "kv",
      summary: `a persistent ordered key-value store (the object ${KV_NAME})`,
      args: [{ name: "COMMAND", summary: listOf(KV.map((c) => subName(c))) }],
      details: [
        ["commands:", ...KV.map((c) => helpLine(c.spec))].join("\n"),
        "kv COMMAND --help prints that command's help.",
      ],
    },
    sub: KV,
  },
  {
    spec: { name: "df", summary: "space and table usage" },
    run(sh) {
      const k = sh.kernel;
      const u = k.usage();
      sh.io.out(`objects:   ${u.objects} persistent, ${u.volatile} volatile`);
      sh.io.out(`free:      ${formatSize(u.freeBytes)} of ${formatSize(k.geometry.regionSize)}`);
      sh.io.out(`table:     ${u.slotsUsed} of ${u.tableSlots} slots in use`);
    },
  },
  {
    spec: {
      name: "crash",
      summary: "sim only: lose power, then boot again",
      options: [
        {
          name: "--policy",
          value: "POLICY",
          choices: EVICTION_POLICIES,
          summary: "which unpersisted cache lines survive (default strict: none)",
        },
        { name: "--seed", value: "N", summary: "seed of the random policy (default 1)" },
      ],
    },
    run(sh, p) {
      const policy = (p.value("--policy") ?? "strict") as EvictionPolicy;
      const seedText = p.value("--seed");
      const seed = seedText === undefined ? 1 : count(seedText, "--seed");
      const board = sh.board;
      refuseOnNode(sh.kernel, "crash");
      const power = board.hal.power;
      if (!power) {
        throw new UsageError(
          `the ${board.hal.name} HAL cannot simulate a power failure (use --hal sim)`,
        );
      }
      sh.kernel.halt();
      const r = power.powerFail({ policy, seed });
      sh.io.out(`power failure: ${r.survived} of ${r.pending} unpersisted cache lines survived`);
      board.kernel = Kernel.boot(board.hal);
      attachDevices(board);
      sh.bootLog(board.kernel);
    },
  },
  {
    spec: { name: "reboot", summary: "clean shutdown, then boot again" },
    async run(sh) {
      refuseOnNode(sh.kernel, "reboot");
      await rebootBoard(sh.board);
      sh.bootLog(sh.board.kernel);
    },
  },
  {
    spec: { name: "shutdown", summary: "clean shutdown and exit" },
    aliases: ["exit", "quit"],
    run() {
      return "shutdown";
    },
  },
  ...THREAD_COMMANDS,
  ...SECURITY_COMMANDS,
  ...GLOBAL_COMMANDS,
];

/** `put` of `kv put`. */
function subName(c: Command): string {
  return c.spec.name.slice(c.spec.name.lastIndexOf(" ") + 1);
}

/** One line of the help list: name and synopsis, then the summary at the column. */
function helpLine(spec: CommandSpec, summary = spec.summary): string {
  const synopsis = synopsisOf(spec);
  const head = `  ${spec.name}${synopsis === "" ? "" : ` ${synopsis}`}`;
  return head.length < SUMMARY_COLUMN
    ? head.padEnd(SUMMARY_COLUMN) + summary
    : `${head}\n${" ".repeat(SUMMARY_COLUMN)}${summary}`;
}

/** The lines after the list in help. */
function helpNotes(commands: readonly Command[]): string[] {
  const guarded = commands.filter((c) => c.guarded).map((c) => c.spec.name);
  const list = guarded.length < 2
    ? guarded.join("")
    : `${guarded.slice(0, -1).join(", ")} and ${guarded.at(-1)}`;
  return [
    "",
    "OBJ is an object ID (32 hex digits) or a name (/a/b). Sizes take K, M, G suffixes.",
    "Words split at spaces; \"double\" and 'single' quotes keep them, a backslash escapes",
    "(\\n \\t \\0 \\xHH \\\\ \\\" \\' \"\\ \"; nothing in '...'). TEXT and VALUE are the rest of the",
    "line as typed (spacing kept). Options go anywhere before TEXT/VALUE, `--` ends them.",
    "OFFSET counts from the object's base (its first data byte); --raw from byte 0.",
    "rm refuses a directory of names: unbind its names first, then the directory.",
    "KEY and CTX are a name (bound at /sec/keys/NAME, /sec/ctx/NAME), a path or an ID;",
    "PROT of grant, delegate and ctx mask is letters of rwxud (read, write, exec, use, delete).",
    `${list} refuse the system's own objects (/.txlog, the`,
    "kv store, the naming root directory, the kernel root object) unless --force is given.",
    "CMD --help (or help CMD) prints a command's help.",
  ];
}

/**
 * The shell's help, generated from a command table: one line per command
 * (name, synopsis from its spec, summary; a long synopsis puts the summary
 * on the next line), each subcommand too, then the notes that apply to
 * several commands.
 *
 * @param commands The table (default: the shell's).
 * @returns The text, without a final newline.
 */
export function helpText(commands: readonly Command[] = COMMANDS): string {
  const lines = ["commands:"];
  for (const c of commands) {
    const summary = c.aliases === undefined
      ? c.spec.summary
      : `${c.spec.summary} (also: ${c.aliases.join(", ")})`;
    if (c.sub !== undefined) {
      lines.push(
        helpLine({ name: `${c.spec.name} ${c.sub.map(subName).join("|")}`, summary }),
        ...c.sub.map((s) => helpLine(s.spec)),
      );
    } else lines.push(helpLine(c.spec, summary));
  }
  return [...lines, ...helpNotes(commands)].join("\n");
}

const HELP = helpText();

/** `help NAME [SUB]`: that command's help. */
function helpOf(name: string, sub: string | undefined): string {
  const c = commandIndex().get(name);
  if (c === undefined) throw new UsageError(`no command ${quoted(name)} (try "help")`);
  if (sub === undefined) return helpFor(c.spec);
  if (c.sub === undefined) {
    throw new UsageError(`${c.spec.name} has no subcommands (try "help ${c.spec.name}")`);
  }
  return helpFor(subcommand(c, sub).spec);
}

/** The table as a lookup: every name and alias to its command. */
export function commandIndex(commands: readonly Command[] = COMMANDS): Map<string, Command> {
  const index = new Map<string, Command>();
  for (const c of commands) {
    for (const name of [c.spec.name, ...(c.aliases ?? [])]) {
      if (index.has(name)) throw new Error(`two shell commands are called ${name}`);
      index.set(name, c);
    }
  }
  return index;
}

/**
 * The subcommand `word` of `c` (`put` of `kv`).
 *
 * @throws {UsageError} `word` names none of them: one line listing them.
 */
export function subcommand(c: Command, word: string | undefined): Command {
  const subs = c.sub ?? [];
  const names = listOf(subs.map(subName));
  if (word === undefined) {
    throw new UsageError(`missing COMMAND (${names}; see ${c.spec.name} --help)`);
  }
  const found = subs.find((s) => subName(s) === word);
  if (found === undefined) {
    throw new UsageError(`unknown command ${quoted(word)} (${names}; see ${c.spec.name} --help)`);
  }
  return found;
}

/**
 * `crash` and `reboot` replace the kernel; a node's global space stays
 * joined to the one it booted with, so on a node they are refused.
 */
function refuseOnNode(kernel: Kernel, what: string): void {
  if (kernel.global !== undefined) {
    throw new UsageError(
      `${what}: this system is node ${kernel.global.node} of a cluster: ` +
        "shut down and boot again instead",
    );
  }
}
