/**
 * The `twz boot` shell: one command per line, output on `out`, errors as one
 * line each on `err`. It runs in-process over a {@linkcode Board}, so tests
 * drive it without spawning.
 *
 * @module
 */
import {
  formatId,
  formatProt,
  Kernel,
  looksLikeId,
  type ObjID,
  parseId,
  parseProt,
  TwzError,
} from "@twz/kernel";
import type { EvictionPolicy } from "@twz/kernel/hal";
import { resolveObj, Twz } from "@twz/libtwz";
import { BTreeMap } from "@twz/libtwz/btree";
import { codec } from "@twz/libtwz/codec";
import { type Board, formatSize, parseSize, rebootBoard, UsageError } from "./board.ts";

/** Name of the object that holds the shell's key-value store. */
export const KV_NAME = "/kv";

/** Where the shell writes. */
export interface ShellIO {
  out(line: string): void;
  err(line: string): void;
}

/** What a command asks of the loop. */
export type Flow = "continue" | "shutdown";

const HELP = `commands:
  help                                  this text
  new [--volatile] [--size N] [--prot rw] [--tie OBJ]... [--name PATH]
                                        create an object (and name it); prints its ID
  ls                                    list objects
  stat OBJ                              facts about an object
  write [--force] OBJ OFFSET TEXT       store TEXT (the rest of the line; "quotes" and \\n allowed) durably
  read OBJ OFFSET LEN                   print LEN bytes as text (trailing zero bytes dropped)
  grow [--force] OBJ SIZE               grow an object
  rm [--force] OBJ                      delete an object and everything tied to it;
                                        every name of a deleted object goes too
                                        (not a directory: unbind its names first)
  bind PATH OBJ                         name an object (missing directories are made)
  unbind [--force] PATH                 remove a name (the object stays)
  rename [--force] FROM TO              move a name
  mkdir PATH                            make a directory of names
  names [DIR]                           list the names in a directory (default /)
  kv put KEY VALUE | get KEY | del KEY | count | scan [FROM [TO]]
                                        a persistent ordered key-value store (the
                                        object /kv); put and del print "ok" once
                                        their transaction is durable; scan lists
                                        keys in [FROM, TO) in order
  df                                    space and table usage
  crash [--policy strict|random|all] [--seed S]
                                        sim only: lose power, then boot again
  reboot                                clean shutdown, then boot again
  shutdown                              clean shutdown and exit
OBJ is an object ID (32 hex digits) or a name (/a/b). Sizes take K, M, G suffixes.
write, grow, rm, unbind and rename refuse the system's own objects (/.txlog, the
kv store, the naming root directory, the kernel root object) unless --force is given.`;

/** Commands that take `--force` (they write or delete). */
const FORCEABLE = new Set(["write", "grow", "rm", "unbind", "rename"]);

/** Split a command line into words; `rest` keeps the raw text after word `n`. */
function words(line: string): string[] {
  return line.trim().split(/\s+/).filter((w) => w.length > 0);
}

/** The text after the first `n` words of `line`, as typed. */
function restAfter(line: string, n: number): string {
  let at = 0;
  for (let i = 0; i < n; i++) {
    while (at < line.length && /\s/.test(line[at])) at++;
    while (at < line.length && !/\s/.test(line[at])) at++;
  }
  while (at < line.length && /\s/.test(line[at])) at++;
  return line.slice(at);
}

/** Interpret `"quoted \n text"` (quotes optional) the way the help says. */
export function parseText(raw: string): string {
  const trimmed = raw.replace(/\s+$/, "");
  if (trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')) {
    return trimmed.slice(1, -1).replace(
      /\\(.)/g,
      (_, c: string) => c === "n" ? "\n" : c === "t" ? "\t" : c === "0" ? "\0" : c,
    );
  }
  return trimmed;
}

