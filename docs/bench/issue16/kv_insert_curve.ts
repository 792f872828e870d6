// The KV insert workload of `twz bench kv-insert` (8-byte int keys, 16-byte
// values, one durable transaction per insert, map presized) timed in blocks
// of 5,000 inserts in one fresh process, with the page faults of each block:
// how long a fresh process takes to reach its steady speed (issue 16). Runs
// the libtwz of the checkout it is started from:
//
//   cd CHECKOUT && PMEM2_FORCE_GRANULARITY=CACHE_LINE \
//     npx -y deno@2.9.6 run -A --config deno.json /path/to/kv_insert_curve.ts [ROUNDS [OPS]]
//
// Each round (default 1) is a new image in /dev/shm in the same process, with
// OPS inserts (default 100,000). Prints per round the mean ns per insert and,
// per block, "ns/faults". With TWZ_MARK=1 and
// `--v8-flags=--trace-opt,--allow-natives-syntax` each block's end is marked
// in V8's trace (a `%DebugPrint` of the insert count, on the trace's stream),
// which places the optimizing compiles among the blocks.
import { Kernel } from "@twz/kernel";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";

const { openHal } = await import(`file://${Deno.cwd()}/packages/cli/bench/_util.ts`);
const VALUE = new TextEncoder().encode("value-0123456789");
const ops = Number(Deno.args[1] ?? 100_000), block = 5000;
const mark = Deno.env.get("TWZ_MARK") === "1"
  ? new Function("n", "%DebugPrint(n)") as (n: number) => void
  : () => {};
const rounds = Number(Deno.args[0] ?? 1);
/** Minor page faults of this process so far (/proc/self/stat, field 10). */
const faults = () => Number(Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ")[7]);
for (let r = 0; r < rounds; r++) {
  const image = `/dev/shm/kv-curve-${Deno.pid}-${r}.img`;
  const { hal } = await openHal({ hal: "pmem" }, image, 256 << 20);
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  const obj = twz.create({ size: ops * 80 });
  const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: ops });
  const blocks: string[] = [];
  const start = performance.now();
  for (let b = 0; b < ops; b += block) {
    const f0 = faults();
    const t0 = performance.now();
    for (let i = b; i < b + block; i++) map.set(i, VALUE);
    blocks.push(`${(((performance.now() - t0) * 1e6) / block).toFixed(0)}/${faults() - f0}`);
    mark(b + block);
  }
  const mean = ((performance.now() - start) * 1e6) / ops;
  console.log(`round ${r}: ${mean.toFixed(0)} ns per insert; blocks of ${block}: ${blocks.join(" ")}`);
  kernel.shutdown();
  hal.close();
  Deno.removeSync(image);
}
