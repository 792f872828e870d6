/**
 * The shell's commands for the global object space (docs/GLOBAL.md) —
 * `publish`, `own`, `release` and `global` (this node's status, or `global
 * info OBJ`) — as entries of the command table (`_commands.ts` lists them
 * with the others). They call `@twz/libtwz/global` and only parse and print
 * here; the naming commands (`names`, `bind`, `unbind`, `mkdir`, `rename`)
 * reach the global namespace through libtwz's naming, at `/global/…`.
 *
 * On a system that is not a node (`twz boot` without `--cluster`) every one
 * of them fails with one line: "this system is not in a cluster (…)".
 *
 * @example Publishing a list and handing it over
 * ```text
 * twz> new --size 4096 --name /head
 * twz> publish /head --deep --name /global/lists/demo
 * published 5f… version 1
 * /global/lists/demo -> 5f…
 * twz> global info /global/lists/demo
 * (on another node) twz> own /global/lists/demo --timeout 3000
 * ```
 *
 * @module
 */
import { formatId } from "@twz/kernel/abi";
import type { GlobalInfo } from "@twz/libtwz/global";
import { info, own, publish, release, status } from "@twz/libtwz/global";
import { UsageError } from "./board.ts";
import { count, quoted } from "./_args.ts";
import type { Command } from "./_commands.ts";

const OBJ = {
  name: "OBJ",
  summary: "an object ID (32 hex digits) or a name (/a/b, /global/a/b)",
} as const;

/** "yes" or "no". */
function yesNo(b: boolean): string {
  return b ? "yes" : "no";
}

/** The lines of `global info` (and of `own`'s answer). */
function infoLines(i: GlobalInfo): string[] {
  const lease = i.owner !== null && i.leaseExpiry > 0
    ? ` (lease until ${new Date(i.leaseExpiry).toISOString()})`
    : "";
  return [
    `id:         ${formatId(i.id)}`,
    `published:  ${yesNo(i.published)}`,
    `version:    ${i.version}`,
    `size:       ${i.size}`,
    `owner:      ${i.owner ?? "none"}${lease}`,
    `held here:  ${i.localVersion === 0 ? "no" : `version ${i.localVersion}`}`,
    `owned here: ${yesNo(i.owned)}`,
    `unacked:    ${yesNo(i.unacked)}`,
  ];
}

/** The global-space commands, in the order help lists them. */
export const GLOBAL_COMMANDS: readonly Command[] = [
  {
    spec: {
      name: "publish",
      summary: "put an object into the global space (version 1, owned by this node)",
      options: [
        { name: "--deep", summary: "also every object it reaches through its FOT, transitively" },
        { name: "--name", value: "PATH", summary: "bind it at a global name (/global/…)" },
      ],
      args: [OBJ],
      details: [
        "An object this node owns that is published already gets its current bytes published " +
        "as the next version. Keyed objects take their key object along.",
      ],
    },
    run(sh, p) {
      const name = p.value("--name");
      if (name !== undefined && !/^\/?global\/[^/]/.test(name)) {
        throw new UsageError(
          `--name: ${
            quoted(name)
          } is not a global name (a path under /global/, like /global/lists/demo)`,
        );
      }
      const r = publish(sh.twz, sh.resolve(p.arg("OBJ")), {
        deep: p.has("--deep"),
        name,
      });
      r.ids.forEach((id, k) => sh.io.out(`published ${formatId(id)} version ${r.versions[k]}`));
      if (name !== undefined) sh.io.out(`${name} -> ${formatId(r.ids[0]!)}`);
    },
  },
  {
    spec: {
      name: "own",
      summary: "take ownership of a global object (this node may then write it)",
      options: [{
        name: "--timeout",
        value: "MS",
        summary: "how long to wait for its owner to hand over (default: the lease length)",
      }],
      args: [OBJ],
      details: [
        "An owner that is alive is asked to hand over; one whose lease lapsed loses it at once.",
      ],
    },
    run(sh, p) {
      const t = p.value("--timeout");
      const timeoutMs = t === undefined ? undefined : count(t, "--timeout", 1);
      const i = own(sh.twz, sh.resolve(p.arg("OBJ")), { timeoutMs });
      sh.io.out(`owned ${formatId(i.id)} (version ${i.version})`);
    },
  },
  {
    spec: {
      name: "release",
      summary: "give up ownership of a global object (it stays published)",
      args: [OBJ],
    },
    run(sh, p) {
      const id = sh.resolve(p.arg("OBJ"));
      release(sh.twz, id);
      sh.io.out(`released ${formatId(id)}`);
    },
  },
  {
    spec: {
      name: "global",
      summary: "this node and its cluster; global info OBJ: what the space knows of an object",
      args: [
        { name: "info", optional: true, summary: "the word info, then OBJ" },
        { ...OBJ, optional: true },
      ],
      details: [
        "Without arguments: the node's name, its servers, whether it is connected, the lease, " +
        "and how many global objects it holds, owns and has not had acknowledged yet.",
      ],
    },
    run(sh, p) {
      const what = p.arg("info");
      const out = sh.io.out;
      if (what === undefined) {
        const s = status(sh.twz);
        out(`node:      ${s.node}`);
        out(`servers:   ${s.servers.join(", ")}`);
        out(`connected: ${yesNo(s.connected)}`);
        out(`lease:     ${s.leaseMs} ms`);
        out(`held:      ${s.held} (owned ${s.owned}, unacked ${s.unacked})`);
        return;
      }
      if (what !== "info") {
        throw new UsageError(`unknown command ${quoted(what)} (info; see global --help)`);
      }
      const obj = p.arg("OBJ");
      if (obj === undefined) throw new UsageError("missing OBJ");
      for (const line of infoLines(info(sh.twz, sh.resolve(obj)))) out(line);
    },
  },
];
