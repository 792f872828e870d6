// Damage to every libtwz structure header — the kernel root object's naming
// record, naming directories, the B-tree (the shell's kv store), hash map,
// vector and queue headers, heap headers, the meta-info and FOT geometry —
// is reported by the deep check naming the object and the structure, and
// using the damaged structure throws a TwzError (never a raw RangeError,
// never a hang: every use runs in a worker under a timeout).
//
// Also: create-and-name is failure-atomic (and a crash in between is swept
// by repair), volatile objects cannot be named or pointed at from persistent
// ones, and the scanner finds a lost naming root and kv store again. (The
// shell's refusals are in packages/cli/shell_system_objects_test.ts.)
import assert from "node:assert/strict";
import { Kernel, type ObjID } from "@twz/kernel";
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  META_OFFSET,
  MetaField,
  TwzError,
} from "@twz/kernel/abi";
import { openSim, openSimFromBytes, plugin } from "@twz/hal-sim";
import { ptr, struct, Twz, u32 } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { BTreeMap } from "@twz/libtwz/btree";
import { HashMap } from "@twz/libtwz/hashmap";
import { Vector } from "@twz/libtwz/vector";
import { Queue } from "@twz/libtwz/queue";
import { META_PENDING_NAME } from "./_meta.ts";
import {
  bindLostFound,
  bindRecovered,
  checkObjects,
  findRootDirCandidate,
  reattachNamingRoot,
  repairDirectoryHeader,
  repairObjects,
  scanStructures,
} from "@twz/libtwz/check";
import { decodeSuperblock, findSlotOffset, SlotField } from "@twz/kernel/format";
import { Heap } from "@twz/libtwz/heap";
import { transaction } from "@twz/libtwz/tx";
import type { DamageJob, DamageResult } from "./testdata/damage_worker.ts";

/** Where collections lay out their heap (after the base's root words). */
const HEAP_AT = (BASE_OFFSET + 64 + 63) & ~63;

interface Fixture {
  bytes: Uint8Array;
  root: ObjID;
  rootDir: ObjID;
  data: ObjID;
  kv: ObjID;
  map: ObjID;
  vec: ObjID;
  q: ObjID;
  a: ObjID;
  b: ObjID;
}

/** An image with names, a kv B-tree, a hash map, a vector, a queue and FOT entries. */
function makeFixture(): Fixture {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  const kvObj = twz.create({ name: "/kv", size: 1 << 20 });
  const kv = BTreeMap.create(twz, kvObj, codec.string, codec.string);
  for (let i = 0; i < 100; i++) kv.set(`k${i}`, `v${i}`); // two levels
  const mapObj = twz.create({ name: "/data/map", size: 1 << 20 });
  const map = HashMap.create(twz, mapObj, codec.string, codec.int);
  for (let i = 0; i < 300; i++) map.set(`key-${i}`, i);
  const vecObj = twz.create({ name: "/data/vec", size: 65536 });
  const vec = Vector.create(twz, vecObj, codec.int);
  for (let i = 0; i < 10; i++) vec.push(i);
  const qObj = twz.create({ name: "/data/q", size: 65536 });
  const q = Queue.create(twz, qObj, codec.string);
  for (const s of ["a", "b", "c"]) q.push(s);
  const a = twz.create({ name: "/a", size: 65536 });
  const b = twz.create({ name: "/b", size: 4096 });
  a.fotIndex(b.id);
  a.fotIndex({ name: "/b" });
  const fx = {
    root: kernel.rootObjectId(),
    rootDir: twz.naming.rootId,
    data: twz.naming.resolve("/data"),
    kv: kvObj.id,
    map: mapObj.id,
    vec: vecObj.id,
    q: qObj.id,
    a: a.id,
    b: b.id,
  };
  kernel.shutdown();
  const bytes = hal.region.bytes.slice();
  hal.close();
  return { bytes, ...fx };
}

const fx = makeFixture();

/** A copy of the fixture with `mutate` applied to object `id`'s bytes. */
function damaged(id: ObjID, mutate: (v: DataView, size: number) => void): Uint8Array {
  const hal = openSimFromBytes(fx.bytes);
  const kernel = Kernel.boot(hal);
  const m = kernel.map(id);
  mutate(m.view, m.bytes.length);
  m.persist(0, m.bytes.length);
  kernel.shutdown();
  const bytes = hal.region.bytes.slice();
  hal.close();
  return bytes;
}

const WORKER = new URL("./testdata/damage_worker.ts", import.meta.url);

/** One worker, loaded once and reused; replaced after a job that hung. */
let worker: Promise<Worker> | undefined;

function loadWorker(): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { type: "module" });
    w.onmessage = (e) => {
      if (e.data === "ready") resolve(w);
    };
    w.onerror = (e) => {
      e.preventDefault();
      w.terminate();
      reject(new Error(`worker failed to load: ${e.message}`));
    };
  });
}

/**
 * Check and use a damaged image in the worker; fail after `ms` (a hang: the
 * worker is terminated, so the test ends).
 */
async function inWorker(job: DamageJob, ms = 15_000): Promise<DamageResult> {
  const w = await (worker ??= loadWorker());
  return new Promise<DamageResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      w.terminate();
      worker = undefined;
      reject(new Error(`${job.op} on damaged ${job.target} did not finish in ${ms} ms (a hang)`));
    }, ms);
    w.onmessage = (e: MessageEvent<DamageResult>) => {
      clearTimeout(timer);
      resolve(e.data);
    };
    w.onerror = (e) => {
      clearTimeout(timer);
      e.preventDefault();
      w.terminate();
      worker = undefined;
      reject(new Error(`worker failed: ${e.message}`));
    };
    w.postMessage(job);
  });
}

/** End the worker (last test). */
async function stopWorker(): Promise<void> {
  if (worker) (await worker).terminate();
  worker = undefined;
}

interface Case {
  /** What is damaged, and how. */
  what: string;
  /** The object damaged. */
  id: ObjID;
  mutate: (v: DataView, size: number) => void;
  /** The object the finding must name (default: `id`). */
  names?: ObjID;
  /** The finding's area and message. */
  area: string;
  message: RegExp;
  /** The use, and its target (default: `id`). */
  op: string;
  target?: string;
  /** Error codes the use may give (default: ObjectDamaged). */
  codes?: number[];
  /** The use may also succeed (damage libtwz copes with; only the deep check must see it). */
  mayWork?: boolean;
}

