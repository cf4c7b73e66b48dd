#!/usr/bin/env bash
# One device call = one stage. Usage (on the GPU machine, from the repo root):
#   bash benchmarks/gpu/session.sh STAGE
# Stages: kernels | train | gen | bench. Results go under $OUT (tarred: the device tool brings
# back at most 8 files) and the log to $OUT/STAGE.log.
set -uo pipefail
stage=${1:?stage}
: "${OUT:=/tmp/out}"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
R=/tmp/results; mkdir -p "$R" "$OUT"
log=$OUT/$stage.log
exec > >(tee -a "$log") 2>&1
ss() { python3 -m ssmbench "$@"; echo "[exit $? : ssmbench $*]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv
python3 -m ssmbench env --json > "$OUT/env.json"

case $stage in
kernels)
  if [ -d .carry/mamba_ssm-2.3.2.post1 ]; then
    (bash benchmarks/build_mamba_ssm.sh .carry/mamba_ssm-2.3.2.post1 /tmp/mssm > "$OUT/mamba_build.log" 2>&1; echo "build exit $?" >> "$OUT/mamba_build.log") &
    bpid=$!
  fi
  python3 benchmarks/dev_scan_gpu.py 2>&1 | tail -60
  [ -n "${bpid:-}" ] && { wait "$bpid"; tail -3 "$OUT/mamba_build.log"; }
  python3 -c "import selective_scan_cuda" 2>/dev/null || true
  if PYTHONPATH=/tmp/mssm:$PYTHONPATH python3 -c "import selective_scan_cuda, mamba_ssm.ops.selective_scan_interface"; then
    export PYTHONPATH=/tmp/mssm:$PYTHONPATH
  fi
  ss kernel-profile --preset standard --device cuda --out "$R/kernel-profile-standard" \
     --save-baseline "$R/baseline.json"
  ss kernel-profile --compare "$R/baseline.json" --device cuda --out "$R/gate-check" || true
  ;;
train)
  ss train-compare --preset small --device cuda --out "$R/train-compare-small"
  ;;
gen)
  ss gen-speed --preset gen-paper --models mambabyte-972m,megabyte-1.3b-350m,transformer-320m \
     --batch-sizes 1,8,64 --verify --device cuda --out "$R/gen-speed-paper"
  ;;
bench)
  ss train-compare --preset bytes-small --device cuda --out "$R/train-compare-bytes-small"
  python3 -m pytest benchmarks -q --benchmark-only --benchmark-json="$R/benchmarks.json" \
     -k "train_step" 2>&1 | tail -40
  ;;
*) echo "unknown stage $stage"; exit 2 ;;
esac
tar czf "$OUT/results-$stage.tgz" -C "$R" .
ls -la "$OUT"
