#!/usr/bin/env bash
# The peer comparisons of docs/BENCHMARKS.md, side by side in one run: the KV
# workload on PMDK's libpmemobj (C, -O2), lmdb-js, PMDK's independent
# bench_pmemobj.c (when present) and twz on hal-pmem and hal-sim; and the
# pointer chase of `twz bench ptr-chase` beside the same list in libpmemobj.
# REPS repetitions, each running every configuration once (interleaved);
# the summary gives per metric the median, min–max and the worst repetition's
# distance from the median, then one line per target of issue 16.
#
#   tools/peers/run.sh                 # OPS=100000 REPS=5
#   OPS=20000 REPS=2 tools/peers/run.sh
#   TWZ_BASE=/tmp/base REPS=5 tools/peers/run.sh   # also an older checkout's twz
#                                                  # (KV only), as config "base-..."
#   BENCH_PMEMOBJ=/path/bench_pmemobj.c tools/peers/run.sh   # default: ../shared/peers/pmdk/
#   SPLIT=1 tools/peers/run.sh         # also the KV inserts with flushes off (PMDK's
#                                      # PMEM_NO_FLUSH=1, twz at byte granularity): the
#                                      # processor's part of an insert, apart from the flushes'
#
# Needs gcc, libpmemobj-dev and libpmem-dev (installed with apt when missing
# and root), npm (lmdb is installed into a scratch folder), libpmem2 for hal-pmem.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${TWZ_PEER_DIR:-/tmp/twz-peers}
OPS=${OPS:-100000}
REPS=${REPS:-5}
WALKS=${WALKS:-1000}
CHASE_ROUNDS=${CHASE_ROUNDS:-9}
bench_c=${BENCH_PMEMOBJ:-$root/../shared/peers/pmdk/bench_pmemobj.c}
DENO="npx -y deno@2.9.6"
mkdir -p "$work"

if ! [ -f /usr/include/libpmemobj.h ] || ! [ -f /usr/include/libpmem.h ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq gcc libpmemobj-dev libpmem-dev >/dev/null
  else
    echo "tools/peers/run.sh: needs gcc, libpmemobj-dev and libpmem-dev (apt-get install -y gcc libpmemobj-dev libpmem-dev)" >&2
    exit 2
  fi
fi
gcc -O2 -Wall -o "$work/kv_pmemobj" "$here/kv_pmemobj.c" -lpmemobj
gcc -O2 -Wall -o "$work/chase_pmemobj" "$here/chase_pmemobj.c" -lpmemobj -lm
have_bench_c=
if [ -f "$bench_c" ]; then
  # Built from where it is (an independent program: not copied into the repository).
  gcc -O2 -Wall -o "$work/bench_pmemobj" "$bench_c" -lpmemobj -lpmem
  have_bench_c=1
else
  echo "tools/peers/run.sh: $bench_c not found: its configs (bench-pmemobj-*) are skipped" >&2
fi
cp "$here/kv_lmdb.mjs" "$work/"
(cd "$work" && { [ -d node_modules/lmdb ] || npm install --no-save --silent lmdb@3.5.6 >/dev/null; })

out="$work/results-$(date +%Y%m%d-%H%M%S).jsonl"
label() { sed "s/^{/{\"config\":\"$1\",\"rep\":$2,/"; }
twz_in() { local dir=$1; shift; (cd "$dir" && $DENO run -A packages/cli/main.ts bench "$@" --json); }
twz() { twz_in "$root" "$@"; }
base() { if [ -n "${TWZ_BASE:-}" ]; then twz_in "$TWZ_BASE" "$@"; fi; }
# bench_pmemobj.c prints "kv c1_hash_insert_tx_ops=N ... d_hash_lookup_ops=N ...":
# its kv line as one JSON object. It writes fixed pool names, so into a folder of its own.
bench_c_run() {
  local dir
  dir=$(mktemp -d /dev/shm/twz-bench-pmemobj-XXXXXX)
  "$work/bench_pmemobj" "$dir" 1000000 "$OPS" | awk '/^kv /{
    printf "{\"peer\":\"bench_pmemobj\",\"ops\":'"$OPS"'"
    for (i = 2; i <= NF; i++) { split($i, kv, "="); printf ",\"%s\":%s", kv[1], kv[2] }
    print "}" }'
  rm -rf "$dir"
}
kv=(--ops "$OPS" --rounds 1)
for rep in $(seq "$REPS"); do
  PMEM_IS_PMEM_FORCE=1 "$work/kv_pmemobj" /dev/shm "$OPS" | label "pmdk-shm-clflush" "$rep"
  PMEM_IS_PMEM_FORCE=0 "$work/kv_pmemobj" /dev/shm "$OPS" | label "pmdk-shm-msync" "$rep"
  if [ -n "$have_bench_c" ]; then
    PMEM_IS_PMEM_FORCE=1 bench_c_run | label "bench-pmemobj-shm-clflush" "$rep"
    PMEM_IS_PMEM_FORCE=0 bench_c_run | label "bench-pmemobj-shm-msync" "$rep"
  fi
  node "$work/kv_lmdb.mjs" /dev/shm "$OPS" | label "lmdb-shm-putSync" "$rep"
  if [ -n "${SPLIT:-}" ]; then
    PMEM_IS_PMEM_FORCE=1 PMEM_NO_FLUSH=1 "$work/kv_pmemobj" /dev/shm "$OPS" | label "pmdk-shm-noflush" "$rep"
    PMEM2_FORCE_GRANULARITY=BYTE twz kv-insert --hal pmem "${kv[@]}" | label "twz-pmem-shm-byte" "$rep"
  fi
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz kv-insert --hal pmem "${kv[@]}" | label "twz-pmem-shm-cacheline" "$rep"
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz kv-get --hal pmem "${kv[@]}" | label "twz-pmem-shm-cacheline" "$rep"
  twz kv-insert --hal pmem "${kv[@]}" | label "twz-pmem-shm-msync" "$rep"
  twz kv-insert --hal sim "${kv[@]}" | label "twz-sim" "$rep"
  twz kv-get --hal sim "${kv[@]}" | label "twz-sim" "$rep"
  "$work/chase_pmemobj" /dev/shm "$WALKS" "$CHASE_ROUNDS" | label "pmdk-chase-shm" "$rep"
  twz ptr-chase --hal sim --ops "$WALKS" --rounds "$CHASE_ROUNDS" | label "twz-chase-sim" "$rep"
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz ptr-chase --hal pmem --ops "$WALKS" --rounds "$CHASE_ROUNDS" |
    label "twz-chase-pmem-shm" "$rep"
  if [ -n "${TWZ_BASE:-}" ]; then
    PMEM2_FORCE_GRANULARITY=CACHE_LINE base kv-insert --hal pmem "${kv[@]}" | label "base-twz-pmem-shm-cacheline" "$rep"
    PMEM2_FORCE_GRANULARITY=CACHE_LINE base kv-get --hal pmem "${kv[@]}" | label "base-twz-pmem-shm-cacheline" "$rep"
    base kv-insert --hal pmem "${kv[@]}" | label "base-twz-pmem-shm-msync" "$rep"
    base kv-insert --hal sim "${kv[@]}" | label "base-twz-sim" "$rep"
    base kv-get --hal sim "${kv[@]}" | label "base-twz-sim" "$rep"
  fi
done | tee "$out"

node "$here/summary.mjs" "$out"
