import assert from "node:assert/strict";
import { crashtest, type Workload } from "@twz/crashtest";
import { Twz, type TwzObject } from "@twz/libtwz";
import { transaction } from "@twz/libtwz/tx";
const [A, B] = [1024, 1088]; // a user's structure: two u32 fields (two lines) that must agree
const pair = (atomic: boolean): Workload => ({
  name: atomic ? "pair" : "pair-without-tx",
  imageSize: 640 * 1024,
  run({ kernel, journal }) {
    const twz = Twz.attach(kernel.port()), obj = journal.record("create", {}, () => twz.create());
    twz.create({ size: 48 * 1024, name: "/.txlog" }); // the default log (4 MiB) would not fit
    const set = atomic // the broken variant stores and persists one field at a time
      ? (i: number) => transaction(twz, (tx) => (tx.setU32(obj, A, i), tx.setU32(obj, B, i)))
      : (i: number) =>
        [A, B].forEach((at) => (obj.view.setUint32(at, i, true), obj.persist(at, 4)));
    for (let i = 1; i <= 4; i++) journal.record("step", { i }, () => set(i));
  },
  check(kernel, journal) {
    const obj = journal[0]?.result as TwzObject | undefined; // once create returned
    if (!obj) return [];
    const view = Twz.attach(kernel.port()).handle(obj.id, false).view; // replays a committed tx
    const a = view.getUint32(A, true), done = journal.filter((e) => e.state === "done").length - 1;
    return a === view.getUint32(B, true) && a >= done && a < journal.length ? [] : `${a} torn/lost`;
  },
});
Deno.test("crashtest() passes a user's transactional pair and catches its broken variant", async () => {
  assert.equal((await crashtest(pair(true), { states: 400 })).violation_count, 0);
  assert.ok((await crashtest(pair(false), { states: 400 })).violation_count > 0);
});
