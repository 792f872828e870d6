// Transactions and collections on the real persistent-memory HAL (libpmem2):
// the same library code as on hal-sim, over a mapped file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { BTreeMap } from "@twz/libtwz/btree";
import { transaction } from "@twz/libtwz/tx";

const pmem = (await import("@twz/hal-pmem")).plugin;
const described = pmem.describe();
const ignore = !described.available && Deno.env.get("CI") !== "true";
const shm = scratchDirs("twz-pmem-tx-", "/dev/shm");
const tmp = scratchDirs("twz-pmem-tx-");

for (const [where, dir] of [["/dev/shm", shm], ["/tmp", tmp]] as const) {
  Deno.test({
    name: `transactions and collections on hal-pmem (${where})${
      described.available ? "" : ` (skipped: ${described.reason})`
    }`,
    ignore,
    fn: async () => {
      const image = join(dir(), "tx.img");
      let twz = await Twz.open({ hal: pmem, image, size: 32 << 20 });
      const mapObj = twz.create({ name: "/m", size: 1 << 20 });
      const treeObj = twz.create({ name: "/t", size: 1 << 20 });
      const map = HashMap.create(twz, mapObj, codec.int, codec.string, { capacity: 1000 });
      const tree = BTreeMap.create(twz, treeObj, codec.string, codec.int);
      for (let i = 0; i < 500; i++) map.set(i, `v${i}`);
      transaction(twz, () => {
        for (let i = 0; i < 50; i++) tree.set(`k${String(i).padStart(3, "0")}`, i);
        map.delete(7);
      });
      assert.throws(() =>
        transaction(twz, () => {
          map.set(1000, "never");
          tree.delete("k001");
          throw new Error("abort");
        }), /abort/);
      assert.equal(map.get(1000), undefined);
      assert.equal(tree.get("k001"), 1);
      twz.close();

      twz = await Twz.open({ hal: pmem, image });
      const m2 = HashMap.open(twz, twz.open("/m"), codec.int, codec.string);
      const t2 = BTreeMap.open(twz, twz.open("/t"), codec.string, codec.int);
      assert.equal(m2.size, 499);
      assert.equal(m2.get(499), "v499");
      assert.equal(m2.get(7), undefined);
      assert.equal(t2.size, 50);
      assert.deepEqual([...t2.range("k010", "k013")].map(([k]) => k), ["k010", "k011", "k012"]);
      twz.close();
    },
  });
}
