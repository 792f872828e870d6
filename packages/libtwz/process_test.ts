// A linked list spanning three objects, built in this process and walked by
// name in a new one (Deno.Command running packages/libtwz/testdata/walk_fixture.ts).
import assert from "node:assert/strict";
import { formatId } from "@twz/kernel/abi";
import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";

const Node = struct({ value: u32, label: string(16), next: ptr("self") });

Deno.test("a linked list across three objects is walked by name in a new process", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "libtwz-proc-" });
  const image = `${dir}/list.img`;
  try {
    const twz = await Twz.open({ hal: "sim", image, size: 8 << 20 });
    const objs = [
      twz.create({ name: "/lists/head", size: 4096 }),
      twz.create({ name: "/lists/middle", size: 4096 }),
      twz.create({ size: 4096 }), // the tail has no name: reached only by pointer
    ];
    // Two nodes per object: head -> head2 -> middle -> middle2 -> tail -> tail2.
    const nodes = objs.flatMap((o) => [Node.at(o, o.baseOffset), Node.at(o, o.baseOffset + 64)]);
    nodes.forEach((n, i) => {
      n.value = i * 10;
      n.label = `node ${i}`;
      if (i > 0) nodes[i - 1]!.next = n;
    });
    for (const n of nodes) n.$persist();
    const ids = nodes.map((n) => formatId(n.$id));
    twz.close();

    const cmd = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./testdata/walk_fixture.ts", import.meta.url).pathname, image],
      stdout: "piped",
      stderr: "piped",
    });
    const { code, stdout, stderr } = await cmd.output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    const result = JSON.parse(new TextDecoder().decode(stdout));
    assert.equal(result.formatted, false);
    assert.deepEqual(result.walk.map((n: { value: number }) => n.value), [0, 10, 20, 30, 40, 50]);
    assert.deepEqual(
      result.walk.map((n: { label: string }) => n.label),
      nodes.map((_, i) => `node ${i}`),
    );
    assert.deepEqual(result.walk.map((n: { id: string }) => n.id), ids);
    assert.equal(new Set(ids).size, 3, "three objects");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
