import assert from "node:assert/strict";
import { ErrorCode, formatId, TwzError } from "@twz/kernel/abi";
import { Kernel } from "@twz/kernel";
import { plugin } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { attachThreads, spawnProgram, stopThreads } from "../run.ts";
import { ExplorerError, ExplorerModel, type OpenedSystem, openSystem } from "./model.ts";
import { KV, makeFixture, MAP } from "./_fixture.ts";

const hex = formatId;
const assertEquals = (actual: unknown, expected: unknown, message?: string) =>
  assert.deepEqual(actual, expected, message);

/** What `fn` throws, checked to be a `T`. */
function assertThrows<T extends Error>(fn: () => unknown, type: new (...a: never[]) => T): T {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    return error as T;
  }
  throw new assert.AssertionError({ message: `expected a ${type.name} to be thrown` });
}

async function assertRejects<T extends Error>(
  fn: () => Promise<unknown>,
  type: new (...a: never[]) => T,
): Promise<T> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    return error as T;
  }
  throw new assert.AssertionError({ message: `expected a ${type.name} to be thrown` });
}

async function withModel(
  fn: (m: ExplorerModel, f: Awaited<ReturnType<typeof makeFixture>>) => void | Promise<void>,
  o: { write?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  try {
    const f = await makeFixture(`${dir}/twz.img`);
    const sys = await openSystem({ image: f.image, write: o.write === true });
    try {
      const model = new ExplorerModel(sys);
      await model.refresh();
      await fn(model, f);
    } finally {
      sys.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openSystem() refuses a missing image with one line and creates nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const e = await assertRejects(() => openSystem({ image: `${dir}/none.img` }), ExplorerError);
    assertEquals(e.message, `no image at ${dir}/none.img`);
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ExplorerModel reads a read-only boot: system, names, objects", () =>
  withModel((m, f) => {
    const sys = m.system();
    assertEquals([sys.source, sys.readOnly, sys.writable, sys.hal], ["boot", true, false, "sim"]);
    assertEquals(sys.context, "admin (the shell's session)");
    assertEquals(sys.objects, m.sys.port.list().length);

    const root = m.names("/").entries.map((e) => [e.name, e.dir]);
    for (const e of [["list", true], ["kv", false], ["map", false], ["bad", false]]) {
      assert.ok(root.some((r) => r[0] === e[0] && r[1] === e[1]), `${e[0]} in ${root}`);
    }
    assertEquals(m.names("/list").entries.map((e) => [e.name, e.id]), [
      ["a", hex(f.a)],
      ["b", hex(f.b)],
      ["c", hex(f.c)],
    ]);
    assertEquals(assertThrows(() => m.names("/nope"), ExplorerError).status, 404);
    assertEquals(assertThrows(() => m.names("/kv"), ExplorerError).status, 400);

    const all = m.objects({ offset: 0, limit: 1000 });
    assertEquals(all.total, sys.objects);
    const ids = all.rows.map((r) => r.id);
    assertEquals(ids, [...ids].sort(), "sorted by ID");
    const row = (id: bigint) => all.rows.find((r) => r.id === hex(id))!;
    assertEquals(row(f.a).name, "/list/a");
    assertEquals([row(f.a).fot, row(f.b).fot, row(f.c).fot], [1, 1, 0]);
    assertEquals([row(f.a).ties, row(f.b).ties], [1, 0]);
    assertEquals(row(f.kv).kind, "btree");
    assertEquals(row(f.map).kind, "hashmap");
    assertEquals(row(f.vec).kind, "vector");
    assertEquals(row(f.tied).name, null);
    assertEquals(row(f.secret).prot, "---");
    assertEquals(all.rows.find((r) => r.name === "/")?.kind, "directory");
    assertEquals(all.rows.find((r) => r.name === "/list")?.kind, "directory");

    // Paging, sorting, filtering.
    const page = m.objects({ offset: 2, limit: 3 });
    assertEquals(page.rows.map((r) => r.id), ids.slice(2, 5));
    const byName = m.objects({ offset: 0, limit: 1000, sort: "name" }).rows.map((r) => r.name);
    const named = byName.filter((n) => n !== null);
    assertEquals(named.slice(0, 2), ["/", "/.layouts"]);
    assertEquals(named, [...named].sort(), "named objects by name");
    const unnamed = byName.slice(named.length);
    assert.ok(unnamed.length >= 2 && unnamed.every((n) => n === null), "then the unnamed ones");
    assertEquals(byName.length, all.total);
    const filtered = m.objects({ offset: 0, limit: 10, filter: "/list/" });
    assertEquals(filtered.rows.map((r) => r.name).sort(), ["/list/a", "/list/b", "/list/c"]);
    assertEquals(filtered.total, 3);
    assertEquals(
      m.objects({ offset: 0, limit: 5, filter: hex(f.b).slice(4, 20) }).rows[0]?.id,
      hex(f.b),
    );
    assertEquals(
      assertThrows(() => m.objects({ offset: -1, limit: 5 }), ExplorerError).status,
      400,
    );
    assertEquals(
      assertThrows(() => m.objects({ offset: 0, limit: 5000 }), ExplorerError).status,
      400,
    );
  }));

Deno.test("ExplorerModel.object() shows meta-info, the FOT with targets and names, ties", () =>
  withModel((m, f) => {
    const a = m.object(f.a);
    assertEquals(a.names, ["/list/a"]);
    assertEquals(a.fot.length, 1);
    assertEquals(a.fot[0]!.index, 1);
    assertEquals(a.fot[0]!.target, hex(f.b));
    assertEquals(a.fot[0]!.targetName, "/list/b");
    assertEquals(a.fot[0]!.problem, null);
    assert.ok(a.fot[0]!.flags.includes("valid"));
    assertEquals(a.dependents, 1);
    assertEquals([a.dependentIds, a.tiedTo], [[hex(f.tied)], []]);
    const tied = m.object(f.tied);
    assertEquals([tied.tiedTo, tied.dependentIds, tied.dependents], [[hex(f.a)], [], 0]);
    assertEquals([m.object(f.b).tiedTo, m.object(f.b).dependentIds], [[], []]);
    assertEquals(a.meta?.fotCount, 1);
    assertEquals(a.metaProblem, null);
    assertEquals(m.object(f.c).fot, []);
    const kv = m.object(f.kv);
    assertEquals([kv.kind, kv.codecs], ["btree", "string/string"]);
    const bad = m.object(f.bad);
    assertEquals(bad.kind, "hashmap");
    assert.ok(bad.structureProblem !== null);
    assertEquals(assertThrows(() => m.object(0x1234n << 64n), ExplorerError).status, 404);
  }));

Deno.test("ExplorerModel.bytes() reads a window and refuses offsets beyond the object", () =>
  withModel((m, f) => {
    const b = m.bytes(f.a, 256, 16);
    assertEquals([b.offset, b.length, b.size], [256, 16, 4096]);
    // value u32 = 1, then the label "one" (NUL-padded).
    assertEquals(b.hex.slice(0, 8), "01000000");
    assert.ok(b.hex.includes("6f6e65"), b.hex);
    assertEquals(m.bytes(f.a, 4090, 100).length, 6, "cut at the end of the object");
    assertEquals(m.bytes(f.a, 4090, 100).records, [], "no record there");
    assertEquals(assertThrows(() => m.bytes(f.a, 4096, 16), ExplorerError).status, 400);
    assertEquals(assertThrows(() => m.bytes(f.a, 0, 1 << 20), ExplorerError).status, 400);
    assertEquals(assertThrows(() => m.bytes(0x99n << 64n, 0, 16), ExplorerError).status, 404);
    const e = assertThrows(() => m.writeBytes(f.a, 256, "02000000"), ExplorerError);
    assertEquals([e.status, e.message], [403, "the explorer is read-only (start it with --write)"]);
  }));

Deno.test("ExplorerModel types a described object's records, pointers resolved to their targets", () =>
  withModel((m, f) => {
    const view = m.object(f.a);
    assertEquals(view.kind, "struct:ListNode");
    assertEquals(view.layout?.name, "ListNode");
    assertEquals([view.layout?.offset, view.layout?.count], [256, 1]);
    const rec = m.bytes(f.a, 0, 1024).records;
    assertEquals(rec.length, 1);
    assertEquals([rec[0]!.struct, rec[0]!.offset], ["ListNode", 256]);
    const field = (name: string) => rec[0]!.fields.find((x) => x.name === name)!;
    assertEquals([field("value").value, field("label").value], [1, "one"]);
    const next = field("next");
    assertEquals(next.type, "ptr");
    assertEquals(next.ptr?.fot, 1);
    assertEquals(next.ptr?.offset, 256);
    assertEquals([next.ptr?.target, next.ptr?.targetName, next.ptr?.null], [
      hex(f.b),
      "/list/b",
      false,
    ]);
    const tail = m.bytes(f.c, 256, 32).records[0]!;
    assertEquals(tail.fields.find((x) => x.name === "next")?.ptr?.null, true);
    assertEquals(tail.fields.find((x) => x.name === "label")?.value, "three");
    const layouts = m.names("/.layouts").entries;
    assertEquals(layouts.length, 1);
    assertEquals(m.object(BigInt(`0x${layouts[0]!.id}`)).kind, "layout");
    assertEquals(m.object(f.kv).layout, null);
  }));

Deno.test("ExplorerModel.collection() pages the kv store, a hash map and a vector by their codecs", () =>
  withModel((m, f) => {
    const kv = m.collection(f.kv, { offset: 0, limit: 50 });
    assertEquals([kv.kind, kv.codecs, kv.total], ["btree", "string/string", 3]);
    assertEquals(kv.rows, Object.entries(KV).map(([key, value]) => ({ key, value })));
    assertEquals(m.collection(f.kv, { offset: 1, limit: 1 }).rows, [{ key: "beta", value: "2" }]);
    assertEquals(m.collection(f.kv, { offset: 9, limit: 5 }).rows, []);
    const map = m.collection(f.map, { offset: 0, limit: 50 });
    assertEquals([map.kind, map.codecs, map.total], ["hashmap", "string/int", 5]);
    assertEquals(
      Object.fromEntries(map.rows.map((r) => [r.key, Number(r.value)])),
      { ...MAP },
    );
    const two = [
      ...m.collection(f.map, { offset: 0, limit: 2 }).rows,
      ...m.collection(f.map, { offset: 2, limit: 3 }).rows,
    ];
    assertEquals(two.map((r) => r.key).sort(), Object.keys(MAP).sort(), "pages do not overlap");
    const vec = m.collection(f.vec, { offset: 0, limit: 50 });
    assertEquals([vec.kind, vec.codecs, vec.rows.map((r) => r.value)], ["vector", "int", [
      "10",
      "20",
      "30",
    ]]);
    const bad = assertThrows(() => m.collection(f.bad, { offset: 0, limit: 5 }), TwzError);
    assertEquals(bad.code, ErrorCode.ObjectDamaged);
    assertEquals(
      assertThrows(() => m.collection(f.a, { offset: 0, limit: 5 }), ExplorerError).status,
      400,
    );
  }));

Deno.test("ExplorerModel.neighbours() follows FOT entries along the list, and ties both ways", () =>
  withModel((m, f) => {
    const a = m.neighbours(f.a);
    assertEquals(a.node, {
      id: hex(f.a),
      name: "/list/a",
      kind: "struct:ListNode",
      size: 4096,
      degree: 2,
    });
    assertEquals(a.edges, [
      { from: hex(f.a), to: hex(f.b), kind: "fot", label: "fot 1" },
      { from: hex(f.tied), to: hex(f.a), kind: "tie", label: "tie" },
    ]);
    assertEquals(m.neighbours("/list/b").edges.map((e) => e.to), [hex(f.c)]);
    assertEquals(m.neighbours(f.c).edges, []);
    const tied = m.neighbours(f.tied);
    assertEquals(tied.edges, [{ from: hex(f.tied), to: hex(f.a), kind: "tie", label: "tie" }]);
    assertEquals(tied.node.degree, 1);
  }));

Deno.test("ExplorerModel under a context shows what it may not read as no access", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  try {
    const f = await makeFixture(`${dir}/twz.img`);
    const sys = await openSystem({ image: f.image, write: true });
    try {
      const ctx = sys.port.ctxCreate();
      const m = new ExplorerModel(sys, { context: ctx });
      await m.refresh();
      assertEquals(m.system().contextId, hex(ctx));
      const q = { offset: 0, limit: 1000 };
      assertEquals(
        m.objects(q).rows.find((r) => r.id === hex(f.a))?.access,
        "no access",
        "not fetched",
      );
      await m.prepareObjects(q);
      const rows = m.objects(q).rows;
      assertEquals(rows.find((r) => r.id === hex(f.secret))?.access, "no access");
      assertEquals(rows.find((r) => r.id === hex(f.a))?.access, "rw-");
      assertEquals(assertThrows(() => m.bytes(f.secret, 0, 16), ExplorerError).status, 403);
      const admin = new ExplorerModel(sys);
      await admin.refresh();
      assertEquals(admin.object(f.secret).access, "r--");
      assertEquals(admin.bytes(f.secret, 0, 16).length, 16, "the admin reads every object");
    } finally {
      sys.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ExplorerModel with --write writes bytes durably and the fingerprint follows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  try {
    const f = await makeFixture(`${dir}/twz.img`);
    let sys = await openSystem({ image: f.image, write: true });
    try {
      const m = new ExplorerModel(sys);
      const before = m.fingerprint(f.a);
      assertEquals(m.fingerprint(f.a), before, "stable while nothing changes");
      const w = m.writeBytes(f.a, 256, "2a000000");
      assertEquals(w.hex, "2a000000");
      assert.ok(m.fingerprint(f.a) !== before, "the watched object's bytes changed");
      const unwatched = m.fingerprint();
      sys.twz.create({ name: "/new", size: 4096 });
      assert.ok(m.fingerprint() !== unwatched, "a new object and name");
      assertEquals(
        assertThrows(() => m.writeBytes(f.a, 4095, "0102"), ExplorerError).status,
        400,
      );
    } finally {
      sys.close();
    }
    sys = await openSystem({ image: f.image });
    try {
      const m = new ExplorerModel(sys);
      assertEquals(m.bytes(f.a, 256, 4).hex, "2a000000", "persisted");
      assertEquals(m.names("/").entries.some((e) => e.name === "new"), true);
    } finally {
      sys.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ExplorerModel.resolve() takes IDs and paths, one line for neither", () =>
  withModel((m, f) => {
    assertEquals(m.resolve("/list/c"), f.c);
    assertEquals(m.resolve(hex(f.c)), f.c);
    assertEquals(assertThrows(() => m.resolve("list"), ExplorerError).status, 400);
    assertEquals(assertThrows(() => m.resolve("/zzz"), ExplorerError).status, 404);
  }));

Deno.test("ExplorerModel.threads() lists a running program, then how it ended", async () => {
  const hal = await plugin.open({ size: 16 << 20 });
  const kernel = Kernel.boot(hal, { formatBlank: true });
  const b = { hal, kernel };
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  const twz = Twz.attach(kernel.port());
  try {
    const nap = `${dir}/napper.ts`;
    Deno.writeTextFileSync(
      nap,
      `import type { ProgramEnv } from "@twz/libtwz/program";
export default async (env: ProgramEnv) => {
  for (;;) { await new Promise((r) => setTimeout(r, 10)); env.port.threadYield(); }
};
`,
    );
    const info = await spawnProgram(b, nap, [], { console: () => {} });
    const sys: OpenedSystem = {
      port: kernel.port(),
      twz,
      source: "boot",
      readOnly: true,
      image: "(anonymous)",
      hal: "sim",
      close() {},
    };
    const m = new ExplorerModel(sys);
    await m.refresh();
    const before = m.fingerprint();
    let row = m.threads().find((t) => t.tid === info.tid)!;
    for (let i = 0; i < 100 && row.state === "starting"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = m.threads().find((t) => t.tid === info.tid)!;
    }
    assertEquals(row.name, "napper");
    assert.ok(row.state === "running" || row.state === "sleeping", row.state);
    assertEquals([row.exitCode, row.fault, row.ended, row.id], [null, null, null, hex(info.id)]);
    const obj = m.objects({ offset: 0, limit: 1000 }).rows.find((r) => r.id === hex(info.id));
    assertEquals([obj?.kind, obj?.name], ["thread", `/proc/${info.tid}`]);

    const { manager } = attachThreads(b);
    manager.kill(info.tid);
    await manager.wait(info.tid);
    const ended = m.threads().find((t) => t.tid === info.tid)!;
    assertEquals([ended.state, ended.exitCode], ["exited", 137]);
    assert.match(ended.fault ?? "", /^killed: /);
    assert.ok(ended.ended !== null && ended.ended >= ended.started);
    assert.ok(m.fingerprint() !== before, "a thread ended");
  } finally {
    await stopThreads(b);
    twz.close();
    kernel.shutdown();
    hal.close();
    await Deno.remove(dir, { recursive: true });
  }
});