/** Run damage cases: each is reported (object, structure) and its use is a TwzError. */
async function runCases(cases: Case[]): Promise<void> {
  for (const c of cases) {
    const r = await inWorker({
      bytes: damaged(c.id, c.mutate),
      op: c.op,
      target: c.target ?? formatId(c.id),
    });
    const want = formatId(c.names ?? c.id);
    const shown = r.problems.map((p) => `${p.area} ${p.id}: ${p.message}`).join("\n");
    assert.ok(
      r.problems.some((p) => p.id === want && p.area === c.area && c.message.test(p.message)),
      `${c.what}: expected a ${c.area} problem in ${want} matching ${c.message}, got:\n${shown}`,
    );
    if (c.mayWork && r.use.ok) continue;
    assert.equal(r.use.ok, false, `${c.what}: using it should fail`);
    if (!r.use.ok) {
      assert.equal(r.use.name, "TwzError", `${c.what}: ${r.use.name}: ${r.use.message}`);
      assert.ok(
        (c.codes ?? [ErrorCode.ObjectDamaged]).includes(r.use.code!),
        `${c.what}: code ${r.use.code}: ${r.use.message}`,
      );
      assert.doesNotMatch(r.use.message, /bounds of the DataView/);
    }
  }
}

const u32At = (at: number, value: number) => (v: DataView) => v.setUint32(at, value, true);
const kvHeader = (v: DataView) => v.getUint32(BASE_OFFSET, true);

Deno.test("checkObjects() and libtwz find the fixture clean and usable", async () => {
  const r = await inWorker({ bytes: fx.bytes, op: "session", target: "" });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.use, { ok: true });
  for (
    const [op, id] of [["btree", fx.kv], ["hashmap", fx.map], ["vector", fx.vec], [
      "queue",
      fx.q,
    ]] as const
  ) {
    const u = await inWorker({ bytes: fx.bytes, op, target: formatId(id) });
    assert.deepEqual(u.use, { ok: true }, `${op}: ${JSON.stringify(u.use)}`);
  }
});

Deno.test("the kernel root object's naming record: damage is found and refused", async () => {
  const R = BASE_OFFSET;
  await runCases([
    {
      what: "magic",
      id: fx.root,
      mutate: u32At(R, 0x12345678),
      area: "root",
      message: /root record is damaged: no root record magic/,
      op: "session",
    },
    {
      what: "version",
      id: fx.root,
      mutate: u32At(R + 4, 9),
      area: "root",
      message: /unknown root record version 9/,
      op: "session",
    },
    {
      what: "checksum",
      id: fx.root,
      mutate: (v) => v.setUint8(R + 8, v.getUint8(R + 8) ^ 1),
      area: "root",
      message: /checksum does not match/,
      op: "session",
    },
    {
      what: "directory ID",
      id: fx.root,
      mutate: (v) => v.setUint8(R + 20, v.getUint8(R + 20) ^ 0x40),
      area: "root",
      message: /checksum does not match/,
      op: "session",
    },
    {
      what: "magic zeroed",
      id: fx.root,
      mutate: u32At(R, 0),
      area: "root",
      message: /no root record magic/,
      op: "session",
    },
  ]);
});

Deno.test("naming directories (the root one too): header and entry damage is found and refused", async () => {
  const H = BASE_OFFSET;
  const entry0 = H + 64;
  await runCases([
    {
      what: "root dir magic",
      id: fx.rootDir,
      mutate: u32At(H, 0),
      area: "naming",
      message: /directory \/: header damaged: no directory header magic/,
      op: "session",
    },
    {
      what: "root dir version",
      id: fx.rootDir,
      mutate: u32At(H + 4, 3),
      area: "naming",
      message: /unknown directory version 3/,
      op: "session",
    },
    {
      what: "root dir capacity huge",
      id: fx.rootDir,
      mutate: u32At(H + 8, 0x7fffffff),
      area: "naming",
      message: /capacity 2147483647 entries/,
      op: "session",
    },
    {
      what: "subdir capacity",
      id: fx.data,
      mutate: (v, size) => v.setUint32(H + 8, (size - H - 64) / 128 + 1, true),
      area: "naming",
      message: /directory \/data: header damaged: capacity/,
      op: "list",
      target: "/data",
    },
    {
      what: "subdir magic",
      id: fx.data,
      mutate: u32At(H, 0xdeadbeef),
      area: "naming",
      message: /\/data: header damaged: no directory header magic/,
      op: "list",
      target: "/data",
    },
    {
      what: "subdir entry kind",
      id: fx.data,
      mutate: (v) => {
        for (let i = 0; i < 8; i++) v.setUint16(entry0 + i * 128 + 4, 9, true);
      },
      area: "naming",
      message: /unknown entry kind 9/,
      op: "list",
      target: "/data",
    },
  ]);
});

Deno.test("B-tree (kv store) header and nodes: damage is found and refused", async () => {
  const hdr = (field: number, value: number) => (v: DataView) =>
    v.setUint32(kvHeader(v) + field, value, true);
  await runCases([
    {
      what: "fan-out",
      id: fx.kv,
      mutate: (v) => v.setUint8(kvHeader(v) + 6, 7),
      area: "btree",
      message: /fan-out 7, not 32/,
      op: "btree",
    },
    {
      what: "height 0",
      id: fx.kv,
      mutate: hdr(20, 0),
      area: "btree",
      message: /height 0/,
      op: "btree",
    },
    {
      what: "height huge",
      id: fx.kv,
      mutate: hdr(20, 1 << 30),
      area: "btree",
      message: /height 1073741824/,
      op: "btree",
    },
    {
      what: "root outside",
      id: fx.kv,
      mutate: hdr(16, 0xfffff000),
      area: "btree",
      message: /root node at 4294963200 lies outside/,
      op: "btree",
    },
    {
      what: "root not a node",
      id: fx.kv,
      mutate: (v) => v.setUint32(kvHeader(v) + 16, kvHeader(v), true),
      area: "btree",
      message: /root node at \d+ has type/,
      op: "btree",
    },
    {
      what: "first leaf",
      id: fx.kv,
      mutate: hdr(24, 8),
      area: "btree",
      message: /first leaf node at 8 lies outside the heap/,
      op: "btree",
    },
    {
      what: "count NaN",
      id: fx.kv,
      mutate: (v) => v.setFloat64(kvHeader(v) + 8, NaN, true),
      area: "btree",
      message: /entry count NaN/,
      op: "btree",
    },
    {
      what: "heap offset",
      id: fx.kv,
      mutate: hdr(28, 4096),
      area: "btree",
      message: /names its heap at 4096/,
      op: "btree",
    },
    {
      what: "header magic",
      id: fx.kv,
      mutate: (v) => v.setUint32(kvHeader(v), 0, true),
      area: "btree",
      message: /header is not there/,
      op: "btree",
    },
    {
      what: "base tag",
      id: fx.kv,
      mutate: u32At(BASE_OFFSET + 4, 0x1234),
      area: "btree",
      message: /collection tag 0x1234 is damaged/,
      op: "btree",
    },
    {
      what: "leaf with 40 keys",
      id: fx.kv,
      mutate: (v) => v.setUint16(v.getUint32(kvHeader(v) + 24, true) + 2, 40, true),
      area: "btree",
      message: /leaf \d+ holds 40 entries|has 40 keys/,
      op: "btree",
    },
    {
      what: "leaf chain loop",
      id: fx.kv,
      mutate: (v) => {
        const first = v.getUint32(kvHeader(v) + 24, true);
        const second = v.getUint32(first + 4, true);
        v.setUint32(second + 4, first, true); // the second leaf links back to the first
      },
      area: "btree",
      message: /leaf chain/,
      op: "btree",
    },
  ]);
});

