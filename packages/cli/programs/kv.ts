/**
 * `kv`: the key-value tool as a program (built in: `run kv put K V`). It
 * works on the same store as the shell's `kv` command — a B-tree map of
 * strings in the object named `/kv` — through the kernel port of its
 * thread.
 *
 * ```
 * kv put KEY VALUE...   set KEY (VALUE: the rest of the arguments, joined by spaces); "ok"
 * kv get KEY            print KEY's value (exit 1: no such key)
 * kv del KEY            delete KEY; "ok" (exit 1: no such key)
 * kv count              how many keys
 * kv scan [FROM [TO]]   KEY<TAB>VALUE for the keys in [FROM, TO), in order
 * ```
 *
 * Exit codes: 0 done, 1 no such key, 2 a usage mistake.
 *
 * @module
 */
import { TwzError } from "@twz/kernel/abi";
import type { Twz } from "@twz/libtwz";
import { BTreeMap } from "@twz/libtwz/btree";
import { codec } from "@twz/libtwz/codec";
import type { ProgramEnv } from "@twz/libtwz/program";

/** The store's object (the shell's `kv` uses the same). */
export const KV_OBJECT = "/kv";

const USAGE = "usage: kv put KEY VALUE | get KEY | del KEY | count | scan [FROM [TO]]";

/**
 * The kv store of a session: the B-tree map in {@linkcode KV_OBJECT}, made
 * (when `create`) if there is none. The shell's `kv` command uses it too.
 *
 * @param twz The session.
 * @param create Make the store when it does not exist.
 * @returns The map, or `undefined` when there is none and `create` is false.
 */
export function kvStore(twz: Twz, create: boolean): BTreeMap<string, string> | undefined {
  if (!twz.naming.exists(KV_OBJECT)) {
    if (!create) return undefined;
    // Make the object and the map in it first, and name it last: a crash
    // or a failure in between leaves at worst an unnamed object, never a
    // name bound to an object without a map.
    const obj = twz.create({ size: 1 << 20 });
    try {
      const map = BTreeMap.create(twz, obj, codec.string, codec.string);
      twz.naming.bind(KV_OBJECT, obj.id);
      return map;
    } catch (error) {
      twz.delete(obj.id);
      throw error;
    }
  }
  return BTreeMap.open(twz, twz.open(KV_OBJECT), codec.string, codec.string);
}

/**
 * The kv tool.
 *
 * @param env The program's environment.
 * @param args Subcommand and its arguments.
 * @returns The exit code.
 */
export default function main(env: ProgramEnv, args: string[]): number {
  try {
    return kv(env, args);
  } catch (error) {
    // What the system refused (no space, a damaged store, read-only) is one
    // line and exit code 1; anything else is a fault, with its stack.
    if (!(error instanceof TwzError)) throw error;
    env.console.error(`kv: ${error.message}`);
    return 1;
  }
}

function kv(env: ProgramEnv, args: string[]): number {
  const out = env.console;
  const [command, key, ...rest] = args;
  const needKey = (): string | undefined => {
    if (key === undefined) out.error(`kv ${command} needs a KEY`);
    return key;
  };
  switch (command) {
    case "put": {
      if (needKey() === undefined) return 2;
      if (rest.length === 0) {
        out.error("kv put needs a VALUE");
        return 2;
      }
      kvStore(env.twz, true)!.set(key!, rest.join(" "));
      out.log("ok");
      return 0;
    }
    case "get": {
      if (needKey() === undefined) return 2;
      const v = kvStore(env.twz, false)?.get(key!);
      if (v === undefined) {
        out.error(`kv: no key "${key}"`);
        return 1;
      }
      out.log(v);
      return 0;
    }
    case "del": {
      if (needKey() === undefined) return 2;
      if (!kvStore(env.twz, false)?.delete(key!)) {
        out.error(`kv: no key "${key}"`);
        return 1;
      }
      out.log("ok");
      return 0;
    }
    case "count":
      out.log(String(kvStore(env.twz, false)?.size ?? 0));
      return 0;
    case "scan": {
      const map = kvStore(env.twz, false);
      if (map === undefined) return 0;
      for (const [k, v] of map.range(key, rest[0])) out.log(`${k}\t${v}`);
      return 0;
    }
    default:
      out.error(command === undefined ? USAGE : `kv: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}
