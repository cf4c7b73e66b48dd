#!/usr/bin/env bash
# Runs the GPU measurements behind docs/results.md, one or more stages per call. Usage (on the GPU
# machine, from the repo root):
#   bash benchmarks/gpu/run_stage.sh STAGE [STAGE...]
# Stages: kernels | variants | chunked | gate | tests | train | gen | bench, and for the reference rows and
# the two-GPU runs: official (start building mamba_ssm in the background, causal-conv1d prebuilt from
# .carry/cc1d.txz) | await-official | small-x2 | ddp | bytes-x2 | issue12 | scan-host |
# official-rows | seq-small | fsdp | ops-tests | kp-standard | gen-verify | timeline |
# variants16 | stamps | train-step | kp-short. Results go under $OUT as one
# tarball (results.tgz; a remote runner may bring back only a few files) and the log to $OUT/run_stage.log.
set -uo pipefail
: "${1:?stage}"
: "${OUT:=/tmp/out}"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
R=${R:-/tmp/results-$(date +%s)}; mkdir -p "$R" "$OUT"  # one folder per call: a warm machine keeps /tmp
REF=$PWD/build/ref  # git-ignored and never carried: a warm machine keeps the build between calls
official_path() { export PYTHONPATH=$REF/mb/mamba_ssm:$REF/cc1d:$PYTHONPATH; }
exec > >(tee -a "$OUT/run_stage.log") 2>&1
ss() { python3 -m ssmbench "$@"; echo "[exit $? : ssmbench $*]"; }
# shared by two stages each; the argument is the time limit in seconds
train_step() {  # one training step at paper-v1 size, ours beside mamba_ssm's MambaLMHeadModel
  timeout -s INT "$1" python3 benchmarks/gpu/official_check.py transformer mamba-mlp moe-mamba \
    --json "$R/train-step-paper-v1.json" 2>&1 | tail -40
}
kp_standard() {  # the standard scan sweep, Triton beside mamba_ssm, forward and forward+backward
  timeout -s INT "$1" python3 -m ssmbench kernel-profile --preset standard --device cuda \
     --impl triton,mamba_ssm --mode fwd,fwd_bwd --rounds 1 --out "$R/kernel-profile-standard-h200"
  echo "[exit $? : kernel-profile standard]"
}
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
official)
  mkdir -p "$REF/cc1d"
  [ -f "$REF/cc1d/causal_conv1d/__init__.py" ] || tar xJf .carry/cc1d.txz -C "$REF/cc1d"
  if ! (official_path; python3 -c "import mamba_ssm.ops.selective_scan_interface" 2>/dev/null); then
    MAX_JOBS=${MAX_JOBS:-8} nohup bash benchmarks/build_mamba_ssm.sh .carry "$REF/mb" mamba_ssm \
      > "$REF/build.log" 2>&1 &
    echo $! > "$REF/build.pid"
  fi
  ;;
await-official)
  [ -f "$REF/build.pid" ] && while kill -0 "$(cat "$REF/build.pid")" 2>/dev/null; do sleep 5; done
  official_path
  python3 -c "import mamba_ssm, causal_conv1d; print('mamba_ssm', mamba_ssm.__version__, 'causal_conv1d', causal_conv1d.__version__)" \
    || tail -20 "$REF/build.log" "$REF/mb/mamba_ssm.log"
  ;;
timeline)
  # when each kernel of the scan's forward+backward is launched and runs, ours beside mamba_ssm
  official_path
  timeout -s INT 120 python3 benchmarks/gpu/scan_timeline.py --json "$R/scan-timeline.json"
  ;;
stamps)
  # host time stamps inside the scan's forward+backward (no profiler), ours beside mamba_ssm and a no-op
  official_path
  for L in ${STAMP_LS:-256 512}; do
    timeout -s INT 150 python3 benchmarks/gpu/scan_stamps.py --shape "8,2048,$L,16" --before .carry/scan_before.py \
      --json "$R/scan-stamps-L$L.json"
  done
  ;;
