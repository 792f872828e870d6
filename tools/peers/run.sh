#!/usr/bin/env bash
# The KV comparison of docs/BENCHMARKS.md, side by side in one run: PMDK's
# libpmemobj (C, -O2), lmdb-js, and twz on hal-pmem and hal-sim, REPS
# interleaved repetitions, medians printed at the end.
#
#   tools/peers/run.sh                 # OPS=100000 REPS=3
#   OPS=20000 REPS=5 tools/peers/run.sh
#   TWZ_BASE=/tmp/base REPS=5 tools/peers/run.sh   # also an older checkout's twz,
#                                                  # interleaved, as config "base-..."
#
# Needs gcc and libpmemobj-dev (installed with apt when missing and root),
# npm (lmdb is installed into a scratch folder), libpmem2 for hal-pmem.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${TWZ_PEER_DIR:-/tmp/twz-peers}
OPS=${OPS:-100000}
REPS=${REPS:-3}
DENO="npx -y deno@2.9.6"
mkdir -p "$work"

if ! [ -f /usr/include/libpmemobj.h ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq gcc libpmemobj-dev >/dev/null
  else
    echo "tools/peers/run.sh: needs gcc and libpmemobj-dev (apt-get install -y gcc libpmemobj-dev)" >&2
    exit 2
  fi
fi
gcc -O2 -Wall -o "$work/kv_pmemobj" "$here/kv_pmemobj.c" -lpmemobj
cp "$here/kv_lmdb.mjs" "$work/"
(cd "$work" && { [ -d node_modules/lmdb ] || npm install --no-save --silent lmdb@3.5.6 >/dev/null; })

out="$work/results-$(date +%Y%m%d-%H%M%S).jsonl"
label() { sed "s/^{/{\"config\":\"$1\",\"rep\":$2,/"; }
twz_in() { local dir=$1; shift; (cd "$dir" && $DENO run -A packages/cli/main.ts bench "$@" --ops "$OPS" --rounds 1 --json); }
twz() { twz_in "$root" "$@"; }
base() { if [ -n "${TWZ_BASE:-}" ]; then twz_in "$TWZ_BASE" "$@"; fi; }
for rep in $(seq "$REPS"); do
  PMEM_IS_PMEM_FORCE=1 "$work/kv_pmemobj" /dev/shm "$OPS" | label "pmdk-shm-clflush" "$rep"
  PMEM_IS_PMEM_FORCE=0 "$work/kv_pmemobj" /dev/shm "$OPS" | label "pmdk-shm-msync" "$rep"
  node "$work/kv_lmdb.mjs" /dev/shm "$OPS" | label "lmdb-shm-putSync" "$rep"
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz kv-insert --hal pmem | label "twz-pmem-shm-cacheline" "$rep"
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz kv-get --hal pmem | label "twz-pmem-shm-cacheline" "$rep"
  twz kv-insert --hal pmem | label "twz-pmem-shm-msync" "$rep"
  twz kv-insert --hal sim | label "twz-sim" "$rep"
  twz kv-get --hal sim | label "twz-sim" "$rep"
  if [ -n "${TWZ_BASE:-}" ]; then
    PMEM2_FORCE_GRANULARITY=CACHE_LINE base kv-insert --hal pmem | label "base-twz-pmem-shm-cacheline" "$rep"
    PMEM2_FORCE_GRANULARITY=CACHE_LINE base kv-get --hal pmem | label "base-twz-pmem-shm-cacheline" "$rep"
    base kv-insert --hal pmem | label "base-twz-pmem-shm-msync" "$rep"
    base kv-insert --hal sim | label "base-twz-sim" "$rep"
    base kv-get --hal sim | label "base-twz-sim" "$rep"
  fi
done | tee "$out"

node - "$out" <<'JS'
const fs = require("node:fs");
const rows = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const groups = new Map();
for (const r of rows) {
  const add = (what, v) => {
    if (typeof v !== "number") return;
    const key = `${r.config} ${what}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(v);
  };
  if (r.peer) {
    add("insert ops/s", r.insert_ops_per_sec);
    add("get ops/s", r.get_ops_per_sec);
  } else {
    add(`${r.case} ops/s`, r.ops_per_sec);
    add(`${r.case} drains/op`, r.drains_per_op);
  }
}
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(`\nmedians (min–max) of ${process.argv[2]}:`);
const fmt = (x) => Math.round(x).toLocaleString("en-US");
for (const [key, v] of [...groups].sort(([a], [b]) => a.replace(/^base-/, "").localeCompare(b.replace(/^base-/, "")) || a.localeCompare(b))) {
  console.log(`${key.padEnd(60)} ${fmt(median(v)).padStart(14)}   (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})   runs=${v.map(fmt).join(",")}`);
}
JS
