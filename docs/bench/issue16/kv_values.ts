// KV inserts with larger values (issue 16, fresh blocks): one transaction per
// `HashMap.set` of a VSIZE-byte value (default 400), OPS inserts (default
// 50,000) into a map presized for them, on hal-pmem in /dev/shm; prints ns per
// insert over the whole run (a fresh process's warm-up included). Runs the
// libtwz of the checkout it is started from (its import map and bench
// helpers), so one copy measures two checkouts:
//
//   cd CHECKOUT && VSIZE=400 PMEM2_FORCE_GRANULARITY=CACHE_LINE \
//     npx -y deno@2.9.6 run -A --config deno.json /path/to/kv_values.ts
import { Kernel } from "@twz/kernel";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";

const { openHal } = await import(`file://${Deno.cwd()}/packages/cli/bench/_util.ts`);
const vsize = Number(Deno.env.get("VSIZE") ?? 400);
const ops = Number(Deno.env.get("OPS") ?? 50_000);
const value = new Uint8Array(vsize).fill(65);
const image = `/dev/shm/kv-values-${Deno.pid}.img`;
const { hal } = await openHal({ hal: "pmem" }, image, 512 << 20);
const kernel = Kernel.boot(hal);
const twz = Twz.attach(kernel.port());
const obj = twz.create({ size: ops * (vsize + 128) });
const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: ops });
const t0 = performance.now();
for (let i = 0; i < ops; i++) map.set(i, value);
console.log(((performance.now() - t0) * 1e6 / ops).toFixed(0));
kernel.shutdown();
hal.close();
Deno.removeSync(image);
