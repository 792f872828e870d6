#!/usr/bin/env bash
# usage: tools/crash_counts.sh DIR OUT -- the crash campaigns of issue 10 with --json, in checkout DIR (deterministic: same seed, same counts)
set -o pipefail
dir=$1; out=$2; : > "$out"
cd "$dir"
for args in "kernel-objects --states 20000" "kernel-objects --states 10000 --seed 3 --unit 8" \
            "naming --states 5000 --seed 2" "heap --states 10000" "kv --states 10000" "kv --states 5000 --seed 2 --unit 8"; do
  echo "== $args" >> "$out"
  NO_COLOR=1 npx -y deno@2.9.6 run -A packages/cli/main.ts crashtest $args --json 2>&1 | tail -c 3000 >> "$out"
  echo "exit=$?" >> "$out"
done