Deno.test("hash map header and chains: damage is found and refused", async () => {
  const hdr = (field: number, value: number) => (v: DataView) =>
    v.setUint32(kvHeader(v) + field, value, true);
  await runCases([
    {
      what: "segment shift",
      id: fx.map,
      mutate: (v) => v.setUint8(kvHeader(v) + 6, 3),
      area: "hashmap",
      message: /bad geometry \(segment shift 3/,
      op: "hashmap",
    },
    {
      what: "level",
      id: fx.map,
      mutate: hdr(16, 40),
      area: "hashmap",
      message: /level 40/,
      op: "hashmap",
    },
    {
      what: "split",
      id: fx.map,
      mutate: hdr(20, 0xffffff),
      area: "hashmap",
      message: /split 16777215/,
      op: "hashmap",
    },
    {
      what: "directory outside",
      id: fx.map,
      mutate: hdr(28, 0xffffff00),
      area: "hashmap",
      message: /directory at 4294967040/,
      op: "hashmap",
    },
    {
      what: "directory capacity huge",
      id: fx.map,
      mutate: hdr(32, 0x40000000),
      area: "hashmap",
      message: /directory at \d+ \(1073741824 segments\)/,
      op: "hashmap",
    },
    {
      what: "count",
      id: fx.map,
      mutate: (v) => v.setFloat64(kvHeader(v) + 8, -1, true),
      area: "hashmap",
      message: /entry count -1/,
      op: "hashmap",
    },
    {
      what: "chain loop",
      id: fx.map,
      mutate: (v) => {
        const seg = v.getUint32(v.getUint32(kvHeader(v) + 28, true), true);
        let b = 0;
        while (v.getUint32(seg + b * 4, true) === 0) b++;
        const e = v.getUint32(seg + b * 4, true);
        v.setUint32(e, e, true); // the entry's next is itself
      },
      area: "hashmap",
      message: /chain loops/,
      op: "hashmap",
    },
    {
      what: "loop in the chain the next split walks",
      id: fx.map,
      mutate: (v) => {
        const h = kvHeader(v);
        const dir = v.getUint32(h + 28, true);
        const seg0 = v.getUint32(dir, true);
        let b = 0;
        while (v.getUint32(seg0 + b * 4, true) === 0) b++;
        const e = v.getUint32(seg0 + b * 4, true);
        v.setUint32(e, e, true); // a one-entry loop ...
        const split = v.getUint32(h + 20, true);
        const seg = v.getUint32(dir + (split >>> 8) * 4, true);
        v.setUint32(seg + (split & 255) * 4, e, true); // ... heads the bucket to split next
      },
      area: "hashmap",
      message: /chain loops|belongs in bucket/,
      op: "hashmap-set",
    },
  ]);
});

Deno.test("vector and queue headers: damage is found and refused", async () => {
  const hdr = (field: number, value: number) => (v: DataView) =>
    v.setUint32(kvHeader(v) + field, value, true);
  await runCases([
    {
      what: "vector segment shift",
      id: fx.vec,
      mutate: (v) => v.setUint8(kvHeader(v) + 6, 1),
      area: "vector",
      message: /segment shift 1/,
      op: "vector",
    },
    {
      what: "vector length huge",
      id: fx.vec,
      mutate: hdr(8, 0xfffffff0),
      area: "vector",
      message: /cannot hold 4294967280 elements/,
      op: "vector",
    },
    {
      what: "vector directory",
      id: fx.vec,
      mutate: hdr(12, 0x7ffffff8),
      area: "vector",
      message: /directory at 2147483640/,
      op: "vector",
    },
    {
      what: "queue size",
      id: fx.q,
      mutate: hdr(8, 0),
      area: "queue",
      message: /size 0 does not match head/,
      op: "queue",
    },
    {
      what: "queue head outside",
      id: fx.q,
      mutate: hdr(12, 0x7ffffff8),
      area: "queue",
      message: /head node at 2147483640 lies outside/,
      op: "queue",
    },
    {
      what: "queue tail outside",
      id: fx.q,
      mutate: hdr(16, 12),
      area: "queue",
      message: /tail node at 12 lies outside/,
      op: "queue",
    },
    {
      what: "queue loop",
      id: fx.q,
      mutate: (v) => {
        const head = v.getUint32(kvHeader(v) + 12, true);
        v.setUint32(head, head, true); // the head's next is itself
        v.setUint32(kvHeader(v) + 8, 60000, true); // and the size allows a long walk
      },
      area: "queue",
      message: /size 60000 is impossible|more than size/,
      op: "queue",
    },
  ]);
});

Deno.test("heap headers: damage is found and refused", async () => {
  await runCases([
    {
      what: "magic",
      id: fx.kv,
      mutate: u32At(HEAP_AT, 0),
      area: "heap",
      message: /holds a B-tree map but no heap/,
      op: "btree",
      codes: [ErrorCode.ObjectDamaged],
    },
    {
      what: "version",
      id: fx.map,
      mutate: (v) => v.setUint16(HEAP_AT + 4, 9, true),
      area: "heap",
      message: /unknown heap version 9/,
      op: "hashmap",
    },
    {
      what: "top",
      id: fx.vec,
      mutate: u32At(HEAP_AT + 8, 0x7ffffff0),
      area: "heap",
      message: /top 2147483632 lies outside the heap/,
      op: "vector",
    },
    {
      what: "end",
      id: fx.q,
      mutate: u32At(HEAP_AT + 12, 64),
      area: "heap",
      message: /arena end 64/,
      op: "queue",
    },
    {
      what: "free list head",
      id: fx.kv,
      mutate: u32At(HEAP_AT + 64 + 4 * 3, 0xfffffff0),
      area: "heap",
      message: /free list 3 starts at 4294967280/,
      op: "btree",
    },
    {
      what: "live bytes",
      id: fx.map,
      mutate: u32At(HEAP_AT + 16, 0x7fffffff),
      area: "heap",
      message: /live bytes 2147483647/,
      op: "hashmap",
    },
  ]);
});

Deno.test("meta-info and FOT geometry: damage is found and refused", async () => {
  const M = META_OFFSET;
  await runCases([
    {
      what: "version",
      id: fx.a,
      mutate: (v) => v.setUint16(M + MetaField.version, 4, true),
      area: "meta",
      message: /unknown layout version 4/,
      op: "fot",
    },
    {
      what: "flags",
      id: fx.a,
      mutate: (v) => v.setUint16(M + MetaField.flags, 0x40, true),
      area: "meta",
      message: /unknown meta-info flags 0x40/,
      op: "fot",
    },
    {
      what: "nonce (checksum)",
      id: fx.a,
      mutate: (v) => v.setUint8(M + MetaField.nonce, v.getUint8(M + MetaField.nonce) ^ 1),
      area: "meta",
      message: /checksum does not match/,
      op: "fot",
    },
    {
      what: "prot (checksum)",
      id: fx.a,
      mutate: u32At(M + MetaField.prot, 1),
      area: "meta",
      message: /checksum does not match/,
      op: "fot",
    },
    {
      what: "fotOffset",
      id: fx.a,
      mutate: u32At(M + MetaField.fotOffset, 0xfffff000),
      area: "meta",
      message: /checksum|FOT of/,
      op: "fot",
    },
    {
      what: "fotCount",
      id: fx.a,
      mutate: u32At(M + MetaField.fotCount, 1000),
      area: "fot",
      message: /fotCount 1000 exceeds fotCapacity 64/,
      op: "fot",
    },
    {
      what: "namesUsed",
      id: fx.a,
      mutate: u32At(M + MetaField.namesUsed, 1 << 20),
      area: "fot",
      message: /namesUsed 1048576 exceeds/,
      op: "fot",
    },
    {
      what: "root object flags",
      id: fx.root,
      mutate: (v) => v.setUint16(M + MetaField.flags, 0, true),
      area: "meta",
      message: /checksum does not match/,
      op: "fot",
      target: formatId(fx.root),
    },
  ]);
});

Deno.test("(the damage worker is stopped)", async () => {
  await stopWorker();
  assert.equal(worker, undefined);
});

// --- create-and-name, volatile refusals -----------------------------------

Deno.test("Twz.create({ name }) is failure-atomic: a failing bind leaves no object", async () => {
  const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
  try {
    twz.create({ name: "/file", size: 4096 });
    const before = twz.port.list().length;
    // /file is no directory: binding /file/x fails after the object is made.
    assert.throws(() => twz.create({ name: "/file/x", size: 4096 }), TwzError);
    assert.equal(twz.port.list().length, before);
    assert.throws(
      () => twz.create({ name: "/file", size: 4096 }),
      (e) => e instanceof TwzError && e.code === ErrorCode.NameExists,
    );
    assert.equal(twz.port.list().length, before);
    const ok = twz.create({ name: "/dir/y", size: 4096 });
    assert.equal(ok.meta.flags & META_PENDING_NAME, 0, "the pending mark is cleared once named");
    assert.deepEqual(checkObjects(twz).problems, []);
  } finally {
    twz.close();
  }
});

Deno.test("a crash inside Twz.create({ name }) is swept by repair: unnamed deleted, named unmarked", async () => {
  const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
  try {
    const lost = twz.create({ name: "/lost", size: 4096 });
    const kept = twz.create({ name: "/kept", size: 4096 });
    const mark = (id: ObjID) => {
      const m = twz.port.map(id);
      const at = META_OFFSET + MetaField.flags;
      m.view.setUint16(at, m.view.getUint16(at, true) | META_PENDING_NAME, true);
    };
    // The states a crash leaves: marked and never bound; marked and bound.
    mark(lost.id);
    twz.naming.unbind("/lost");
    mark(kept.id);
    const r = checkObjects(twz);
    assert.deepEqual(r.problems, []);
    const w = r.warnings.map((x) => `${x.id}: ${x.message}`).join("\n");
    assert.match(w, new RegExp(`${formatId(lost.id)}: created for a name that was never bound`));
    assert.match(
      w,
      new RegExp(`${formatId(kept.id)}: created for a name and named, but still marked`),
    );
    const lines = repairObjects(twz);
    assert.ok(
      lines.some((l) => l.includes(formatId(lost.id)) && /deleted/.test(l)),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => l.includes(formatId(kept.id)) && /cleared/.test(l)),
      lines.join("\n"),
    );
    assert.equal(twz.port.exists(lost.id), false);
    assert.equal(twz.naming.resolve("/kept"), kept.id);
    assert.deepEqual(checkObjects(twz).warnings, []);
  } finally {
    twz.close();
  }
});

