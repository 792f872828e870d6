/**
 * `twz graph` as a user runs it: a subprocess running `twz`
 * (packages/cli/main.ts) on a real image holding a linked list across three
 * objects, each carrying the `ListNode` layout descriptor.
 */
import assert from "node:assert/strict";
import { formatId } from "@twz/kernel/abi";
import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";

const ListNode = struct({ value: u32, label: string(16), next: ptr("self") }, {
  name: "ListNode",
});

/** `twz graph ARGS` in a subprocess (packages/cli/main.ts, as `twz` runs), RUST_BACKTRACE unset. */
async function twzGraph(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const env = Deno.env.toObject();
  delete env.RUST_BACKTRACE;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "graph", ...args],
    cwd: new URL("../../..", import.meta.url).pathname,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** One line on stderr, no stack trace, the exit code `code`. */
function oneLine(r: { code: number; stderr: string }, code: number, what: RegExp): void {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line, not:\n${r.stderr}`);
  assert.match(lines[0]!, /^twz: /);
  assert.match(lines[0]!, what);
  assert.ok(!/\bat .*\.ts:\d+/.test(r.stderr) && !r.stderr.includes("backtrace"), r.stderr);
}

interface ListImage {
  dir: string;
  image: string;
  ids: [string, string, string];
}

/** An image with `/demo/list` → b → c (b and c unnamed), each node in its own object. */
async function listImage(): Promise<ListImage> {
  const dir = await Deno.makeTempDir({ prefix: "twz-graph-" });
  const image = `${dir}/twz.img`;
  const twz = await Twz.open({ hal: "sim", image, size: 16 << 20 });
  try {
    twz.naming.mkdir("/demo");
    const objs = [0, 1, 2].map((i) =>
      twz.create({ size: 4096, layout: ListNode, ...(i === 0 ? { name: "/demo/list" } : {}) })
    );
    const nodes = objs.map((o) => ListNode.at(o, o.baseOffset));
    nodes.forEach((n, i) => {
      n.value = 10 * (i + 1);
      n.label = ["head", "middle", "tail"][i]!;
      n.next = nodes[i + 1] ?? null;
      n.$persist();
    });
    return { dir, image, ids: objs.map((o) => formatId(o.id)) as [string, string, string] };
  } finally {
    twz.close();
  }
}

let shared: Promise<ListImage> | undefined;
const image = () => shared ??= listImage();

Deno.test({
  name: "twz graph writes the list across three objects as DOT, JSON and SVG",
  async fn() {
    const { image: img, ids: [a, b, c] } = await image();
    const dot = await twzGraph(["/demo/list", "--image", img, "--depth", "3"]);
    assert.equal(dot.code, 0, dot.stderr);
    assert.equal(dot.stderr, "");
    assert.match(dot.stdout, /^digraph twz \{/);
    for (const id of [a, b, c]) assert.ok(dot.stdout.includes(`"${id}" [label=`), `node ${id}`);
    assert.ok(dot.stdout.includes(`"${a}" -> "${b}" [label="fot 1"];`), dot.stdout);
    assert.ok(dot.stdout.includes(`"${b}" -> "${c}" [label="fot 1"];`), dot.stdout);
    assert.equal(dot.stdout.match(/ -> /g)?.length, 2, "two edges");
    assert.ok(dot.stdout.includes("/demo/list"), "the head's name");

    // The default depth is one hop; an ID names the root as a path does.
    const one = await twzGraph([a, "--image", img, "--format", "json"]);
    assert.equal(one.code, 0, one.stderr);
    const g1 = JSON.parse(one.stdout);
    assert.deepEqual(g1.nodes.map((n: { id: string }) => n.id), [a, b]);
    assert.deepEqual(g1.edges, [{ from: a, to: b, kind: "fot", label: "fot 1" }]);
    assert.equal(g1.truncated, false);
    assert.equal(g1.nodes[0].name, "/demo/list");
    assert.equal(g1.nodes[1].name, null);
    assert.equal(g1.nodes[0].kind, "struct:ListNode", "the kind from the layout descriptor");
    assert.equal(g1.nodes[0].size, 4096);

    const json = await twzGraph(["/demo/list", "--image", img, "--depth=2", "--format=json"]);
    const g = JSON.parse(json.stdout);
    assert.deepEqual(g.nodes.map((n: { id: string }) => n.id), [a, b, c]);
    assert.deepEqual(g.edges.map((e: { from: string; to: string }) => [e.from, e.to]), [
      [a, b],
      [b, c],
    ]);

    const out = `${(await image()).dir}/list.svg`;
    const svg = await twzGraph([
      "/demo/list",
      "--image",
      img,
      "--depth",
      "3",
      "--format",
      "svg",
      "--output",
      out,
    ]);
    assert.equal(svg.code, 0, svg.stderr);
    assert.equal(svg.stdout, "", "written to the file, not stdout");
    const text = await Deno.readTextFile(out);
    assert.match(text, /<svg[\s>]/);
    for (const id of [a, b, c]) assert.ok(text.includes(id), `node ${id} in the SVG`);
  },
});

Deno.test({
  name: "twz graph: a bad OBJ, a bad --depth, a missing image: one line, non-zero exit",
  async fn() {
    const { image: img, dir } = await image();
    oneLine(await twzGraph(["/no/such", "--image", img]), 1, /\/no\/such: .*no object is named/i);
    oneLine(
      await twzGraph(["0123456789abcdef0123456789abcdef", "--image", img]),
      1,
      /no object/,
    );
    oneLine(await twzGraph(["list", "--image", img]), 2, /neither an object ID .* nor a path/);
    oneLine(await twzGraph(["/demo/list", "--image", img, "--depth", "x"]), 2, /--depth/);
    oneLine(await twzGraph(["/demo/list", "--image", img, "--depth", "-1"]), 2, /--depth/);
    oneLine(await twzGraph(["/demo/list", "--image", img, "--depth", "65"]), 2, /too deep/);
    oneLine(await twzGraph(["/demo/list", "--image", img, "--format", "png"]), 2, /--format/);
    oneLine(await twzGraph(["--image", img]), 2, /missing OBJ/);
    const missing = `${dir}/absent.img`;
    oneLine(await twzGraph(["/demo/list", "--image", missing]), 3, /no image at .*absent\.img/);
    assert.equal(
      await Deno.stat(missing).then(() => true, () => false),
      false,
      "the image was not created",
    );
    oneLine(
      await twzGraph(["/demo/list", "--image", img, "--output", `${dir}/no/such/dir/g.dot`]),
      1,
      /cannot write/,
    );
  },
});

Deno.test({
  name: "twz graph --format svg without Graphviz names apt-get install graphviz",
  async fn() {
    const { image: img } = await image();
    const env = Deno.env.get("TWZ_DOT");
    Deno.env.set("TWZ_DOT", "/nonexistent/dot"); // inherited by the subprocess
    try {
      oneLine(
        await twzGraph(["/demo/list", "--image", img, "--format", "svg"]),
        1,
        /apt-get install graphviz/,
      );
    } finally {
      if (env === undefined) Deno.env.delete("TWZ_DOT");
      else Deno.env.set("TWZ_DOT", env);
    }
  },
});

Deno.test({
  name: "twz graph: clean up the test image",
  async fn() {
    if (shared !== undefined) await Deno.remove((await shared).dir, { recursive: true });
  },
});