kp-short)
  # the short-L rows only, Triton beside mamba_ssm, several rounds (host-bound there: the spread is wide)
  official_path
  timeout -s INT "${KP_LIMIT:-170}" python3 -m ssmbench kernel-profile --shape 8,2048,256,16 --shape 8,2048,512,16 \
     --device cuda --impl triton,mamba_ssm --mode fwd,fwd_bwd --dtype bfloat16 --rounds "${KP_ROUNDS:-3}" \
     --out "$R/kernel-profile-short-h200"
  echo "[exit $? : kernel-profile short L]"
  ;;
train-step)
  # one training step at paper-v1 size: ours beside mamba_ssm's MambaLMHeadModel, and the step ratios
  official_path
  train_step "${STEP_LIMIT:-150}"
  ;;
small-x2)
  # the five-way comparison, 3 seeds, its 15 runs side by side on two GPUs
  # (SIGINT at the limit: the finished runs stay, and --resume continues the rest)
  timeout -s INT "${SMALL_LIMIT:-420}" python3 -m ssmbench train-compare --preset small --devices cuda:0,cuda:1 \
    --out "$R/train-compare-small-h200x2" --json > "$R/small.json"
  echo "[exit $? : train-compare small x2]"
  ;;
ddp)
  # one model, the same global batch, on one GPU and data-parallel over two (torchrun): tokens/s and
  # curves. A GPU-bound step (MambaByte, 32 x 1024 bytes); small's mamba is host-bound at 30 ms a step,
  # so halving its batch per GPU saves nothing.
  m=${DDP_MODEL:-mambabyte}
  args=(train-compare --preset "${DDP_PRESET:-bytes-small}" --models "$m" --seeds 1 --steps "${DDP_STEPS:-200}"
        --eval-interval 50 --json ${DDP_BATCH:+--batch-size $DDP_BATCH})
  CUDA_VISIBLE_DEVICES=0 python3 -m ssmbench "${args[@]}" --device cuda --out "$R/ddp-$m-1gpu" > /dev/null
  echo "[exit $? : 1 GPU]"
  torchrun --standalone --nproc-per-node 2 -m ssmbench "${args[@]}" --out "$R/ddp-$m-2gpu" > /dev/null
  echo "[exit $? : torchrun 2 GPUs]"
  ss compare "$R/ddp-$m-1gpu" "$R/ddp-$m-2gpu" --out "$R/ddp-$m-compare"
  ;;
bytes-x2)
  # MambaByte vs MegaByte (the papers' pair; BYTE_MODELS adds the byte Transformer), 3 seeds, side by side on
  # BYTES_DEVICES (default both GPUs); the same command with the same R (a warm machine) continues a cut run
  TIMEFORMAT='[wall %R s]'
  f=$R/train-compare-bytes-small-${BYTES_NAME:-h200x2}
  if [ -f "$f/manifest.json" ]; then run=(--resume "$f"); else
    run=(--preset bytes-small --models "${BYTE_MODELS:-mambabyte,megabyte}" --out "$f"); fi
  time timeout -s INT "${BYTES_LIMIT:-540}" python3 -m ssmbench train-compare "${run[@]}" \
    --devices "${BYTES_DEVICES:-cuda:0,cuda:1}" --json > "$R/bytes-$(date +%s).json"
  echo "[exit $? : train-compare bytes-small]"
  ;;
conv)
  # the Mamba layer's conv: PyTorch, the Triton kernels, causal-conv1d's CUDA kernel (prebuilt, carried)
  mkdir -p "$REF/cc1d"
  [ -f "$REF/cc1d/causal_conv1d/__init__.py" ] || tar xJf .carry/cc1d.txz -C "$REF/cc1d"
  PYTHONPATH=$REF/cc1d:$PYTHONPATH timeout -s INT 100 python3 benchmarks/gpu/conv_variants.py \
    --json "$R/conv-variants.json" 2>&1 | tail -40
  ;;
