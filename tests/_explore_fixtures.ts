// Images for the explorer's browser tests and screenshots (issue 17): a
// linked list across three objects (examples/global_list.ts's node record:
// a value, a label, and an invariant pointer to the next node through the
// FOT), the kv store, and a hub object with 1,000 FOT neighbours.
//
// Run it to make one by hand (tools/explore_screenshot.ts does):
//   deno run -A tests/_explore_fixtures.ts /tmp/explore.img
import { formatId, type ObjID, Prot } from "@twz/kernel/abi";
import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";
import { BTreeMap } from "@twz/libtwz/btree";
import { codec } from "@twz/libtwz/codec";
import { userEnv } from "./_twz.ts";

/**
 * The list's node record (examples/global_list.ts's `ListNode`), named so
 * that each node object carries its layout descriptor and the explorer
 * shows its fields typed.
 */
export const ListNode = struct({ value: u32, label: string(16), next: ptr("self") }, {
  name: "ListNode",
});

/** The values and labels of the list, head first. */
export const LIST = [
  { value: 10, label: "head" },
  { value: 20, label: "middle" },
  { value: 30, label: "tail" },
] as const;

/** The kv store's pairs. */
export const KV_PAIRS: ReadonlyArray<readonly [string, string]> = [
  ["colour", "green"],
  ["greeting", "hello, explorer"],
  ["answer", "42"],
];

/** How many objects the hub points at. */
export const HUB_NEIGHBOURS = 1000;

/** Where things are in an explorer fixture image. */
export interface ExplorerFixture {
  /** The image file. */
  image: string;
  /** The list's objects, head first (32-hex IDs, as the explorer shows them). */
  list: [string, string, string];
  /** The path naming the head. */
  headPath: string;
  /** An object tied to the head. */
  annex: string;
  /** The hub object. */
  hub: string;
  /** The path naming the hub. */
  hubPath: string;
  /** The kv store object (`/kv`). */
  kv: string;
}

/** Size of the fixture image: room for ~1,000 small objects and the table slots they need. */
export const FIXTURE_IMAGE_SIZE = 32 << 20;

/**
 * Make the fixture image at `image` (it must not exist): `/demo/list` names
 * the head of a three-node list (middle and tail have no names: they are
 * reached only by the pointers), `/kv` the kv store (a B-tree map of
 * strings, as the shell's `kv` makes it), `/demo/hub` an object whose FOT
 * names 1,000 small objects; one more, unnamed, is tied to the head.
 *
 * @param image The new image file.
 * @param o `hub`: make the hub and its neighbours (default true).
 * @returns The IDs and paths.
 */
export async function makeExplorerImage(
  image: string,
  o: { hub?: boolean } = {},
): Promise<ExplorerFixture> {
  const twz = await Twz.open({ hal: "sim", image, size: FIXTURE_IMAGE_SIZE });
  try {
    twz.naming.mkdir("/demo");
    const objs = LIST.map(() => twz.create({ size: 4096, layout: ListNode }));
    const nodes = objs.map((obj) => ListNode.at(obj, obj.baseOffset));
    nodes.forEach((n, i) => {
      n.value = LIST[i]!.value;
      n.label = LIST[i]!.label;
      n.next = nodes[i + 1] ?? null; // an FOT entry naming the next object by ID
      n.$persist();
    });
    twz.naming.bind("/demo/list", objs[0]!.id);
    // Tied to the head: deleting the head deletes it (a tie edge in the graph).
    const annex = twz.create({
      size: 1024,
      fot: { entries: 0, namesSize: 0 },
      ties: [objs[0]!.id],
    });

    const kvObj = twz.create({ size: 1 << 20 });
    const kv = BTreeMap.create(twz, kvObj, codec.string, codec.string);
    for (const [k, v] of KV_PAIRS) kv.set(k, v);
    twz.naming.bind("/kv", kvObj.id);

    let hub: ObjID = 0n;
    if (o.hub !== false) {
      const hubObj = twz.create({
        size: 256 << 10,
        fot: { entries: HUB_NEIGHBOURS + 24, namesSize: 64 },
      });
      for (let i = 0; i < HUB_NEIGHBOURS; i++) {
        const leaf = twz.create({ size: 1024, fot: { entries: 0, namesSize: 0 } });
        hubObj.fotIndex(leaf.id, Prot.Read);
      }
      twz.naming.bind("/demo/hub", hubObj.id);
      hub = hubObj.id;
    }
    return {
      image,
      list: objs.map((obj) => formatId(obj.id)) as [string, string, string],
      headPath: "/demo/list",
      annex: formatId(annex.id),
      hub: formatId(hub),
      hubPath: "/demo/hub",
      kv: formatId(kvObj.id),
    };
  } finally {
    twz.close();
  }
}

/** A `twz explore` subprocess and where its page is. */
export interface ExplorerProcess {
  /** The URL it printed (with `?token=`). */
  url: string;
  /** `http://127.0.0.1:PORT`. */
  origin: string;
  /** Its port. */
  port: number;
  /** The token. */
  token: string;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then wait for the exit (SIGKILL after 10 s); the exit code. */
  stop(): Promise<number>;
}

const URL_LINE = /twz: explorer on (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]+))/;

/**
 * Start `twz explore --image IMAGE --port 0 ARGS` and wait (at most
 * `timeoutMs`) for the line naming its URL.
 *
 * @param main The `twz` entry file (tests/_twz.ts's `MAIN`).
 * @param image The image.
 * @param args More arguments.
 * @param timeoutMs How long to wait for the URL line.
 * @returns The running explorer.
 * @throws {Error} It ended or printed no URL line in time (with what it printed).
 */
export async function startExplorer(
  main: string,
  image: string,
  args: string[] = [],
  timeoutMs = 90_000,
): Promise<ExplorerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      main,
      "explore",
      "--image",
      image,
      "--port",
      "0",
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: userEnv(),
    clearEnv: true,
  }).spawn();
  let text = "";
  let found: (m: RegExpMatchArray) => void = () => {};
  const urlSeen = new Promise<RegExpMatchArray>((resolve) => found = resolve);
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = text.match(URL_LINE);
      if (m) found(m);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = child.status.then((s) => `it exited with code ${s.code}`);
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no URL line in ${timeoutMs} ms`), timeoutMs);
  });
  const first = await Promise.race([urlSeen, ended, late]);
  clearTimeout(timer);
  let stopped: Promise<number> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const kill = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      const status = await child.status;
      clearTimeout(kill);
      await drained;
      return status.code;
    })();
  if (typeof first === "string") {
    await stop();
    throw new Error(`twz explore: ${first}; it printed:\n${text}`);
  }
  return {
    url: first[1]!,
    origin: `http://127.0.0.1:${first[2]}`,
    port: Number(first[2]),
    token: first[3]!,
    output: () => text,
    stop,
  };
}

if (import.meta.main) {
  const path = Deno.args[0];
  if (!path) {
    console.error("usage: _explore_fixtures.ts IMAGE (prints where things are, as one JSON line)");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await makeExplorerImage(path)));
}
