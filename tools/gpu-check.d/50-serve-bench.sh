#!/usr/bin/env bash
# Serving latency on the GPU (issue #12, item 6): tools/TransPeft.ServeBench on --device cuda through the public session
# API: time to first token and per-token p50/p99 at batch 1, adapter load / hot swap / first token on a just-loaded
# adapter, and the 1/8/32-adapter throughput ratio (or the reason the device has no mixed-adapter batches yet).
# The `small` preset (~31.6M parameters, the CPU comparison's shape) first, then `0.5b` if time remains. Results:
# LOGDIR/serve-bench-<shape>.json and .txt (they come back in logs.tar.gz); the summary line is the table's cell.
# Dry run elsewhere: TPEFT_SERVE_BENCH_DEVICE=cpu|cuda-emulated and TPEFT_SERVE_BENCH_SHAPES="micro" (defaults cuda, "small 0.5b").
set -uo pipefail
device="${TPEFT_SERVE_BENCH_DEVICE:-cuda}"
shapes="${TPEFT_SERVE_BENCH_SHAPES:-small 0.5b}"
dll="$TPEFT_PKG/servebench/TransPeft.ServeBench.dll"
if [ ! -f "$dll" ]; then echo "summary: skipped: $dll is not in the package (rebuild it with tools/gpu-package.sh)"; exit 77; fi
if [ "$device" = cuda ] && ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "summary: skipped: no GPU (nvidia-smi lists none)"; exit 77
fi
start=$SECONDS
budget="${TPEFT_STEP_TIMEOUT:-300}"
summaries=()
rc_all=0
for shape in $shapes; do
  left=$(( budget - (SECONDS - start) - 5 ))
  # 0.5b: ~90 s on an H100 for model creation, upload and 8 runs; do not start it with less.
  need=30; [ "$shape" = 0.5b ] && need=120
  if [ "$left" -lt "$need" ]; then summaries+=("$shape: out of time"); continue; fi
  timeout "$left" "$TPEFT_DOTNET" "$dll" --device "$device" --shape "$shape" --json "$TPEFT_LOGDIR/serve-bench-$shape.json" \
    > "$TPEFT_LOGDIR/serve-bench-$shape.txt" 2>&1
  rc=$?
  cat "$TPEFT_LOGDIR/serve-bench-$shape.txt"
  line="$(grep '^summary:' "$TPEFT_LOGDIR/serve-bench-$shape.txt" | tail -1 | cut -d: -f2- | sed 's/^ *//')"
  if [ $rc -ne 0 ]; then
    rc_all=1
    line="${line:-exit $rc$([ $rc -eq 124 ] && echo ' (timed out)'): $(tail -1 "$TPEFT_LOGDIR/serve-bench-$shape.txt" | cut -c1-120)}"
  fi
  summaries+=("$line")
done
joined="$(printf ' | %s' "${summaries[@]}")"
echo "summary: ${joined:3}"
exit $rc_all
