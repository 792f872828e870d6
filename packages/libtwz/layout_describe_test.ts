/**
 * Layout descriptors (`_layout_describe.ts`): `struct(…, { name })`,
 * `Twz.create({ layout })`, `registerLayout`, `readLayoutDescriptor`; the
 * round trip through an image, unnamed structs, objects without one,
 * damaged descriptors, and crashes at every drain of a first registration.
 */
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { ErrorCode, META_OFFSET, MetaField, TwzError } from "@twz/kernel/abi";
import { openSim, openSimFromBytes, PowerFailed, type SimHal } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import {
  array,
  bool,
  bytes,
  f64,
  i64,
  layoutDescriptor,
  layoutPath,
  ptr,
  readLayoutDescriptor,
  registerLayout,
  string,
  struct,
  u16,
  u32,
  u8,
} from "@twz/libtwz/layout";
import { hashBytes } from "./_hash.ts";

function session(size = 8 << 20): { hal: SimHal; twz: Twz } {
  const hal = openSim({ size });
  return { hal, twz: Twz.attach(Kernel.boot(hal).port()) };
}

function oneLine(code: number, message: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof TwzError, `not a TwzError: ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), `two lines: ${e.message}`);
    return true;
  };
}

const Point = struct({ x: f64, y: f64 }, { name: "Point" });
const Anon = struct({ a: u8 });
const Shape = struct({
  id: i64,
  name: string(16),
  visible: bool,
  ports: array(u16, 3),
  origin: Point,
  corner: ptr(Point),
  other: ptr(Anon),
  next: ptr("self"),
  blob: array(u8, 40),
  digest: bytes(4),
}, { name: "Shape" });
const ListNode = struct({ value: u32, label: string(16), next: ptr("self") }, {
  name: "ListNode",
});

/** The tag of ListNode's descriptor at the base: the hash of its JSON (computed without writing). */
const LIST_TAG = (() => {
  const p = new TextEncoder().encode(JSON.stringify(layoutDescriptor(ListNode)));
  return hashBytes(p, 0, p.length) || 1;
})();

Deno.test("struct() takes a name and refuses a bad one", () => {
  assert.equal(ListNode.name, "ListNode");
  assert.equal(Anon.name, null);
  assert.equal(ListNode.size, struct({ value: u32, label: string(16), next: ptr("self") }).size);
  for (const bad of ["", "1x", "a b", "x".repeat(65), "a/b"]) {
    assert.throws(() => struct({ a: u8 }, { name: bad }), TypeError, bad);
  }
});

Deno.test("layoutDescriptor() lists the fields: nested structs, short arrays, pointer targets", () => {
  const d = layoutDescriptor(Shape, { offset: 512, count: 3 });
  assert.equal(d.name, "Shape");
  assert.equal(d.size, Shape.size);
  assert.equal(d.align, 8);
  assert.equal(d.offset, 512);
  assert.equal(d.count, 3);
  const by = new Map(d.fields.map((f) => [f.name, f]));
  assert.deepEqual(by.get("id"), { name: "id", type: "i64", offset: 0, size: 8 });
  assert.deepEqual(by.get("name"), { name: "name", type: "string(16)", offset: 8, size: 16 });
  assert.deepEqual(by.get("visible"), { name: "visible", type: "bool", offset: 24, size: 1 });
  assert.deepEqual(by.get("ports[2]"), { name: "ports[2]", type: "u16", offset: 30, size: 2 });
  assert.equal(by.get("origin.y")!.offset, Shape.offsetOf("origin") + 8);
  assert.equal(by.get("corner")!.target, "Point");
  assert.equal(by.get("next")!.target, "Shape");
  assert.equal(by.get("other")!.type, "ptr");
  assert.ok(!("target" in by.get("other")!), "a pointer to an unnamed struct has no target");
  assert.deepEqual(by.get("blob"), {
    name: "blob",
    type: "bytes(40)",
    offset: Shape.offsetOf("blob"),
    size: 40,
  });
  assert.deepEqual(by.get("digest")!.type, "bytes(4)");
  assert.throws(() => layoutDescriptor(Shape, { offset: 100 }), RangeError);
  assert.throws(() => layoutDescriptor(Shape, { offset: 260 }), RangeError, "aligned to 8");
  assert.throws(() => layoutDescriptor(Shape, { count: 0 }), RangeError);
});

Deno.test("Twz.create({ layout }) round trip through an image, read back read-only", async () => {
  const image = await Deno.makeTempFile({ suffix: ".img" });
  await Deno.remove(image);
  try {
    let twz = await Twz.open({ hal: "sim", image, size: 8 << 20 });
    const a = twz.create({ name: "/l/a", size: 4096, layout: ListNode });
    const b = twz.create({ name: "/l/b", size: 4096, layout: ListNode });
    const s = twz.create({
      name: "/s",
      size: 8192,
      layout: { type: Shape, offset: 512, count: 4 },
    });
    const na = ListNode.at(a, a.baseOffset), nb = ListNode.at(b, b.baseOffset);
    na.value = 1;
    nb.value = 2;
    na.next = nb;
    na.$persist();
    nb.$persist();
    // One descriptor per layout and placement, shared.
    assert.equal(a.meta.typeTag, b.meta.typeTag);
    assert.notEqual(a.meta.typeTag, 0);
    assert.notEqual(s.meta.typeTag, a.meta.typeTag);
    assert.deepEqual(
      twz.naming.list("/.layouts").map((e) => e.name).sort(),
      [layoutPath(a.meta.typeTag), layoutPath(s.meta.typeTag)].map((p) => p.slice(10)).sort(),
    );
    assert.equal(registerLayout(twz, ListNode), a.meta.typeTag);
    twz.close();

    twz = await Twz.open({ hal: "sim", image, readOnly: true });
    assert.ok(twz.readOnly);
    const d = readLayoutDescriptor(twz.open("/l/a"), twz);
    assert.deepEqual(d, layoutDescriptor(ListNode));
    assert.ok(Object.isFrozen(d) && Object.isFrozen(d!.fields[0]));
    assert.deepEqual(readLayoutDescriptor(twz.open("/l/b"), twz), d);
    assert.deepEqual(
      readLayoutDescriptor(twz.open("/s"), twz),
      layoutDescriptor(Shape, { offset: 512, count: 4 }),
    );
    // The records the descriptor names are the ones written.
    const head = twz.open("/l/a");
    const next = d!.fields.find((f) => f.name === "next")!;
    assert.equal(next.target, "ListNode");
    assert.equal(head.view.getUint32(d!.offset + d!.fields[0]!.offset, true), 1);
    assert.equal(head.view.getUint16(d!.offset + next.offset + 6, true) >>> 0, 1, "FOT index 1");
    // Registering on a read-only session works only when nothing is to be written.
    assert.equal(registerLayout(twz, ListNode), head.meta.typeTag);
    assert.throws(
      () => registerLayout(twz, ListNode, { count: 2 }),
      oneLine(ErrorCode.ReadOnly, /read-only/),
    );
    twz.close();
  } finally {
    await Deno.remove(image).catch(() => {});
  }
});

Deno.test("unnamed structs cannot be described, and nothing is created for them", () => {
  const { hal, twz } = session();
  try {
    assert.throws(() => layoutDescriptor(Anon), TypeError, "named struct");
    const before = twz.port.list().length;
    assert.throws(() => twz.create({ size: 4096, layout: Anon }), TypeError, "named struct");
    assert.throws(() => registerLayout(twz, Anon), TypeError, "named struct");
    assert.equal(twz.port.list().length, before);
    assert.equal(twz.naming.exists("/.layouts"), false);
  } finally {
    hal.close();
  }
});

Deno.test("objects without a descriptor read as null and change nothing", () => {
  const { hal, twz } = session();
  try {
    const plain = twz.create({ size: 4096 });
    assert.equal(plain.meta.typeTag, 0);
    assert.equal(readLayoutDescriptor(plain, twz), null);
    const tagged = twz.create({ size: 4096, typeTag: 7 });
    assert.equal(tagged.meta.typeTag, 7);
    assert.equal(readLayoutDescriptor(tagged, twz), null);
    const raw = twz.port.create({ size: 4096 });
    assert.equal(readLayoutDescriptor(twz.open(raw), twz), null);
    assert.equal(twz.naming.exists("/.layouts"), false, "no descriptor was written");
    // A described object's bytes and FOT are as a plain one's.
    const typed = twz.create({ size: 4096, layout: ListNode });
    assert.deepEqual(
      { ...typed.meta, typeTag: 0, nonce: "" },
      { ...plain.meta, nonce: "" },
    );
    assert.deepEqual(typed.read(typed.baseOffset, 3000), plain.read(plain.baseOffset, 3000));
  } finally {
    hal.close();
  }
});

Deno.test("Twz.create({ layout }) refuses a typeTag too and records that do not fit", () => {
  const { hal, twz } = session();
  try {
    const before = twz.port.list().length;
    assert.throws(
      () => twz.create({ size: 4096, layout: ListNode, typeTag: 3 }),
      oneLine(ErrorCode.InvalidArgument, /not both/),
    );
    assert.throws(
      () => twz.create({ size: 4096, layout: { type: ListNode, count: 200 } }),
      oneLine(
        ErrorCode.InvalidArgument,
        /200 ListNode records at 256 \(32 bytes each\) do not fit/,
      ),
    );
    assert.equal(twz.port.list().length, before, "nothing was created");
    const ok = twz.create({ size: 4096, layout: { type: ListNode, count: 100 } });
    assert.equal(readLayoutDescriptor(ok, twz)!.count, 100);
  } finally {
    hal.close();
  }
});

/** The descriptor object's ID and the offset of its header. */
function descriptorOf(twz: Twz, tag: number): { id: bigint; at: number } {
  return { id: twz.naming.resolve(layoutPath(tag)), at: 256 };
}

Deno.test("a damaged descriptor is one line, ObjectDamaged, naming it", () => {
  const { hal, twz } = session();
  try {
    const obj = twz.create({ size: 4096, layout: ListNode });
    const tag = obj.meta.typeTag;
    const { id, at } = descriptorOf(twz, tag);
    const d = twz.open(id, { write: true });
    const good = d.read(0, d.size);
    const damage = (f: () => void, why: RegExp) => {
      d.write(0, good);
      f();
      const fresh = Twz.attach(twz.port); // no cached descriptor
      assert.throws(
        () => readLayoutDescriptor(fresh.open(obj.id), fresh),
        oneLine(
          ErrorCode.ObjectDamaged,
          new RegExp(`layout descriptor /\\.layouts/.*${why.source}`),
        ),
      );
      assert.throws(() => registerLayout(fresh, ListNode), oneLine(ErrorCode.ObjectDamaged, why));
    };
    damage(() => d.view.setUint8(at + 16 + 10, d.view.getUint8(at + 16 + 10) ^ 1), /checksum/);
    damage(() => d.view.setUint32(at, 0x12345678, true), /bad magic/);
    damage(() => d.view.setUint16(at + 4, 2, true), /unknown descriptor version 2/);
    damage(() => d.view.setUint32(at + 8, 1 << 30, true), /bad payload length/);
    // A payload whose checksum holds but which is no descriptor.
    const forge = (json: string) => () => {
      const p = new TextEncoder().encode(json);
      d.write(at + 16, p);
      d.view.setUint32(at + 8, p.length, true);
      d.view.setUint32(at + 12, hashBytes(p, 0, p.length) || 1, true);
    };
    damage(forge("{not json"), /not JSON/);
    damage(
      forge(
        JSON.stringify({
          ...layoutDescriptor(ListNode),
          fields: [{ name: "x", type: "u32", offset: 30, size: 4 }],
        }),
      ),
      /field x does not fit/,
    );
    damage(
      forge(
        JSON.stringify({
          ...layoutDescriptor(ListNode),
          fields: [{ name: "x", type: "u128", offset: 0, size: 16 }],
        }),
      ),
      /bad field "x"/,
    );
    // Repaired, it reads again.
    d.write(0, good);
    const fresh = Twz.attach(twz.port);
    assert.equal(readLayoutDescriptor(fresh.open(obj.id), fresh)!.name, "ListNode");
  } finally {
    hal.close();
  }
});

Deno.test("registerLayout() finishes a descriptor a crash cut off, and rebinds a dangling one", () => {
  const { hal, twz } = session();
  try {
    const tag = registerLayout(twz, ListNode);
    const { id, at } = descriptorOf(twz, tag);
    const d = twz.open(id, { write: true });
    d.view.setUint32(at, 0, true);
    const obj = twz.create({ size: 4096, typeTag: tag });
    const fresh = Twz.attach(twz.port);
    assert.equal(readLayoutDescriptor(fresh.open(obj.id), fresh), null, "unfinished reads as none");
    assert.equal(registerLayout(fresh, ListNode), tag);
    assert.equal(d.view.getUint32(at, true), 0x59414c54, "TLAY");
    assert.equal(readLayoutDescriptor(fresh.open(obj.id), fresh)!.name, "ListNode");
    // A name left bound to an object that is gone is bound anew.
    twz.port.delete(id);
    const again = Twz.attach(twz.port);
    assert.equal(readLayoutDescriptor(again.open(obj.id), again), null);
    assert.equal(registerLayout(again, ListNode), tag);
    assert.notEqual(again.naming.resolve(layoutPath(tag)), id);
    assert.equal(readLayoutDescriptor(again.open(obj.id), again)!.name, "ListNode");
  } finally {
    hal.close();
  }
});

Deno.test("a crash at any drain of create({ layout }) never leaves an object naming a missing or torn descriptor", () => {
  const run = (twz: Twz) => twz.create({ name: "/typed", size: 4096, layout: ListNode });
  const setup = () => {
    const s = session(4 << 20);
    s.twz.create({ name: "/warm", size: 4096 }); // the namespace exists
    return s;
  };
  const dry = setup();
  const d0 = dry.hal.region.stats().drains;
  run(dry.twz);
  const drains = dry.hal.region.stats().drains - d0;
  dry.hal.close();
  assert.ok(drains >= 6, `${drains} drains: the write path has several stores`);

  let crashed = 0, typed = 0, unfinished = 0;
  for (let k = 0; k <= drains; k++) {
    // Strict (every line not drained is lost) and random survivors of the
    // lines in flight, several seeds: a torn descriptor needs its magic's
    // line kept and a payload line lost.
    for (const seed of [0, 1, 2, 3, 4, 5, 6]) {
      const policy = seed === 0 ? "strict" : "random";
      const s = setup();
      // The machine stops at the power failure: the media as it is then is
      // what a reboot finds (error paths of the run, which go on in this
      // process, must not write it: they get no drain).
      const region = s.hal.region;
      const drain = region.drain.bind(region);
      let media: Uint8Array | null = null;
      region.drain = () => {
        if (media !== null) throw new Error("the power is off");
        try {
          drain();
        } catch (e) {
          if (e instanceof PowerFailed) media = region.bytes.slice();
          throw e;
        }
      };
      let hal: SimHal | undefined;
      try {
        s.hal.power!.armCrash!(s.hal.region.stats().drains + k, {
          before: true,
          policy,
          seed: k * 10 + seed,
        });
        try {
          run(s.twz);
        } catch (e) {
          if (media === null) throw e;
          crashed++;
        }
        s.hal.power!.armCrash!(Number.MAX_SAFE_INTEGER);
        if (media === null) {
          s.hal.power!.powerFail({ policy: "strict" });
          media = region.bytes.slice();
        }
        hal = openSimFromBytes(media);
        const twz = Twz.attach(Kernel.boot(hal).port());
        const tag = LIST_TAG;
        const b = twz.naming.lookup("/typed");
        if (b !== undefined) {
          // The object exists: its descriptor is complete.
          typed++;
          const obj = twz.open(b.id);
          assert.equal(obj.meta.typeTag, tag, `crash before drain ${k}`);
          assert.deepEqual(readLayoutDescriptor(obj, twz), layoutDescriptor(ListNode));
        } else {
          // No object: a descriptor there is complete or unfinished, never torn.
          const d = twz.naming.lookup(layoutPath(tag));
          if (d !== undefined) {
            if (twz.open(d.id).view.getUint32(256, true) === 0) unfinished++;
            else {
              const probe = twz.create({ size: 4096, typeTag: tag });
              assert.deepEqual(readLayoutDescriptor(probe, twz), layoutDescriptor(ListNode));
            }
          }
        }
        // Everything goes on: the create succeeds and reads back.
        const again = b === undefined ? run(twz) : twz.open("/typed");
        assert.deepEqual(readLayoutDescriptor(again, twz), layoutDescriptor(ListNode));
      } finally {
        hal?.close();
        s.hal.close();
      }
    }
  }
  assert.equal(crashed, 7 * drains, "every drain of the run was a crash point");
  assert.ok(typed > 0 && typed < 7 * (drains + 1), `${typed} runs had the object`);
  assert.ok(
    unfinished > 0,
    "some crash left an unfinished descriptor (finished by the next create)",
  );
  console.log(
    `${
      7 * (drains + 1)
    } crash states: ${typed} with the object, ${unfinished} unfinished descriptors`,
  );
});

Deno.test("the typeTag is in the meta-info checksum: the meta-info carries it as any other field", () => {
  const { hal, twz } = session();
  try {
    const obj = twz.create({ size: 4096, layout: ListNode });
    const w = twz.open(obj.id, { write: true });
    w.view.setUint32(META_OFFSET + MetaField.typeTag, 0, true);
    const fresh = Twz.attach(twz.port);
    assert.throws(
      () => readLayoutDescriptor(fresh.open(obj.id), fresh),
      oneLine(ErrorCode.ObjectDamaged, /meta-info/),
    );
  } finally {
    hal.close();
  }
});