Deno.test("a crash at every drain of a session's first transaction (it creates /.txlog) leaves no fsck --deep problem", () => {
  // The first transaction creates the log with Twz.create({ name: "/.txlog" }):
  // a crash after its bind and before the pending-name mark is cleared
  // leaves the log named and marked, as a crash inside any named create
  // does: a warning that repair clears, not damage.
  const run = (crashAt: number) => {
    const hal = openSim({ size: 8 << 20 });
    const twz = Twz.attach(Kernel.boot(hal).port());
    const obj = twz.create({ size: 4096 });
    const region = hal.region;
    const drain = region.drain.bind(region);
    let n = 0;
    region.drain = () => {
      // The power fails before drain `crashAt`: nothing after it is durable.
      if (++n === crashAt) region.powerFail({ policy: "strict" });
      if (crashAt > 0 && n >= crashAt) throw new Error("power cut");
      drain();
    };
    let done = false;
    try {
      transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, 7));
      done = true;
    } catch (e) {
      // The cut drain, or the kernel halted by it (a failed persist in its commit).
      assert.match((e as Error).message, /power cut|shut down/);
    }
    region.drain = drain;
    if (done) return { drains: n, marked: false };
    hal.power!.powerFail({ policy: "strict" });
    const again = Twz.attach(Kernel.boot(hal).port());
    const r = checkObjects(again);
    assert.deepEqual(r.problems, [], `crash before drain ${crashAt}`);
    const log = again.naming.lookup("/.txlog")?.id;
    const marked = log !== undefined &&
      r.warnings.some((w) => w.id === formatId(log) && /still marked pending/.test(w.message));
    if (marked) {
      const lines = repairObjects(again);
      assert.ok(
        lines.some((l) => /cleared the pending-name mark of \/\.txlog/.test(l)),
        lines.join("\n"),
      );
      assert.deepEqual(checkObjects(again).problems, []);
    }
    return { drains: n, marked };
  };
  const { drains } = run(0);
  assert.ok(drains > 3, `${drains} drains`);
  let marked = 0;
  for (let k = 1; k <= drains; k++) if (run(k).marked) marked++;
  assert.ok(marked > 0, "some crash point leaves /.txlog named and still marked");
});

