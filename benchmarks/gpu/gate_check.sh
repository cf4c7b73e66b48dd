#!/usr/bin/env bash
# The kernel gate on the GPU, end to end, in one call: a bf16 baseline of triton and attention rows
# (forward, forward+backward, decode step), then three gate runs against it:
#   1. the same code against the fresh baseline            must pass (exit 0)
#   2. the same code against a baseline 2x too fast        must fail (exit 1: REGRESSED rows)
#   3. a triton scan whose output is 4% off, bf16           must fail (exit 1: 'incorrect' rows)
# The wrong kernel is injected by benchmarks/gpu/gate_wrong_kernel.py (a wrapper in its own process;
# no source file changes). Logs and results folders go under $R; the last three lines are the verdict.
# DEVICE, SHAPES, IMPLS and WRONG override the defaults (a CPU dry run: DEVICE=cpu SHAPES=1,16,24,4
# IMPLS=chunked,attention WRONG=chunked; the Triton interpreter is too slow and rounds bf16 its own way).
set -uo pipefail
R=${R:-/tmp/results/gate-check}; mkdir -p "$R"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" && export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's ssmbench
DEVICE=${DEVICE:-cuda}
WRONG=${WRONG:-triton}
ROWS=(--impl "${IMPLS:-triton,attention}" --mode fwd,fwd_bwd,step --dtype bf16 --device "$DEVICE")
for s in ${SHAPES:-8,1536,2048,16 8,2048,4096,16}; do ROWS+=(--shape "$s"); done
kp() { python3 -m ssmbench kernel-profile "$@"; }
verdicts() {  # the verdict counts in the gate.csv of folder $1 (of impl $2's rows when given)
  python3 - "$1/gate.csv" "${2:-}" <<'PY'
import sys
import pandas as pd
g = pd.read_csv(sys.argv[1])
if sys.argv[2]:
    g = g[g["row_id"].str.startswith(sys.argv[2] + "/")]
print(", ".join(f"{v} {n}" for v, n in g["verdict"].value_counts().items()))
PY
}

kp "${ROWS[@]}" --out "$R/baseline-run" --save-baseline "$R/baseline.json" > "$R/baseline.log" 2>&1
base=$?
if [ $base -ne 0 ]; then echo "baseline run failed (exit $base), see $R/baseline.log"; exit 2; fi

kp --compare "$R/baseline.json" --device "$DEVICE" --out "$R/fresh" > "$R/fresh.log" 2>&1
fresh=$?

python3 - "$R/baseline.json" "$R/baseline-2x.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
for row in b["rows"]:
    row["samples_ms"] = [s / 2 for s in row["samples_ms"]]
json.dump(b, open(sys.argv[2], "w"))
PY
kp --compare "$R/baseline-2x.json" --device "$DEVICE" --out "$R/fast-baseline" > "$R/fast-baseline.log" 2>&1
fast=$?

python3 "$HERE/gate_wrong_kernel.py" --impl "$WRONG" --factor 1.04 -- \
    --compare "$R/baseline.json" --device "$DEVICE" --out "$R/wrong-kernel" > "$R/wrong-kernel.log" 2>&1
wrong=$?

verdict() { [ "$1" -eq "$2" ] && echo PASS || echo FAIL; }
echo "fresh baseline:        exit $fresh (expect 0) $(verdict $fresh 0); rows: $(verdicts "$R/fresh")"
echo "2x-too-fast baseline:  exit $fast (expect 1) $(verdict $fast 1); rows: $(verdicts "$R/fast-baseline")"
echo "4%-wrong bf16 $WRONG: exit $wrong (expect 1) $(verdict $wrong 1); $WRONG rows: $(verdicts "$R/wrong-kernel" "$WRONG")"
