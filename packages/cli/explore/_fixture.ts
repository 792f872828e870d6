/**
 * The small image the explorer's model and server tests explore: a linked
 * list across three objects (`/list/a` → `/list/b` → `/list/c`, one
 * `ListNode` record each, typed by its layout descriptor), the kv
 * store (`/kv`, a string/string B-tree map made as the shell makes it), a
 * string/int hash map (`/map`), an int vector (`/vec`), a hash map whose
 * header is damaged (`/bad`), an object tied to `/list/a`, and an object no
 * one but the admin may read (protections none). Private to the tests.
 *
 * @module
 */
import { BASE_OFFSET, type ObjID } from "@twz/kernel/abi";
import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { Vector } from "@twz/libtwz/vector";
import { kvStore } from "../programs/kv.ts";

/** A list node: a value, a label and a pointer to the next node (its objects carry its descriptor). */
export const ListNode = struct({ value: u32, label: string(12), next: ptr("self") }, {
  name: "ListNode",
});

/** The IDs of the fixture's objects. */
export interface Fixture {
  /** The image file. */
  image: string;
  /** The list's nodes, first to last. */
  a: ObjID;
  /** Second node. */
  b: ObjID;
  /** Last node. */
  c: ObjID;
  /** `/kv`. */
  kv: ObjID;
  /** `/map`. */
  map: ObjID;
  /** `/vec`. */
  vec: ObjID;
  /** `/bad` (damaged hash map). */
  bad: ObjID;
  /** The object tied to `/list/a`. */
  tied: ObjID;
  /** The object with protections none. */
  secret: ObjID;
}

/** The kv store's contents. */
export const KV: Readonly<Record<string, string>> = { alpha: "1", beta: "2", gamma: "3" };
/** The hash map's contents. */
export const MAP: Readonly<Record<string, number>> = { one: 1, two: 2, three: 3, four: 4, five: 5 };

/**
 * Make the fixture image at `image` (16 MiB, hal-sim) and close it.
 *
 * @param image Where.
 * @returns The objects' IDs.
 */
export async function makeFixture(image: string): Promise<Fixture> {
  const twz = await Twz.open({ hal: "sim", image, size: 16 << 20 });
  try {
    twz.naming.mkdir("/list");
    const objs = ["a", "b", "c"].map((n) =>
      twz.create({ name: `/list/${n}`, size: 4096, layout: ListNode })
    );
    const nodes = objs.map((o) => ListNode.at(o, o.baseOffset));
    ["one", "two", "three"].forEach((label, i) => {
      nodes[i]!.value = i + 1;
      nodes[i]!.label = label;
    });
    nodes[0]!.next = nodes[1]!;
    nodes[1]!.next = nodes[2]!;
    for (const n of nodes) n.$persist();
    const kv = kvStore(twz, true)!;
    for (const [k, v] of Object.entries(KV)) kv.set(k, v);
    const mapObj = twz.create({ name: "/map", size: 1 << 18 });
    const map = HashMap.create(twz, mapObj, codec.string, codec.int);
    for (const [k, v] of Object.entries(MAP)) map.set(k, v);
    const vecObj = twz.create({ name: "/vec", size: 1 << 16 });
    const vec = Vector.create(twz, vecObj, codec.int);
    for (const x of [10, 20, 30]) vec.push(x);
    const badObj = twz.create({ name: "/bad", size: 1 << 16 });
    HashMap.create(twz, badObj, codec.string, codec.string);
    // Damage the header: everything after its magic becomes 0xff (codecs, geometry).
    const header = badObj.view.getUint32(BASE_OFFSET, true);
    twz.port.write(badObj.id, header + 4, new Uint8Array(60).fill(0xff));
    const tied = twz.port.create({ size: 4096, ties: [objs[0]!.id] });
    const secret = twz.port.create({ size: 4096, prot: 0 });
    return {
      image,
      a: objs[0]!.id,
      b: objs[1]!.id,
      c: objs[2]!.id,
      kv: twz.naming.resolve("/kv"),
      map: mapObj.id,
      vec: vecObj.id,
      bad: badObj.id,
      tied,
      secret,
    };
  } finally {
    twz.close();
  }
}
