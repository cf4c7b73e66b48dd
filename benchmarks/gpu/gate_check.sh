#!/usr/bin/env bash
# The timing gate on the GPU, end to end: a small baseline, a rerun that must pass (exit 0), and a
# rerun against the same baseline with every sample halved (a 2x-too-fast baseline) that must fail
# (exit 1). Writes the gate folders under $R.
set -uo pipefail
R=${R:-/tmp/results}; mkdir -p "$R"
kp() { python3 -m ssmbench kernel-profile "$@"; }
kp --shape 8,1536,2048,16 --shape 8,2048,4096,16 --impl triton,attention --mode fwd,fwd_bwd --dtype bf16 \
   --device cuda --out "$R/gate-baseline-run" --save-baseline "$R/gate-baseline.json" > /dev/null
echo "baseline exit $?"
kp --compare "$R/gate-baseline.json" --device cuda --out "$R/gate-pass" | tail -12
echo "gate against a fresh baseline: exit ${PIPESTATUS[0]} (expect 0)"
python3 - "$R/gate-baseline.json" "$R/gate-2x.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
for row in b["rows"]:
    row["samples_ms"] = [s / 2 for s in row["samples_ms"]]
json.dump(b, open(sys.argv[2], "w"))
PY
kp --compare "$R/gate-2x.json" --device cuda --out "$R/gate-fail" | tail -12
echo "gate against a 2x-too-fast baseline: exit ${PIPESTATUS[0]} (expect 1)"
