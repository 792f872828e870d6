// Two copies of libtwz side by side in one process, on the KV insert
// workload of `twz bench kv-insert` (8-byte int keys, 16-byte values, one
// durable transaction per insert, map presized): each copy gets its own
// image and map, 100,000 warm-up inserts, then 60 blocks of 5,000 inserts
// alternate between them. Both run on the same machine at the same moments,
// so a few percent of optimized insert speed show through the noise of a
// busy host that separate processes drown (issue 16). The kernel and the HAL
// are the checkout's own, shared by both copies.
//
//   cd CHECKOUT && mkdir -p .bench/ab && \
//     cp -r /path/to/OTHER/packages/libtwz .bench/ab/base && \
//     PMEM2_FORCE_GRANULARITY=CACHE_LINE npx -y deno@2.9.6 run -A \
//       docs/bench/issue16/kv_insert_ab.ts .bench/ab/base packages/libtwz [second]
//
// (.bench/ is ignored by git; a copy must lie inside the checkout, so that
// its imports of @twz/kernel resolve.) `second` warms the second copy first.
// Prints the median ns per insert of each copy's blocks and their ratio
// (second / first). Two identical copies gave ratios of 0.94-1.08 (10 runs on
// the project VM, 2026-12-03): a change must move it further than that.
import { Kernel } from "@twz/kernel";

const [dirA, dirB, order] = Deno.args;
if (!dirA || !dirB) throw new Error("usage: kv_insert_ab.ts LIBTWZ_DIR_A LIBTWZ_DIR_B [second]");
const { openHal } = await import(`file://${Deno.cwd()}/packages/cli/bench/_util.ts`);
const VALUE = new TextEncoder().encode("value-0123456789");
const total = 400_000, warm = 100_000, block = 5000;

async function setup(dir: string, tag: string) {
  const root = `file://${Deno.cwd()}/${dir}`;
  const { Twz } = await import(`${root}/twz.ts`);
  const { codec } = await import(`${root}/codec.ts`);
  const { HashMap } = await import(`${root}/hashmap.ts`);
  const image = `/dev/shm/kv-ab-${tag}-${Deno.pid}.img`;
  const { hal } = await openHal({ hal: "pmem" }, image, 512 << 20);
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  const obj = twz.create({ size: total * 80 });
  const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: total });
  const times: number[] = [];
  return {
    insert: (from: number, to: number) => {
      for (let i = from; i < to; i++) map.set(i, VALUE);
    },
    times,
    done: () => {
      kernel.shutdown();
      hal.close();
      Deno.removeSync(image);
    },
  };
}

const a = await setup(dirA, "a");
const b = await setup(dirB, "b");
const [w0, w1] = order === "second" ? [b, a] : [a, b];
w0.insert(0, warm);
w1.insert(0, warm);
for (let at = warm; at < total; at += block) {
  for (const m of (at / block) % 2 === 0 ? [a, b] : [b, a]) {
    const t0 = performance.now();
    m.insert(at, at + block);
    m.times.push(((performance.now() - t0) * 1e6) / block);
  }
}
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
const ma = median(a.times), mb = median(b.times);
console.log(
  `${dirA} ${ma.toFixed(0)}, ${dirB} ${mb.toFixed(0)} ns per insert (median of ${a.times.length} ` +
    `blocks each); ratio ${(mb / ma).toFixed(3)}`,
);
a.done();
b.done();