scan-host)
  # where the scan's host time goes at short L, ours beside mamba_ssm (when built)
  official_path
  timeout -s INT 150 python3 benchmarks/gpu/scan_host.py --json "$R/scan-host.json"
  ;;
official-rows)
  # the NAME@mamba_ssm reference rows inside train-compare and gen-speed (a short run: the path, not a result)
  official_path
  ss train-compare --preset small --models mamba,mamba@mamba_ssm --seeds 1 --steps 200 --device cuda \
    --out "$R/train-compare-official-rows"
  ss gen-speed --preset gen-small --models mambabyte,mambabyte@mamba_ssm --batch-sizes 1,8 --gen-len 512 \
    --verify --device cuda --out "$R/gen-speed-official-rows"
  ;;
fsdp)
  # one model sharded over two GPUs with FSDP2 (torchrun): the path on CUDA, a short run
  torchrun --standalone --nproc-per-node 2 -m ssmbench train-compare --preset bytes-small --models mambabyte \
    --seeds 1 --steps "${FSDP_STEPS:-60}" --eval-interval 30 --fsdp --json --out "$R/fsdp-mambabyte-2gpu" > /dev/null
  echo "[exit $? : torchrun FSDP 2 GPUs]"
  ;;
ops-tests)
  # the op tests on CUDA (Triton kernels against their references, CUDA-graph capture)
  timeout -s INT "${TESTS_LIMIT:-150}" python3 -m pytest ${TESTS:-tests/ops} -rfs -p no:cacheprovider 2>&1 | tail -25
  ;;
kp-standard)
  # the standard scan sweep, Triton beside mamba_ssm, forward and forward+backward
  official_path
  kp_standard "${KP_LIMIT:-170}"
  ;;
gen-verify)
  # gen-speed --verify on CUDA for the three byte-level families (cached decoding against the forward)
  ss gen-speed --preset gen-small --batch-sizes 1 --gen-len 256 --verify --device cuda --out "$R/gen-speed-verify"
  ;;
seq-small)
  # the five-way comparison, 3 seeds, its 15 runs one after another on one GPU (against small-x2);
  # cut at SEQ_LIMIT by SIGINT, the same command with the same R (a warm machine) continues it
  TIMEFORMAT='[wall %R s]'
  f=$R/train-compare-small-1gpu
  if [ -f "$f/manifest.json" ]; then run=(--resume "$f"); else run=(--preset small --out "$f"); fi
  time timeout -s INT "${SEQ_LIMIT:-540}" python3 -m ssmbench train-compare "${run[@]}" --device cuda:0 \
    --json > "$R/seq-$(date +%s).json"
  echo "[exit $? : train-compare small on one GPU]"
  ;;
variants16)
  # the short-L launch shapes at N = 16, forward+backward also as CUDA graph replays (GPU time alone)
  official_path
  timeout -s INT "${VAR_LIMIT:-200}" python3 benchmarks/gpu/scan_variants.py --n 16 --old none \
    --json "$R/scan-variants-n16.json" 2>&1 | tail -45
  ;;
issue12)
  # the scan at short L and large N, the conv, the training step: ours beside mamba_ssm / causal-conv1d
  official_path
  timeout -s INT 170 python3 benchmarks/gpu/scan_variants.py --json "$R/scan-variants.json" --old .carry/old_scan.py \
    2>&1 | tail -60
  timeout -s INT 80 python3 benchmarks/gpu/conv_variants.py --json "$R/conv-variants.json" 2>&1 | tail -30
  train_step 120
  kp_standard "${KP_LIMIT:-150}"
  ;;
*) echo "unknown stage $stage"; exit 2 ;;
esac
done
tar czf "$OUT/results.tgz" --exclude=checkpoints -C "$R" .
ls -la "$OUT"
