// Lookups in place (`HashMap.locate`, then one byte of the value) over the
// keys of `twz bench kv-get`'s workload, after its inserts and its `get`
// pass, timed every 8,192 keys, in two passes in one fresh process (the
// second with the loop long optimized): where in the key order a pass spends
// its time (issue 16). Runs the libtwz of the checkout it is started from:
//
//   cd CHECKOUT && PMEM2_FORCE_GRANULARITY=CACHE_LINE \
//     npx -y deno@2.9.6 run -A --config deno.json /path/to/kv_locate_marks.ts
//
// Prints per pass the ns per lookup of each 8,192 keys, then the mean.
import { Kernel } from "@twz/kernel";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";

const { openHal } = await import(`file://${Deno.cwd()}/packages/cli/bench/_util.ts`);
const VALUE = new TextEncoder().encode("value-0123456789");
const ops = 100_000, every = 8192;
const image = `/dev/shm/kv-locate-${Deno.pid}.img`;
const { hal } = await openHal({ hal: "pmem" }, image, 256 << 20);
const kernel = Kernel.boot(hal);
const twz = Twz.attach(kernel.port());
const obj = twz.create({ size: ops * 80 });
const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: ops });
for (let i = 0; i < ops; i++) map.set(i, VALUE);
let found = 0;
for (let i = 0; i < ops; i++) if (map.get(i) !== undefined) found++;
if (found !== ops) throw new Error(`get found ${found} of ${ops}`);

function pass(): string {
  const marks: number[] = [];
  const bytes = obj.bytes;
  let sum = 0;
  for (let i = 0; i < ops; i++) {
    if (i % every === 0) marks.push(performance.now());
    const at = map.locate(i);
    if (at >= 0) sum += bytes[at + (i & 15)]!;
  }
  marks.push(performance.now());
  if (sum === 0) throw new Error("values were not read");
  const ns: string[] = [];
  for (let k = 1; k < marks.length; k++) {
    const keys = Math.min(every, ops - (k - 1) * every);
    ns.push((((marks[k]! - marks[k - 1]!) * 1e6) / keys).toFixed(0));
  }
  return `${ns.join(" ")}; mean ${(((marks.at(-1)! - marks[0]!) * 1e6) / ops).toFixed(1)} ns`;
}
console.log(`pass 1: ${pass()}`);
console.log(`pass 2: ${pass()}`);
kernel.shutdown();
hal.close();
Deno.removeSync(image);
