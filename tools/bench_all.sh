#!/usr/bin/env bash
# Runs every `twz bench` case that docs/BENCHMARKS.md quotes, one after the
# other on this machine, and keeps the JSON lines in one file. The KV
# comparison with PMDK and LMDB is tools/peers/run.sh.
#
#   tools/bench_all.sh [OUT.jsonl]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/.bench/all-$(date +%Y%m%d-%H%M%S).jsonl"}
mkdir -p "$(dirname "$out")"
twz() { (cd "$root" && npx -y deno@2.9.6 run -A packages/cli/main.ts bench "$@" --json); }
{
  twz boot --ops 100000 --rounds 5
  twz boot --hal pmem --ops 100000 --rounds 5
  twz create-delete --ops 10000 --rounds 5
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz create-delete --hal pmem --ops 10000 --rounds 5
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz persist --hal pmem
  twz persist --hal pmem
  twz accessors
  twz ptr-resolve
  twz crashtest --ops 5000 --rounds 3
  twz syscall --hal sim
  twz syscall --hal pmem
  twz spawn --hal sim
  twz mutex --hal sim
  twz mutex --hal pmem
  twz wake
  twz mqueue --hal sim
  PMEM2_FORCE_GRANULARITY=CACHE_LINE twz mqueue --hal pmem
  twz sec-map --hal sim
  twz sec-map --hal pmem
  twz sec-verify
  twz global --rounds 9 --ops 50
} | tee "$out"
echo "results: $out" >&2
