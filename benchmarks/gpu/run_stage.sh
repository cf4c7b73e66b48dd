#!/usr/bin/env bash
# Runs the GPU measurements behind docs/results.md, one or more stages per call. Usage (on the GPU
# machine, from the repo root):
#   bash benchmarks/gpu/run_stage.sh STAGE [STAGE...]
# Stages: kernels | variants | chunked | gate | tests | train | gen | bench. Results go under $OUT as one
# tarball (results.tgz; a remote runner may bring back only a few files) and the log to $OUT/run_stage.log.
set -uo pipefail
: "${1:?stage}"
: "${OUT:=/tmp/out}"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
R=/tmp/results; mkdir -p "$R" "$OUT"
exec > >(tee -a "$OUT/run_stage.log") 2>&1
ss() { python3 -m ssmbench "$@"; echo "[exit $? : ssmbench $*]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv
python3 -m ssmbench env --json > "$OUT/env.json"

for stage in "$@"; do
echo "==== stage $stage"
case $stage in
kernels)
  # mamba_ssm's scan extension builds on the CPU cores while nothing else runs on the GPU.
  if [ -d .carry/mamba_ssm-2.3.2.post1 ]; then
    bash benchmarks/build_mamba_ssm.sh .carry/mamba_ssm-2.3.2.post1 /tmp/mssm > "$OUT/mamba_build.log" 2>&1
    tail -3 "$OUT/mamba_build.log"
    if PYTHONPATH=/tmp/mssm:$PYTHONPATH python3 -c "import mamba_ssm.ops.selective_scan_interface"; then
      export PYTHONPATH=/tmp/mssm:$PYTHONPATH
    fi
  fi
  # SIGINT, not SIGTERM: a sweep cut short keeps every finished row on disk.
  # The sequential ref costs seconds per sample at these shapes: time it once, at the anchor shape;
  # every other row still reports its error against ref (on a smaller shape where needed).
  timeout -s INT "${KP_LIMIT:-420}" python3 -m ssmbench kernel-profile --preset standard --device cuda \
     --impl "${KP_IMPLS:-chunked,triton,mamba_ssm,attention}" --rounds "${KP_ROUNDS:-1}" \
     --out "$R/kernel-profile-standard" --save-baseline "$R/baseline-h100.json"
  echo "[exit $? : kernel-profile standard]"
  ss kernel-profile --shape 8,1536,2048,16 --impl ref --mode fwd --dtype bf16 --device cuda \
     --out "$R/kernel-profile-ref"
  ;;
variants)
  # Where the Triton backward's time goes (variants and launch shapes, side by side).
  python3 benchmarks/gpu/bwd_variants.py --json "$R/bwd-variants.json"
  ;;
chunked)
  # The chunked scan at the anchor shape (forward compiled, forward+backward eager), then where
  # its time goes (kernel tables, module constants, side by side).
  ss kernel-profile --shape 8,1536,2048,16 --impl chunked --mode fwd,fwd_bwd --dtype bfloat16 --device cuda \
     --rounds 2 --out "$R/kernel-profile-chunked"
  python3 benchmarks/gpu/chunked_variants.py --json "$R/chunked-variants.json"
  ;;
gate)
  # The --compare gate end to end: fresh baseline passes, a 2x-too-fast baseline fails.
  R=$R/gate bash benchmarks/gpu/gate_check.sh
  ;;
tests)
  # The CUDA-only unit tests, and the pytest-benchmark kernel suite on CUDA.
  python3 -m pytest tests/generate/test_decode.py tests/layers/test_mamba_decode_fused.py tests/ops -q -rs -x \
     2>&1 | tail -15
  timeout -s INT 240 python3 -m pytest benchmarks/test_scan_kernels.py -q --benchmark-only \
     --benchmark-json="$R/scan-kernels-cuda.json" --benchmark-columns=min,median,iqr,rounds 2>&1 | tail -40
  ;;
train)
  ss train-compare --preset small --device cuda --out "$R/train-compare-small"
  ;;
gen)
  ss gen-speed --preset gen-paper --models mambabyte-972m,megabyte-1.3b-350m,transformer-320m \
     --batch-sizes 1,8,64 --verify --device cuda --out "$R/gen-speed-paper"
  ;;
bench)
  python3 -m pytest benchmarks/test_train_step.py -q --benchmark-only \
     --benchmark-json="$R/train-step-paper-v1.json" --benchmark-columns=min,median,iqr,rounds 2>&1 | tail -15
  ss gen-speed --preset gen-paper --models mambabyte-972m --batch-sizes 1,8,64 --verify --device cuda \
     --out "$R/gen-speed-mambabyte-fused"
  timeout -s INT "${TC_LIMIT:-300}" python3 -m ssmbench train-compare --preset bytes-small --device cuda \
     --out "$R/train-compare-bytes-small"
  echo "[exit $? : train-compare bytes-small]"
  ;;
*) echo "unknown stage $stage"; exit 2 ;;
esac
done
tar czf "$OUT/results.tgz" --exclude=checkpoints -C "$R" .
ls -la "$OUT"
