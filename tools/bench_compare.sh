#!/usr/bin/env bash
# One `twz bench` case in two checkouts, side by side in one run: REPS
# interleaved repetitions (base, new, base, new, ...), then the median, minimum
# and maximum of every numeric figure per checkout. Used to show that a change
# keeps a benchmark's speed (docs/BENCHMARKS.md quotes its output).
#
#   tools/bench_compare.sh BASE_DIR REPS BENCH [ARGS...]
#   git worktree add /tmp/base <commit>   # the baseline checkout
#   tools/bench_compare.sh /tmp/base 5 create-delete --ops 10000 --rounds 1
#
# Environment variables (PMEM2_FORCE_GRANULARITY...) reach both checkouts.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: tools/bench_compare.sh BASE_DIR REPS BENCH [ARGS...]" >&2
  exit 2
fi
base=$(cd "$1" && pwd)
reps=$2
shift 2
new=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for rep in $(seq "$reps"); do
  for tree in base new; do
    dir=$base
    [ "$tree" = new ] && dir=$new
    (cd "$dir" && npx -y deno@2.9.6 run -A packages/cli/main.ts bench "$@" --json 2>/dev/null) |
      sed "s/^{/{\"tree\":\"$tree\",\"rep\":$rep,/" >>"$out"
  done
done
node - "$out" <<'JS'
const fs = require("node:fs");
const rows = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").filter(Boolean)
  .map((l) => JSON.parse(l));
const groups = new Map();
for (const r of rows) {
  for (const [k, v] of Object.entries(r)) {
    if (typeof v !== "number" || ["rep", "ops"].includes(k)) continue;
    const key = `${r.bench} ${r.case ?? ""} ${r.hal ?? ""} ${k}`;
    if (!groups.has(key)) groups.set(key, { base: [], new: [] });
    groups.get(key)[r.tree].push(v);
  }
}
const med = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (a) =>
  a.length === 0 ? "-" : `${+med(a).toPrecision(4)} [${+Math.min(...a).toPrecision(4)}–${
    +Math.max(...a).toPrecision(4)
  }]`;
console.log("figure | base median [min–max] | new median [min–max] | new/base");
for (const [key, g] of groups) {
  const ratio = g.base.length && g.new.length ? (med(g.new) / med(g.base)).toFixed(2) : "-";
  console.log(`${key} | ${fmt(g.base)} | ${fmt(g.new)} | ${ratio}`);
}
JS
