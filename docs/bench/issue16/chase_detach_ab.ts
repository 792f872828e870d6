// Does V8's ArrayBuffer-detaching protector, once invalidated, slow the
// pointer chase? A process's first detach of any ArrayBuffer (hal-pmem's
// close, a buffer transferred to a program's Worker, a program's unmap)
// deoptimizes all its optimized code once, and code compiled after it checks
// for detached buffers. With PRE_DETACH=1 this probe detaches a throwaway
// buffer before anything else, then runs `twz bench ptr-chase`'s cases
// (hal-sim, warmed up as the benchmark does) and prints one JSON line per
// case. Alternate the two in separate processes, from the checkout's root:
//
//   for rep in 1 2 3 4 5 6; do for d in 0 1; do PRE_DETACH=$d npx -y deno@2.9.6 run -A \
//     --config deno.json docs/bench/issue16/chase_detach_ab.ts; done; done > /tmp/detach.jsonl
//
// then compare the medians of `ns` per case for pre 0 and pre 1.
if (Deno.env.get("PRE_DETACH") === "1") new ArrayBuffer(8).transfer();
const bench = await import(`file://${Deno.cwd()}/packages/cli/bench/ptr_chase.ts`);
const results = await bench.run({ hal: "sim", ops: 1000, rounds: 9 });
for (const r of results) {
  console.log(JSON.stringify({ pre: Deno.env.get("PRE_DETACH") ?? "0", case: r.case, ns: r.ns_per_op }));
}
