#!/usr/bin/env bash
# An insert's time split into the processor's part and the flushes' part, for
# PMDK and twz, on the KV workload of tools/peers/run.sh (100,000 inserts, one
# fresh process each): PMDK's kv_pmemobj with PMEM_IS_PMEM_FORCE=1, with and
# without PMEM_NO_FLUSH=1; twz's kv-insert on hal-pmem at cache-line and at
# byte granularity (libpmem2 skips the flushes, the drains stay). REPS
# repetitions, the four interleaved in each; the summary's last lines give
# "with flushes = without + the flushes' part" (medians, ns per insert).
# `SPLIT=1 tools/peers/run.sh` measures the same beside everything else.
#
#   docs/bench/issue16/kv_split.sh            # REPS=5, from the checkout's root
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=${TWZ_PEER_DIR:-/tmp/twz-peers}
REPS=${REPS:-5}
mkdir -p "$work"
gcc -O2 -Wall -o "$work/kv_pmemobj" "$root/tools/peers/kv_pmemobj.c" -lpmemobj
out="$work/split-$(date +%Y%m%d-%H%M%S).jsonl"
label() { sed "s/^{/{\"config\":\"$1\",\"rep\":$2,/"; }
twz() { (cd "$root" && npx -y deno@2.9.6 run -A packages/cli/main.ts bench "$@" --json); }
kv=(kv-insert --hal pmem --ops 100000 --rounds 1)
for rep in $(seq "$REPS"); do
  PMEM_IS_PMEM_FORCE=1 "$work/kv_pmemobj" /dev/shm 100000 | label pmdk-shm-clflush "$rep"
  PMEM_IS_PMEM_FORCE=1 PMEM_NO_FLUSH=1 "$work/kv_pmemobj" /dev/shm 100000 | label pmdk-shm-noflush "$rep"
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz "${kv[@]}" | label twz-pmem-shm-cacheline "$rep"
  PMEM2_FORCE_GRANULARITY=BYTE twz "${kv[@]}" | label twz-pmem-shm-byte "$rep"
done > "$out"
node "$root/tools/peers/summary.mjs" "$out" | grep -v "no data"
echo "raw lines: $out"
