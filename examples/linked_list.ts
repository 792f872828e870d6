/**
 * A persistent linked list spanning three objects, found again by name.
 *
 *   npx -y deno@2.9.6 run -A examples/linked_list.ts           # image: ./examples.img
 *   npx -y deno@2.9.6 run -A examples/linked_list.ts --fresh   # start over
 *   TWZ_IMAGE=/tmp/x.img npx -y deno@2.9.6 run -A examples/linked_list.ts
 *
 * The first run creates the image, three objects (two of them named), a
 * typed node record in each, and invariant pointers between them (through
 * each object's FOT). Every later run — a new process — finds the head by
 * name, walks the list across the objects and counts the visit in the nodes
 * themselves: loads and stores on persistent memory, no serialization.
 *
 * @module
 */
import { BASE_OFFSET, formatId } from "@twz/kernel/abi";
import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";

// A record type: fixed-width fields only; `next` is an invariant pointer.
// Named, so the objects can carry its layout descriptor (`twz explore` types their bytes).
const Node = struct({ visits: u32, label: string(24), next: ptr("self") }, { name: "Node" });

const image = Deno.env.get("TWZ_IMAGE") ?? "./examples.img";
if (Deno.args.includes("--fresh")) await Deno.remove(image).catch(() => {});

const twz = await Twz.open({ hal: "sim", image, size: 16 << 20 });
try {
  if (!twz.naming.exists("/examples/list/head")) {
    // Three objects; the head and the middle get names, the tail only a pointer.
    const head = twz.create({ name: "/examples/list/head", size: 4096, layout: Node });
    const middle = twz.create({ name: "/examples/list/middle", size: 4096, layout: Node });
    const tail = twz.create({ size: 4096, layout: Node });
    const a = Node.at(head, BASE_OFFSET);
    const b = Node.at(middle, BASE_OFFSET);
    const c = Node.at(tail, BASE_OFFSET);
    a.label = "alpha (head)";
    b.label = "beta (middle)";
    c.label = "gamma (tail)";
    a.next = b; // stores FOT index 1 of head -> middle, offset 256
    b.next = c; // FOT index 1 of middle -> tail
    c.next = null;
    for (const n of [a, b, c]) n.$persist();
    console.log(`Created a list across 3 objects in ${image}`);
  }

  // Walk it, starting from a name.
  let n: ReturnType<typeof Node.at> | null = Node.at(twz.open("/examples/list/head"), BASE_OFFSET);
  let i = 0;
  while (n) {
    n.visits += 1;
    n.$persist("visits");
    const p = n.$ptr("next");
    console.log(
      `${i++}. ${n.label.padEnd(14)} object ${formatId(n.$id)}  visits=${n.visits}  next=${
        p.offset === 0 ? "null" : `(fot ${p.fot}, offset ${p.offset})`
      }`,
    );
    n = n.next;
  }
  console.log("Names:", twz.naming.list("/examples/list").map((b) => b.name).join(", "));
  console.log("Run me again: a new process finds the list by name and counts another visit.");
} finally {
  twz.close();
}