Deno.test("a persist fault at any drain of a session's first transaction never leaves /.txlog bound to nothing", () => {
  // Twz.create({ name: "/.txlog" }) deletes the object when its bind fails;
  // a bind whose persist fails after the entry's publishing store may have
  // bound the name (in memory, and perhaps on the media): the name must be
  // taken back first, or every later transaction, and every session opened
  // after a reboot, fails on the missing log ("No object ...").
  const session = () => {
    const hal = openSim({ size: 8 << 20 });
    const twz = Twz.attach(Kernel.boot(hal).port());
    return { hal, twz, obj: twz.create({ size: 4096 }) };
  };
  const first = session();
  const d0 = first.hal.region.stats().drains;
  transaction(first.twz, (tx) => tx.setU32(first.obj, first.obj.baseOffset, 7));
  const drains = first.hal.region.stats().drains - d0;
  assert.ok(drains > 3, `${drains} drains`);
  for (let k = 1; k <= drains; k++) {
    const { hal, twz, obj } = session();
    hal.region.injectFault({ atDrain: k });
    try {
      transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, 7));
    } catch (e) {
      assert.match((e as Error).message, /injected persistence fault|shut down/, `drain ${k}`);
    }
    let alive = true;
    try {
      twz.port.info();
      twz.port.exists(obj.id);
    } catch {
      alive = false; // the kernel halted on the fault inside its own commit
    }
    if (alive) {
      const log = twz.naming.lookup("/.txlog")?.id;
      assert.ok(log === undefined || twz.port.exists(log), `drain ${k}: /.txlog names nothing`);
      transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, 8));
    }
    hal.power!.powerFail({ policy: "all" });
    const again = Twz.attach(Kernel.boot(hal).port()); // threw "No object" before
    const log = again.naming.lookup("/.txlog")?.id;
    assert.ok(log === undefined || again.port.exists(log), `drain ${k}: /.txlog after a reboot`);
    assert.deepEqual(checkObjects(again).problems, [], `drain ${k}`);
    const o2 = again.open(obj.id);
    transaction(again, (tx) => tx.setU32(o2, o2.baseOffset, 9));
  }
});

