// The summary of a tools/peers/run.sh results file (one JSON line per
// configuration and repetition): per metric the median, min–max and the worst
// repetition's distance from the median; then one line per target of issue 16,
// each a ratio taken within every repetition (the configurations of one
// repetition ran back to back), with its median and worst repetition.
//
// usage: node tools/peers/summary.mjs RESULTS.jsonl
import { readFileSync } from "node:fs";

const file = process.argv[2];
const rows = readFileSync(file, "utf8").trim().split("\n").filter((l) => l.startsWith("{"))
  .map((l) => JSON.parse(l));

/** `config|metric` -> (rep -> value). */
const values = new Map();
function add(config, metric, rep, v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return;
  const key = `${config}|${metric}`;
  if (!values.has(key)) values.set(key, new Map());
  values.get(key).set(rep, v);
}
const CHASE = { one_pool: "one pool", pools16: "16 pools" };
for (const r of rows) {
  if (r.peer === "chase-pmemobj") {
    for (const [k, v] of Object.entries(r)) {
      const m = /^(one_pool|pools16)_(\w+)_ns_per_hop$/.exec(k);
      if (m) add(r.config, `${CHASE[m[1]]}, ${m[2]} ns/hop`, r.rep, v);
    }
  } else if (r.peer === "bench_pmemobj") {
    add(r.config, "insert ops/s", r.rep, r.c1_hash_insert_tx_ops);
    add(r.config, "get ops/s", r.rep, r.d_hash_lookup_ops);
  } else if (r.peer) {
    add(r.config, "insert ops/s", r.rep, r.insert_ops_per_sec);
    add(r.config, "get ops/s", r.rep, r.get_ops_per_sec);
  } else if (r.bench === "ptr-chase") {
    add(r.config, `${r.case} ns/hop`, r.rep, r.ns_per_op);
  } else {
    add(r.config, `${r.case} ops/s`, r.rep, r.ops_per_sec);
    add(r.config, `${r.case} drains/op`, r.rep, r.drains_per_op);
  }
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
const fmt = (metric, x) =>
  /ns\/hop|drains/.test(metric)
    ? x.toFixed(3)
    : Math.round(x).toLocaleString("en-US");

console.log(`\nper metric: median (min–max) worst-vs-median, of ${file}:`);
const bare = (k) => k.replace(/^base-/, "");
for (
  const [key, byRep] of [...values].sort(([a], [b]) =>
    bare(a).localeCompare(bare(b)) || a.localeCompare(b)
  )
) {
  const [config, metric] = key.split("|");
  const v = [...byRep.values()];
  const med = median(v);
  const worst = Math.max(...v.map((x) => Math.abs(x - med))) / med * 100;
  console.log(
    `${`${config} ${metric}`.padEnd(62)} ${fmt(metric, med).padStart(12)}   (${
      fmt(metric, Math.min(...v))
    }–${fmt(metric, Math.max(...v))})   worst ±${worst.toFixed(1)}%   runs=${
      v.map((x) => fmt(metric, x)).join(",")
    }`,
  );
}

// Targets. `num` / `den` name [config, metric]; a speed ratio (ops/s over
// ops/s, or the peer's ns over ours) must be >= target, a time ratio (ns
// over ns) <= target. A target holds when the median ratio meets it and the
// worst repetition is within 10 % of it.
const T = [
  ["KV insert, twz cache-line flushes / PMDK clflush", 1.3, ">=", [
    "twz-pmem-shm-cacheline",
    "hashmap-insert-tx ops/s",
  ], ["pmdk-shm-clflush", "insert ops/s"]],
  ["KV insert, twz msync / PMDK msync", 1.3, ">=", [
    "twz-pmem-shm-msync",
    "hashmap-insert-tx ops/s",
  ], ["pmdk-shm-msync", "insert ops/s"]],
  ["KV lookup, twz locate in place / PMDK get", 0.75, ">=", [
    "twz-pmem-shm-cacheline",
    "hashmap-locate-in-place ops/s",
  ], ["pmdk-shm-clflush", "get ops/s"]],
  ["KV insert, twz cache-line flushes / bench_pmemobj.c clflush (c1)", 1.3, ">=", [
    "twz-pmem-shm-cacheline",
    "hashmap-insert-tx ops/s",
  ], ["bench-pmemobj-shm-clflush", "insert ops/s"]],
  ["KV insert, twz msync / bench_pmemobj.c msync (c1)", 1.3, ">=", [
    "twz-pmem-shm-msync",
    "hashmap-insert-tx ops/s",
  ], ["bench-pmemobj-shm-msync", "insert ops/s"]],
  ["KV lookup, twz locate in place / bench_pmemobj.c lookup (d)", 0.75, ">=", [
    "twz-pmem-shm-cacheline",
    "hashmap-locate-in-place ops/s",
  ], ["bench-pmemobj-shm-clflush", "get ops/s"]],
  ["KV insert, twz cache-line flushes / LMDB putSync", 4, ">=", [
    "twz-pmem-shm-cacheline",
    "hashmap-insert-tx ops/s",
  ], ["lmdb-shm-putSync", "insert ops/s"]],
  ["KV insert, twz msync / LMDB putSync", 4, ">=", [
    "twz-pmem-shm-msync",
    "hashmap-insert-tx ops/s",
  ], ["lmdb-shm-putSync", "insert ops/s"]],
  ["KV lookup, twz locate in place / LMDB getBinary", 5, ">=", [
    "twz-pmem-shm-cacheline",
    "hashmap-locate-in-place ops/s",
  ], ["lmdb-shm-getBinary", "get ops/s"]],
  ["chase (b) 16 objects, PMDK pmemobj_direct ns / twz cursor ns (sim)", 1, ">=", [
    "pmdk-chase-shm",
    "16 pools, direct ns/hop",
  ], ["twz-chase-sim", "16 objects, cursor ns/hop"]],
  ["chase (b) 16 objects, PMDK pmemobj_direct ns / twz cursor ns (pmem)", 1, ">=", [
    "pmdk-chase-shm",
    "16 pools, direct ns/hop",
  ], ["twz-chase-pmem-shm", "16 objects, cursor ns/hop"]],
];
for (const walk of ["walk", "reduce"]) {
  for (const [hal, config] of [["sim", "twz-chase-sim"], ["pmem", "twz-chase-pmem-shm"]]) {
    T.push([
      `chase (b) 16 objects, PMDK pmemobj_direct ns / twz ${walk} ns (${hal})`,
      1,
      ">=",
      ["pmdk-chase-shm", "16 pools, direct ns/hop"],
      [config, `16 objects, ${walk} ns/hop`],
    ]);
  }
}
for (const config of ["twz-chase-sim", "twz-chase-pmem-shm"]) {
  for (const layout of ["one object", "16 objects"]) {
    for (const walk of ["cursor", "walk", "reduce"]) {
      T.push([`chase ${layout}, ${walk} / hand (${config})`, 1.3, "<=", [
        config,
        `${layout}, ${walk} ns/hop`,
      ], [config, `${layout}, hand ns/hop`]]);
    }
    T.push([`chase ${layout}, plain / hand (${config})`, 2, "<=", [
      config,
      `${layout}, plain ns/hop`,
    ], [config, `${layout}, hand ns/hop`]]);
  }
}
// LMDB's lookups are in the putSync config's row.
for (const t of T) if (t[4][0] === "lmdb-shm-getBinary") t[4][0] = "lmdb-shm-putSync";

console.log("\ntargets (ratio per repetition; met = median meets it, worst within 10 %):");
for (const [name, target, dir, [nc, nm], [dc, dm]] of T) {
  const num = values.get(`${nc}|${nm}`), den = values.get(`${dc}|${dm}`);
  const ratios = [];
  for (const [rep, n] of num ?? []) {
    const d = den?.get(rep);
    if (d !== undefined && d > 0) ratios.push(n / d);
  }
  if (ratios.length === 0) {
    const missing = !num ? `${nc} ${nm}` : `${dc} ${dm}`;
    console.log(`target ${name} ${dir} ${target}: no data (${missing} not measured)`);
    continue;
  }
  const med = median(ratios);
  const worst = dir === ">=" ? Math.min(...ratios) : Math.max(...ratios);
  const meets = dir === ">=" ? med >= target : med <= target;
  const close = dir === ">=" ? worst >= target * 0.9 : worst <= target * 1.1;
  console.log(
    `target ${name} ${dir} ${target}: median ${med.toFixed(2)}, worst ${worst.toFixed(2)} (${
      ratios.map((x) => x.toFixed(2)).join(",")
    }), ${meets && close ? "met" : "not met"}`,
  );
}

// SPLIT=1: an insert's cost with and without the flushes, ns per insert
// (medians over the repetitions): the flushes' part and the processor's.
const SPLIT = [
  ["PMDK", ["pmdk-shm-clflush", "insert ops/s"], ["pmdk-shm-noflush", "insert ops/s"]],
  ["twz", ["twz-pmem-shm-cacheline", "hashmap-insert-tx ops/s"], [
    "twz-pmem-shm-byte",
    "hashmap-insert-tx ops/s",
  ]],
];
const nsPer = ([config, metric]) => {
  const v = values.get(`${config}|${metric}`);
  return v ? median([...v.values()].map((x) => 1e9 / x)) : undefined;
};
if (SPLIT.every(([, , off]) => nsPer(off) !== undefined)) {
  console.log("\ninsert, ns (median): with flushes = without + the flushes' part");
  for (const [who, on, off] of SPLIT) {
    const a = nsPer(on), b = nsPer(off);
    if (a === undefined) continue;
    console.log(
      `${who.padEnd(5)} ${a.toFixed(0)} = ${b.toFixed(0)} + ${(a - b).toFixed(0)}   (${on[0]}; ${
        off[0]
      })`,
    );
  }
}
