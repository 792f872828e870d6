// Lookups in place over the map of `twz bench kv-get`'s workload (100,000
// inserts of 8-byte int keys, 16-byte values, map presized), in one process
// once the code is optimized: `HashMap.locate` against the same chain walk
// written out by hand over the map's own words (the header's geometry, the
// directory, the bucket segment, the chain; no checks: "bare") and with
// `locate`'s damage checks ("checked"). Eleven interleaved passes over every
// key; prints ns per lookup per pass and the median (the first pass includes
// the loops' optimization). Shows what `locate` costs beyond the memory it
// must touch (issue 16). Runs the libtwz of the checkout it is started from:
//
//   cd CHECKOUT && PMEM2_FORCE_GRANULARITY=CACHE_LINE \
//     npx -y deno@2.9.6 run -A --config deno.json /path/to/kv_locate_hand.ts
import { Kernel } from "@twz/kernel";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";

const root = `file://${Deno.cwd()}/packages`;
const { openHal } = await import(`${root}/cli/bench/_util.ts`);
const { hashInt } = await import(`${root}/libtwz/_hash.ts`);
const VALUE = new TextEncoder().encode("value-0123456789");
const ops = 100_000;
const image = `/dev/shm/kv-locate-hand-${Deno.pid}.img`;
const { hal } = await openHal({ hal: "pmem" }, image, 256 << 20);
const kernel = Kernel.boot(hal);
const twz = Twz.attach(kernel.port());
const obj = twz.create({ size: ops * 80 });
const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: ops });
for (let i = 0; i < ops; i++) map.set(i, VALUE);

// The map's words and header (internal fields, read by this probe only).
const words = (obj.mapping as unknown as { extent: { u32: Uint32Array } }).extent.u32;
const hw = (map as unknown as { offset: number }).offset >>> 2;
// Header words (hashmap.ts `H`): level 16, split 20, n0 24, dir 28 (bytes).
const LEVEL = 4, SPLIT = 5, N0 = 6, DIR = 7;
// Entry words: next 0, hash 1, klen 2, key 4-5; the value from byte 24.

function viaLocate(): number {
  const bytes = obj.bytes;
  let s = 0;
  for (let i = 0; i < ops; i++) {
    const at = map.locate(i);
    if (at >= 0) s += bytes[at + (i & 15)]!;
  }
  return s;
}

function bare(): number {
  const bytes = obj.bytes, w = words, h = hw;
  let s = 0;
  for (let i = 0; i < ops; i++) {
    const x = hashInt(i, 0);
    const span = w[h + N0]! << w[h + LEVEL]!;
    let b = x & (span - 1);
    if (b < w[h + SPLIT]!) b = x & (span * 2 - 1);
    const seg = w[(w[h + DIR]! >>> 2) + (b >>> 8)]!;
    let e = w[(seg >>> 2) + (b & 255)]!;
    while (e !== 0) {
      const at = e >>> 2;
      if (w[at + 1] === x && w[at + 4] === i && w[at + 5] === 0 && w[at + 2] === 8) {
        s += bytes[e + 24 + (i & 15)]!;
        break;
      }
      e = w[at]!;
    }
  }
  return s;
}

function checked(): number {
  const bytes = obj.bytes, w = words, h = hw;
  let s = 0;
  for (let i = 0; i < ops; i++) {
    const x = hashInt(i, 0);
    const span = w[h + N0]! << w[h + LEVEL]!;
    let b = x & (span - 1);
    if (b < w[h + SPLIT]!) b = x & (span * 2 - 1);
    const dir = w[h + DIR]!;
    const seg = w[(dir >>> 2) + (b >>> 8)];
    if (seg === 0) continue;
    if (seg === undefined || ((dir | seg) & 3) !== 0) throw new Error("bad segment");
    let steps = w.length >>> 2;
    let e = w[(seg >>> 2) + (b & 255)];
    while (e !== 0) {
      if (e === undefined || (e & 3) !== 0 || --steps < 0) throw new Error("damaged chain");
      const at = e >>> 2;
      if (w[at + 1] === x && w[at + 4] === i && w[at + 5] === 0 && w[at + 2] === 8) {
        s += bytes[e + 24 + (i & 15)]!;
        break;
      }
      e = w[at];
    }
  }
  return s;
}

const cases: [string, () => number][] = [["locate", viaLocate], ["bare", bare], ["checked", checked]];
const ns = new Map<string, number[]>(cases.map(([k]) => [k, []]));
let expected = -1;
for (let pass = 0; pass < 11; pass++) {
  for (const [name, f] of cases) {
    const t0 = performance.now();
    const s = f();
    ns.get(name)!.push(((performance.now() - t0) * 1e6) / ops);
    if (expected < 0) expected = s;
    if (s !== expected) throw new Error(`${name} read ${s}, locate ${expected}`);
  }
}
for (const [name, v] of ns) {
  const median = [...v].sort((a, b) => a - b)[v.length >> 1]!;
  console.log(`${name.padEnd(8)} ${v.map((x) => x.toFixed(1)).join(" ")}; median ${median.toFixed(1)} ns`);
}
kernel.shutdown();
hal.close();
Deno.removeSync(image);