Deno.test("repair never deletes a marked object that holds data: it goes to /lost+found", async () => {
  const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
  try {
    const obj = twz.create({ name: "/data", size: 4096 });
    const data = new TextEncoder().encode("acknowledged bytes");
    obj.write(obj.baseOffset, data);
    // A damaged flags word that looks like the pending-name mark, on an
    // object reached only by ID: deleting it would destroy data.
    const m = twz.port.map(obj.id);
    const at = META_OFFSET + MetaField.flags;
    m.view.setUint16(at, m.view.getUint16(at, true) | META_PENDING_NAME, true);
    twz.naming.unbind("/data");
    const lines = repairObjects(twz);
    assert.ok(lines.some((l) => /kept as \/lost\+found\//.test(l)), lines.join("\n"));
    assert.ok(twz.port.exists(obj.id));
    assert.equal(twz.naming.resolve(`/lost+found/${formatId(obj.id)}`), obj.id);
    assert.deepEqual(
      twz.port.read(obj.id, obj.baseOffset, data.length),
      data,
      "its bytes are unchanged",
    );
  } finally {
    twz.close();
  }
});

Deno.test("volatile objects: no names, no pointers from persistent objects", async () => {
  const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
  try {
    const before = twz.port.list().length;
    assert.throws(
      () => twz.create({ name: "/v", size: 4096, lifetime: "volatile" }),
      (e) => e instanceof TwzError && /volatile.*dangles after a crash/.test(e.message),
    );
    assert.equal(twz.port.list().length, before, "nothing was created");
    const vol = twz.create({ size: 4096, lifetime: "volatile" });
    assert.throws(
      () => twz.naming.bind("/v", vol.id),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.InvalidArgument && /volatile/.test(e.message),
    );
    assert.equal(twz.naming.exists("/v"), false);
    const pers = twz.create({ size: 4096 });
    assert.throws(
      () => pers.fotIndex(vol.id),
      (e) => e instanceof TwzError && /cannot point at volatile/.test(e.message),
    );
    const Rec = struct({ x: u32, next: ptr("self") });
    const inPers = Rec.at(pers, pers.baseOffset);
    const inVol = Rec.at(vol, vol.baseOffset);
    assert.throws(() => {
      inPers.next = inVol;
    }, (e) => e instanceof TwzError && /dangle after a reboot/.test(e.message));
    inVol.next = inPers; // volatile to persistent is fine
    assert.equal(inVol.next?.x, 0);
  } finally {
    twz.close();
  }
});

// --- finding lost structures ----------------------------------------------

Deno.test("scanStructures() finds a lost naming root and kv store; they can be re-attached", () => {
  // The root record is destroyed (later, /kv is unbound too).
  const hal = openSimFromBytes(damaged(fx.root, (v) => v.setUint32(BASE_OFFSET, 0xbad, true)));
  const kernel = Kernel.boot(hal);
  try {
    assert.throws(
      () => Twz.attach(kernel.port()),
      (e) => e instanceof TwzError && e.code === ErrorCode.ObjectDamaged,
    );
    const found = scanStructures(kernel.port());
    const rec = found.find((s) => s.kind === "naming-root")!;
    assert.equal(rec.id, fx.root);
    assert.match(rec.problem!, /no root record magic/);
    const kv = found.find((s) => s.kind === "btree")!;
    assert.equal(kv.id, fx.kv);
    assert.equal(kv.codecs, "string/string");
    assert.equal(kv.entries, 100);
    assert.equal(kv.problem, undefined);
    assert.equal(kv.named, false, "no name reaches it while the root is lost");
    const dirs = found.filter((s) => s.kind === "directory");
    assert.equal(dirs.length, 2);
    assert.deepEqual(dirs.find((d) => d.id === fx.data)?.parents, [fx.rootDir]);
    assert.ok(found.some((s) => s.kind === "txlog"));
    assert.equal(findRootDirCandidate(kernel.port()), fx.rootDir);
    assert.match(reattachNamingRoot(kernel.port(), fx.rootDir), /names root directory/);
    const twz = Twz.attach(kernel.port());
    assert.equal(twz.naming.resolve("/data/map"), fx.map);
    assert.deepEqual(checkObjects(kernel.port()).problems, []);
    assert.throws(
      () => reattachNamingRoot(kernel.port(), fx.kv),
      /not a directory|no directory header/,
    );
    // The kv store loses its name; the scan finds it unnamed; it goes back.
    twz.naming.unbind("/kv");
    const again = scanStructures(kernel.port()).find((s) => s.kind === "btree")!;
    assert.equal(again.named, false);
    bindRecovered(kernel.port(), "/kv", again.id);
    assert.equal(BTreeMap.open(twz, twz.open("/kv"), codec.string, codec.string).get("k7"), "v7");
    // lost+found: an object and a directory.
    const p = bindLostFound(kernel.port(), fx.b);
    assert.equal(p, `/lost+found/${formatId(fx.b)}`);
    assert.equal(twz.naming.resolve(p), fx.b);
    assert.equal(bindLostFound(twz, fx.b), p, "idempotent");
    const d = bindLostFound(twz, fx.data);
    assert.equal(twz.naming.lookup(d)?.kind, "directory");
    assert.equal(twz.naming.resolve(`${d}/map`), fx.map);
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a first use of the naming service cut short by a crash is completed, not called damage", () => {
  const hal = openSim({ size: 8 << 20 });
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    const dir = twz.naming.rootId;
    // The record as a crash before its magic was published leaves it.
    kernel.map(kernel.rootObjectId()).view.setUint32(BASE_OFFSET, 0, true);
    const r = checkObjects(kernel.port());
    assert.deepEqual(r.problems, []);
    assert.match(r.warnings[0]!.message, /not published yet/);
    const again = Twz.attach(kernel.port());
    assert.equal(again.naming.rootId, dir);
    assert.deepEqual(checkObjects(kernel.port()).warnings, []);
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a lost root record never becomes a fresh, empty namespace over the old names", () => {
  // The whole record zeroed: it reads as never used, but the old directories hold names.
  const bytes = damaged(
    fx.root,
    (v) => new Uint8Array(v.buffer, v.byteOffset + BASE_OFFSET, 64).fill(0),
  );
  const hal = openSimFromBytes(bytes);
  const kernel = Kernel.boot(hal);
  try {
    const r = checkObjects(kernel.port());
    assert.ok(
      r.problems.some((p) =>
        p.area === "root" && p.id === formatId(fx.root) && /record was lost/.test(p.message)
      ),
      JSON.stringify(r.problems),
    );
    const before = kernel.list().length;
    assert.throws(
      () => Twz.attach(kernel.port()),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.ObjectDamaged &&
        /holds no naming root record, but directory [0-9a-f]{32} holds names/.test(e.message),
    );
    assert.equal(kernel.list().length, before, "no new root directory was made");
    reattachNamingRoot(kernel.port(), findRootDirCandidate(kernel.port())!);
    assert.equal(Twz.attach(kernel.port()).naming.resolve("/data/q"), fx.q);
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a garbage transaction log header is reported; a session still opens and commits", () => {
  const hal = openSimFromBytes(fx.bytes);
  const kernel = Kernel.boot(hal);
  try {
    const log = Twz.attach(kernel.port()).naming.resolve("/.txlog");
    kernel.map(log).view.setUint32(BASE_OFFSET, 0xdeadbeef, true);
    const r = checkObjects(kernel.port());
    assert.ok(
      r.problems.some((p) =>
        p.area === "txlog" && p.id === formatId(log) && /garbage/.test(p.message)
      ),
      JSON.stringify(r.problems),
    );
    const twz = Twz.attach(kernel.port());
    const kv = BTreeMap.open(twz, twz.open("/kv"), codec.string, codec.string);
    kv.set("after", "damage");
    assert.equal(kv.get("after"), "damage");
    assert.deepEqual(checkObjects(kernel.port()).problems, []);
  } finally {
    kernel.halt();
    hal.close();
  }
});

// --- damage the damage campaign found (helper F2) -------------------------

/** The fixture with the table slot of object `id` damaged (two fields: no single fix checks again). */
function quarantined(id: ObjID): Uint8Array {
  const bytes = fx.bytes.slice();
  const g = decodeSuperblock(bytes);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const o = findSlotOffset(bytes, g, id);
  v.setFloat64(o + SlotField.created, 1.5, true);
  v.setUint16(o + SlotField.prot, 5, true);
  return bytes;
}

Deno.test("checkObjects() reports a name bound to a quarantined object and checks the rest", () => {
  const hal = openSimFromBytes(quarantined(fx.a));
  const kernel = Kernel.boot(hal);
  try {
    assert.throws(
      () => kernel.map(fx.a),
      (e) => e instanceof TwzError && e.code === ErrorCode.ObjectDamaged,
      "the kernel quarantines /a",
    );
    const r = checkObjects(kernel.port(), { replay: true });
    const found = r.problems.find((p) => p.id === formatId(fx.a));
    assert.ok(found, JSON.stringify(r.problems));
    assert.equal(found.area, "naming");
    assert.match(
      found.message,
      new RegExp(`^/a is bound to ${formatId(fx.a)}, which is damaged \\(quarantined\\): `),
    );
    assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
    // The rest was checked: every collection, every name.
    assert.equal(r.checked.btrees, 1);
    assert.equal(r.checked.hashMaps, 1);
    assert.equal(r.checked.vectors, 1);
    assert.equal(r.checked.queues, 1);
    assert.ok(r.checked.names >= 8, `${r.checked.names} names`);
    // The deep repair's helpers cope too.
    assert.deepEqual(repairObjects(kernel.port()), []);
    assert.ok(scanStructures(kernel.port()).some((s) => s.kind === "btree" && s.id === fx.kv));
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a naming directory's capacity is what its size makes: anything else is damage", async () => {
  const H = BASE_OFFSET;
  const capOf = (v: DataView) => v.getUint32(H + 8, true);
  await runCases([
    {
      what: "root capacity zero",
      id: fx.rootDir,
      mutate: u32At(H + 8, 0),
      area: "naming",
      message: /directory \/: header damaged: capacity 0 entries, but its 16384 bytes make 125/,
      op: "session",
    },
    {
      what: "root capacity one less (low bit flipped)",
      id: fx.rootDir,
      mutate: (v) => v.setUint32(H + 8, capOf(v) ^ 1, true),
      area: "naming",
      message: /capacity 124 entries/,
      op: "session",
    },
    {
      what: "root capacity swapped with the generation",
      id: fx.rootDir,
      mutate: (v) => {
        const cap = capOf(v);
        v.setUint32(H + 8, v.getUint32(H + 12, true), true);
        v.setUint32(H + 12, cap, true);
      },
      area: "naming",
      message: /capacity \d+ entries, but its 16384 bytes make 125/,
      op: "session",
    },
    {
      what: "subdirectory capacity zero",
      id: fx.data,
      mutate: u32At(H + 8, 0),
      area: "naming",
      message: /directory \/data: header damaged: capacity 0/,
      op: "list",
      target: "/data",
    },
  ]);
});

Deno.test("libtwz names the directory whose capacity is damaged, never NameNotFound", () => {
  const hal = openSimFromBytes(damaged(fx.rootDir, u32At(BASE_OFFSET + 8, 0)));
  const kernel = Kernel.boot(hal);
  try {
    assert.throws(
      () => Twz.attach(kernel.port()).naming.resolve("/data/map"),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.ObjectDamaged &&
        e.message.includes(`Naming directory / in ${formatId(fx.rootDir)}: capacity 0 entries`),
    );
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("repairDirectoryHeader() rewrites a damaged directory header; names resolve again", () => {
  const H = BASE_OFFSET;
  const damages: Array<[string, ObjID, (v: DataView) => void]> = [
    ["magic zeroed", fx.rootDir, u32At(H, 0)],
    ["version", fx.rootDir, u32At(H + 4, 7)],
    ["capacity huge", fx.rootDir, u32At(H + 8, 0x7fffffff)],
    ["capacity zero", fx.data, u32At(H + 8, 0)],
    ["magic swapped with the generation", fx.rootDir, (v) => {
      const magic = v.getUint32(H, true);
      v.setUint32(H, v.getUint32(H + 12, true), true);
      v.setUint32(H + 12, magic, true);
    }],
  ];
  for (const [what, id, mutate] of damages) {
    const hal = openSimFromBytes(damaged(id, mutate));
    const kernel = Kernel.boot(hal);
    try {
      assert.ok(checkObjects(kernel.port()).problems.some((p) => p.id === formatId(id)), what);
      const before = kernel.map(id).bytes.slice(H + 64);
      const line = repairDirectoryHeader(kernel.port(), id);
      assert.match(
        line ?? "",
        new RegExp(`^naming: directory ${formatId(id)}: rewrote its header .*damaged: `),
        what,
      );
      assert.deepEqual(kernel.map(id).bytes.slice(H + 64), before, `${what}: entries untouched`);
      assert.equal(repairDirectoryHeader(kernel.port(), id), undefined, `${what}: sound now`);
      const r = checkObjects(kernel.port());
      assert.deepEqual(r.problems, [], `${what}: ${JSON.stringify(r.problems)}`);
      const twz = Twz.attach(kernel.port());
      assert.equal(twz.naming.resolve("/data/map"), fx.map, what);
      assert.equal(twz.naming.resolve("/kv"), fx.kv, what);
    } finally {
      kernel.halt();
      hal.close();
    }
  }
  // Only a directory object is rewritten: the kv store's base is not a directory header.
  const hal = openSimFromBytes(fx.bytes);
  const kernel = Kernel.boot(hal);
  try {
    const kvBase = kernel.map(fx.kv).bytes.slice(0, 1024);
    assert.throws(
      () => repairDirectoryHeader(kernel.port(), fx.kv),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.InvalidArgument &&
        /lacks the Directory flag/.test(e.message),
    );
    assert.deepEqual(kernel.map(fx.kv).bytes.slice(0, 1024), kvBase);
    assert.equal(repairDirectoryHeader(kernel.port(), fx.rootDir), undefined, "an intact header");
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a directory grow cut short by a crash (old capacity, doubled object) is not damage", () => {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    const target = twz.create({ size: 4096 });
    const dir = twz.naming.mkdir("/many");
    for (let i = 0; i < 130; i++) twz.naming.bind(`/many/n${i}`, target.id); // grows once
    const m = kernel.map(dir);
    assert.equal(m.bytes.length, 32768);
    assert.equal(m.view.getUint32(BASE_OFFSET + 8, true), 253);
    // Undo the publication of the capacity, and the entries past the old one
    // (as if the crash came right after the object grew).
    for (let i = 125; i < 253; i++) m.view.setUint32(BASE_OFFSET + 64 + i * 128, 0, true);
    m.view.setUint32(BASE_OFFSET + 8, 125, true);
    const r = checkObjects(kernel.port());
    assert.deepEqual(r.problems, []);
    assert.ok(r.warnings.some((w) => /capacity 125 of 253 entries/.test(w.message)));
    const again = Twz.attach(kernel.port());
    assert.equal(again.naming.resolve("/many/n124"), target.id);
    again.naming.bind("/many/next", target.id); // publishes the capacity; no second grow
    assert.equal(m.view.getUint32(BASE_OFFSET + 8, true), 253);
    assert.equal(kernel.map(dir).bytes.length, 32768);
    assert.deepEqual(checkObjects(kernel.port()).warnings, []);
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("the kv object's base words damaged over an intact B-tree: reported, and the scan sees it", async () => {
  const swap = (v: DataView) => {
    const w0 = v.getUint32(BASE_OFFSET, true);
    v.setUint32(BASE_OFFSET, v.getUint32(BASE_OFFSET + 4, true), true);
    v.setUint32(BASE_OFFSET + 4, w0, true);
  };
  await runCases([
    {
      what: "root words swapped",
      id: fx.kv,
      mutate: swap,
      area: "btree",
      message: /root words are damaged: word 0 holds the B-tree map tag 0x45525442 and word 1/,
      op: "btree",
      codes: [ErrorCode.InvalidArgument, ErrorCode.ObjectDamaged],
    },
    {
      what: "tag zeroed",
      id: fx.kv,
      mutate: u32At(BASE_OFFSET + 4, 0),
      area: "btree",
      message: /collection tag 0x0 is damaged: a B-tree map header lies at/,
      op: "btree",
      codes: [ErrorCode.InvalidArgument, ErrorCode.ObjectDamaged],
    },
  ]);
  const hal = openSimFromBytes(damaged(fx.kv, swap));
  const kernel = Kernel.boot(hal);
  try {
    const kv = scanStructures(kernel.port()).find((s) => s.id === fx.kv);
    assert.equal(kv?.kind, "btree");
    assert.match(kv?.problem ?? "", /collection tag is damaged/);
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a B-tree codec byte damaged into another codec is damage; wrong codecs asked for stay InvalidArgument", async () => {
  const codecAt = (v: DataView) => kvHeader(v) + 4;
  await runCases([
    {
      what: "key codec plus one (string -> bytes)",
      id: fx.kv,
      mutate: (v) => v.setUint8(codecAt(v), v.getUint8(codecAt(v)) + 1),
      area: "btree",
      message: /codec bytes 3\/2 do not match their check/,
      op: "btree",
    },
    {
      what: "value codec low bit flipped (string -> bytes)",
      id: fx.kv,
      mutate: (v) => v.setUint8(codecAt(v) + 1, v.getUint8(codecAt(v) + 1) ^ 1),
      area: "btree",
      message: /codec bytes 2\/3 do not match their check/,
      op: "btree",
    },
  ]);
  const hal = openSimFromBytes(fx.bytes);
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    assert.throws(
      () => BTreeMap.open(twz, twz.open(fx.kv), codec.int, codec.string),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.InvalidArgument &&
        /made with other codecs than int\/string/.test(e.message),
      "asking for the wrong codecs is the caller's error",
    );
    // A map made before the codec check (0 there) whose key codec byte says int:
    // the deep check sees that its entries are no 8-byte keys.
    const m = kernel.map(fx.kv);
    const h = kvHeader(m.view);
    m.view.setUint8(h + 7, 0);
    assert.deepEqual(checkObjects(kernel.port()).problems, [], "a map without the check is sound");
    m.view.setUint8(h + 4, codec.int.kind);
    const r = checkObjects(kernel.port());
    assert.ok(
      r.problems.some((p) =>
        p.id === formatId(fx.kv) && p.area === "btree" &&
        /does not decode with the recorded codecs int\/string/.test(p.message)
      ),
      JSON.stringify(r.problems),
    );
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("heap header: an unaligned arena end and an impossible claimed length are reported", async () => {
  const E = HEAP_AT + 12, C = HEAP_AT + 24;
  const bump = (at: number, f: (x: number) => number) => (v: DataView) =>
    v.setUint32(at, f(v.getUint32(at, true)) >>> 0, true);
  const cases: Array<[string, (v: DataView) => void, RegExp]> = [
    ["end plus one", bump(E, (x) => x + 1), /arena end \d+ is not an 8-byte aligned offset/],
    ["end low bit", bump(E, (x) => x ^ 1), /arena end \d+ is not an 8-byte aligned offset/],
    ["end past the object", bump(E, () => 1 << 20), /arena end 1048576 is not/],
    ["claimed ones", u32At(C, 0xffffffff), /claimed 4294967295 bytes is not an object length/],
    ["claimed huge", u32At(C, 0x7fffffff), /claimed 2147483647 bytes/],
    ["claimed plus one", bump(C, (x) => x + 1), /claimed 1048577 bytes/],
    ["claimed low bit", bump(C, (x) => x ^ 1), /claimed 1048577 bytes/],
    ["claimed below the arena", u32At(C, 4096), /claimed 4096 bytes is not an object length/],
    ["claimed swapped with grownTo", (v) => {
      const claimed = v.getUint32(C, true);
      v.setUint32(C, v.getUint32(C + 4, true), true);
      v.setUint32(C + 4, claimed, true);
    }, /claimed 0 bytes, but the heap grew the object to 1048576/],
  ];
  await runCases(cases.map(([what, mutate, message]) => ({
    what,
    id: fx.kv,
    mutate,
    area: "heap",
    message,
    op: "btree",
    mayWork: what.includes("swapped"),
  })));
});

Deno.test("a heap made before `claimed` existed says what it claimed before it grows", () => {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    const obj = twz.create({ size: 8192 });
    const heap = transaction(twz, (tx) => Heap.create(tx, obj, obj.baseOffset + 64));
    obj.view.setUint32(HEAP_AT + 24, 0, true); // as such a heap was made
    obj.persist(HEAP_AT + 24, 4);
    assert.deepEqual(checkObjects(kernel.port()).problems, []);
    // A growth whose transaction aborts: claimed must not stay 0 beside grownTo.
    assert.throws(() =>
      transaction(twz, (tx) => {
        heap.alloc(tx, 20000);
        throw new Error("abort");
      }), /abort/);
    assert.equal(obj.size > 8192, true, "the object grew");
    assert.equal(obj.view.getUint32(HEAP_AT + 24, true), 8192);
    assert.deepEqual(checkObjects(kernel.port()).problems, []);
    transaction(twz, (tx) => heap.alloc(tx, 20000)); // the slack the abort left is used
    assert.deepEqual(checkObjects(kernel.port()).problems, []);
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("a first use cut short before the root record's bytes were durable (ID torn) starts afresh", () => {
  const hal = openSim({ size: 8 << 20 });
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    void twz.naming.rootId;
    const rec = kernel.map(kernel.rootObjectId());
    // No magic, and only the low half of the directory's ID made it (8-byte units).
    rec.view.setUint32(BASE_OFFSET, 0, true);
    rec.view.setBigUint64(BASE_OFFSET + 24, 0n, true);
    const r = checkObjects(kernel.port());
    assert.deepEqual(r.problems, []);
    assert.match(r.warnings[0]?.message ?? "", /not published yet/);
    const again = Twz.attach(kernel.port());
    again.create({ name: "/x", size: 4096 });
    assert.equal(Twz.attach(kernel.port()).naming.exists("/x"), true);
    assert.deepEqual(checkObjects(kernel.port()).problems, []);
    // The same record over a directory that holds names is damage, not a first use.
    rec.view.setUint32(BASE_OFFSET, 0, true);
    rec.view.setBigUint64(BASE_OFFSET + 24, 0n, true);
    assert.ok(checkObjects(kernel.port()).problems.some((p) => /root record/.test(p.message)));
    assert.throws(
      () => Twz.attach(kernel.port()).naming.resolve("/x"),
      (e) => e instanceof TwzError && e.code === ErrorCode.ObjectDamaged,
    );
  } finally {
    kernel.halt();
    hal.close();
  }
});

Deno.test("(the damage worker is stopped again)", async () => {
  await stopWorker();
});