function parseOffset(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d+$/.test(text)) {
    throw new UsageError(`${what} must be a non-negative integer, not "${text ?? ""}"`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} ${text} is not a usable offset`);
  return n;
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

/** The shell over a board; `reboot` and `crash` replace the kernel in place. */
export class Shell {
  #failed = 0;
  #twz: Twz | undefined;
  #twzKernel: Kernel | undefined;
  constructor(readonly board: Board, readonly io: ShellIO, readonly bootLog: (k: Kernel) => void) {}

  /** The libtwz session on the current kernel (names, transactions). */
  get twz(): Twz {
    if (this.#twz === undefined || this.#twzKernel !== this.board.kernel) {
      this.#twz = Twz.fromKernel(this.board.kernel);
      this.#twzKernel = this.board.kernel;
      for (const w of this.#twz.warnings) this.io.err(`twz: warning: ${w}`);
    }
    return this.#twz;
  }

  /** Commands that failed so far. */
  get failures(): number {
    return this.#failed;
  }

  get kernel(): Kernel {
    return this.board.kernel;
  }

  /** The shell's key-value store: a B-tree map in the object named /kv. */
  #kv(create: boolean): BTreeMap<string, string> | undefined {
    const twz = this.twz;
    if (!twz.naming.exists(KV_NAME)) {
      if (!create) return undefined;
      // Make the object and the map in it first, and name it last: a crash
      // or a failure in between leaves at worst an unnamed object, never a
      // name bound to an object without a map.
      const obj = twz.create({ size: 1 << 20 });
      try {
        const map = BTreeMap.create(twz, obj, codec.string, codec.string);
        twz.naming.bind(KV_NAME, obj.id);
        return map;
      } catch (error) {
        twz.delete(obj.id);
        throw error;
      }
    }
    return BTreeMap.open(twz, twz.open(KV_NAME), codec.string, codec.string);
  }

  #kvCommand(w: string[], line: string): void {
    const { out } = this.io;
    const key = () => {
      if (w[2] === undefined) throw new UsageError(`kv ${w[1]} needs a KEY`);
      return w[2];
    };
    switch (w[1]) {
      case "put": {
        const k = key();
        if (w.length < 4) throw new UsageError("kv put needs a VALUE");
        this.#kv(true)!.set(k, parseText(restAfter(line, 3)));
        out("ok");
        return;
      }
      case "get": {
        const k = key();
        const v = this.#kv(false)?.get(k);
        if (v === undefined) throw new UsageError(`no key "${k}"`);
        out(v);
        return;
      }
      case "del": {
        const k = key();
        if (!this.#kv(false)?.delete(k)) throw new UsageError(`no key "${k}"`);
        out("ok");
        return;
      }
      case "count":
        out(String(this.#kv(false)?.size ?? 0));
        return;
      case "scan": {
        const map = this.#kv(false);
        if (!map) return;
        for (const [k, v] of map.range(w[2], w[3])) out(`${k}\t${v}`);
        return;
      }
      default:
        throw new UsageError("kv takes put, get, del, count or scan (see help)");
    }
  }

  /** Resolve an OBJ argument. */
  resolve(text: string | undefined): ObjID {
    if (text === undefined) throw new UsageError("missing OBJ (an object ID or a name)");
    if (looksLikeId(text)) {
      try {
        return parseId(text);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    return resolveObj(this.twz, text);
  }

  /**
   * Every binding in the naming tree, parents before children; directories
   * whose object is gone are listed but not entered.
   */
  #allNames(): Array<{ path: string; id: ObjID; kind: "object" | "directory" }> {
    const naming = this.twz.naming;
    const out: Array<{ path: string; id: ObjID; kind: "object" | "directory" }> = [];
    const walk = (dir: string) => {
      for (const b of naming.list(dir)) {
        const path = `${dir === "/" ? "" : dir}/${b.name}`;
        out.push({ path, id: b.id, kind: b.kind });
        if (b.kind === "directory" && this.kernel.exists(b.id)) walk(path);
      }
    };
    walk("/");
    return out;
  }

  #path(text: string | undefined, what: string): string {
    if (text === undefined) throw new UsageError(`missing ${what}`);
    return text;
  }

  /** Run one line; errors are reported, counted, and not thrown. */
  async execute(line: string): Promise<Flow> {
    const w = words(line);
    if (w.length === 0 || w[0].startsWith("#")) return "continue";
    try {
      return await this.#dispatch(w, line);
    } catch (error) {
      this.#failed++;
      if (error instanceof UsageError || error instanceof TwzError || error instanceof RangeError) {
        this.io.err(`${w[0]}: ${error.message}`);
        return "continue";
      }
      throw error;
    }
  }

  /**
   * What the system uses `id` for, when it is one of its own objects: the
   * transaction log, the kv store, the naming root directory, the kernel's
   * root object. Damaged naming answers only what it can.
   */
  #systemRole(id: ObjID): string | undefined {
    const k = this.kernel;
    if (id === k.rootObjectId()) {
      return "the kernel's root object (it holds the naming root record)";
    }
    const named = (path: string) => {
      try {
        return this.twz.naming.lookup(path)?.id;
      } catch {
        return undefined; // damaged naming: what cannot be read is not refused here
      }
    };
    if (id === named("/")) return "the naming root directory";
    if (id === named("/.txlog")) return "the transaction log (/.txlog)";
    if (id === named(KV_NAME)) return `the kv store (${KV_NAME})`;
    return undefined;
  }

  /** Refuse a writing command on a system object unless forced: one line. */
  #guard(command: string, text: string, id: ObjID, force: boolean): void {
    if (force) return;
    const role = this.#systemRole(id);
    if (role !== undefined) {
      throw new UsageError(
        `${text} is ${role}; refusing to ${command} it (add --force to do it anyway)`,
      );
    }
  }

  async #dispatch(words: string[], line: string): Promise<Flow> {
    const k = this.kernel;
    const { out } = this.io;
    // `--force` right after a writing command lets it touch system objects.
    const force = words[1] === "--force" && FORCEABLE.has(words[0]);
    const w = force ? [words[0], ...words.slice(2)] : words;
    if (force) line = `${words[0]} ${restAfter(line, 2)}`;
    switch (w[0]) {
      case "help":
        out(HELP);
        return "continue";
      case "new": {
        let size: number | undefined;
        let name: string | undefined;
        let volatile = false;
        let prot: number | undefined;
        const ties: ObjID[] = [];
        for (let i = 1; i < w.length; i++) {
          const flag = w[i];
          const value = () => {
            if (i + 1 >= w.length) throw new UsageError(`${flag} needs a value`);
            return w[++i];
          };
          if (flag === "--volatile") volatile = true;
          else if (flag === "--size") size = parseSize(value());
          else if (flag === "--prot") {
            const text = value();
            prot = parseArg("--prot", () => parseProt(text));
          } else if (flag === "--tie") ties.push(this.resolve(value()));
          else if (flag === "--name") name = value();
          else throw new UsageError(`unknown option "${flag}" (see help)`);
        }
        if (name !== undefined && volatile) {
          throw new UsageError(
            "a volatile object cannot be named: the name would dangle after a crash",
          );
        }
        if (name !== undefined && this.twz.naming.exists(name)) {
          throw new UsageError(`the name ${name} is already bound`);
        }
        const id = k.create({ size, lifetime: volatile ? "volatile" : "persistent", prot, ties });
        if (name !== undefined) {
          // Create, then name; a bind that fails deletes the object again, so
          // a failed `new --name` leaves nothing. (These are raw kernel
          // objects, without libtwz meta-info to mark them pending: a power
          // failure between the kernel's create commit and the bind leaves an
          // unnamed object, which `ls` shows and `rm` removes. Objects made
          // with libtwz's Twz.create({ name }) are marked and swept by fsck.)
          try {
            this.twz.naming.bind(name, id, { parents: true });
          } catch (error) {
            k.delete(id);
            throw error;
          }
        }
        out(formatId(id));
        return "continue";
      }
      case "ls": {
        const all = k.list();
        for (const s of all) {
          out(
            `${formatId(s.id)}  ${s.lifetime === "persistent" ? "pers" : "vola"}  ${
              formatProt(s.prot)
            }  ${String(s.size).padStart(10)}`,
          );
        }
        return "continue";
      }
      case "stat": {
        const s = k.stat(this.resolve(w[1]));
        out(`id:         ${formatId(s.id)}`);
        out(`lifetime:   ${s.lifetime}`);
        out(`size:       ${s.size}`);
        out(`capacity:   ${s.capacity}`);
        out(`prot:       ${formatProt(s.prot)}`);
        out(`key:        ${s.keyId === 0n ? "none" : formatId(s.keyId)}`);
        out(`dependents: ${s.dependents}`);
        out(`created:    ${new Date(s.created).toISOString()}`);
        return "continue";
      }
      case "write": {
        const id = this.resolve(w[1]);
        this.#guard("write", w[1], id, force);
        const offset = parseOffset(w[2], "OFFSET");
        if (w.length < 4) throw new UsageError("missing TEXT");
        const data = new TextEncoder().encode(parseText(restAfter(line, 3)));
        k.write(id, offset, data);
        out(`wrote ${data.length} bytes`);
        return "continue";
      }
      case "read": {
        const id = this.resolve(w[1]);
        const offset = parseOffset(w[2], "OFFSET");
        const length = parseOffset(w[3], "LEN");
        const data = k.read(id, offset, length);
        let end = data.length;
        while (end > 0 && data[end - 1] === 0) end--;
        out(new TextDecoder().decode(data.subarray(0, end)));
        return "continue";
      }
      case "grow": {
        const id = this.resolve(w[1]);
        this.#guard("grow", w[1], id, force);
        if (w[2] === undefined) throw new UsageError("missing SIZE");
        k.grow(id, parseSize(w[2]));
        out(`size ${k.stat(id).size}`);
        return "continue";
      }
      case "rm": {
        const id = this.resolve(w[1]);
        this.#guard("rm", w[1], id, force);
        const names = this.#allNames();
        const dir = names.find((b) => b.kind === "directory" && b.id === id);
        if (dir || id === this.twz.naming.lookup("/")!.id) {
          throw new UsageError(
            `${w[1]} is a directory of names: unbind its names first, then unbind the directory`,
          );
        }
        const n = k.delete(id);
        out(`deleted ${n} object${n === 1 ? "" : "s"}`);
        // Names of the object and of everything deleted with it (ties) go too.
        for (const b of names.reverse()) {
          if (k.exists(b.id)) continue;
          try {
            this.twz.naming.unbind(b.path);
            out(`unbound ${b.path}`);
          } catch (error) {
            if (!(error instanceof TwzError)) throw error;
          }
        }
        return "continue";
      }
      case "bind": {
        const path = this.#path(w[1], "PATH");
        const id = this.resolve(w[2]);
        this.twz.naming.bind(path, id, { parents: true });
        out(`${path} -> ${formatId(id)}`);
        return "continue";
      }
      case "unbind": {
        const path = this.#path(w[1], "PATH");
        const bound = this.twz.naming.lookup(path);
        if (bound) this.#guard("unbind", path, bound.id, force);
        out(`unbound ${path} (was ${formatId(this.twz.naming.unbind(path))})`);
        return "continue";
      }
      case "rename": {
        const from = this.#path(w[1], "FROM");
        const moved = this.twz.naming.lookup(from);
        if (moved) this.#guard("rename", from, moved.id, force);
        const to = this.#path(w[2], "TO");
        this.twz.naming.rename(from, to, { parents: true });
        out(`${from} -> ${to}`);
        return "continue";
      }
      case "mkdir": {
        const path = this.#path(w[1], "PATH");
        out(formatId(this.twz.naming.mkdir(path, { parents: true })));
        return "continue";
      }
      case "names": {
        for (const b of this.twz.naming.list(w[1] ?? "/")) {
          out(
            `${formatId(b.id)}  ${b.kind === "directory" ? "dir " : "obj "} ${b.name}${
              b.kind === "directory" ? "/" : ""
            }`,
          );
        }
        return "continue";
      }
      case "df": {
        const u = k.usage();
        out(`objects:   ${u.objects} persistent, ${u.volatile} volatile`);
        out(`free:      ${formatSize(u.freeBytes)} of ${formatSize(k.geometry.regionSize)}`);
        out(`table:     ${u.slotsUsed} of ${u.tableSlots} slots in use`);
        return "continue";
      }
      case "crash": {
        const power = this.board.hal.power;
        if (!power) {
          throw new UsageError(
            `the ${this.board.hal.name} HAL cannot simulate a power failure (use --hal sim)`,
          );
        }
        let policy: EvictionPolicy = "strict";
        let seed = 1;
        for (let i = 1; i < w.length; i++) {
          if (w[i] === "--policy" && ["strict", "random", "all"].includes(w[i + 1])) {
            policy = w[++i] as EvictionPolicy;
          } else if (w[i] === "--seed" && /^\d+$/.test(w[i + 1] ?? "")) seed = Number(w[++i]);
          else throw new UsageError(`bad option "${w[i]}" (--policy strict|random|all, --seed N)`);
        }
        k.halt();
        const r = power.powerFail({ policy, seed });
        out(`power failure: ${r.survived} of ${r.pending} unpersisted cache lines survived`);
        this.board.kernel = Kernel.boot(this.board.hal);
        this.bootLog(this.board.kernel);
        return "continue";
      }
      case "reboot":
        await rebootBoard(this.board);
        this.bootLog(this.board.kernel);
        return "continue";
      case "shutdown":
      case "exit":
      case "quit":
        return "shutdown";
      case "kv":
        this.#kvCommand(w, line);
        return "continue";
      case "run":
        throw new UsageError("programs cannot run yet: threads and code objects are not built");
      default:
        throw new UsageError(`unknown command (try "help")`);
    }
  }
}
