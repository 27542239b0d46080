#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after another, on a
# scratch copy of its seed corpus, and prints the executions. Exits 1 if one crashed.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frames handshake decompress blob ws_frames ws_bridge router_session)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
failed=0
for t in "${targets[@]}"; do
  work="target/corpus-run/$t"
  mkdir -p "$work" "corpus/$t"
  cp -n "corpus/$t"/* "$work"/ 2>/dev/null || true
  echo "== $t for ${seconds}s"
  if cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$seconds" -print_final_stats=1 2>"target/$t.log"; then
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|Done [0-9]+ runs" "target/$t.log" || tail -3 "target/$t.log"
  else
    echo "!! $t crashed; see fuzz/target/$t.log and fuzz/artifacts/$t/"
    failed=1
  fi
done
exit "$failed"
