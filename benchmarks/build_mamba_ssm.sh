#!/usr/bin/env bash
# Build the official Mamba stack (mamba_ssm's selective-scan extension and causal-conv1d's conv
# extension) for sm_90 only, from the PyPI source distributions unpacked under CARRY_DIR (the
# device has no network: carry the sources there), both at once.
# Usage: bash benchmarks/build_mamba_ssm.sh CARRY_DIR BUILD_DIR [PACKAGES]
#   PACKAGES: "causal_conv1d mamba_ssm" (default) or one of them, e.g. when the other was built
#   earlier and carried; then: export PYTHONPATH=BUILD_DIR/mamba_ssm:BUILD_DIR/causal_conv1d:$PYTHONPATH
# Logs: BUILD_DIR/{mamba_ssm,causal_conv1d}.log. Exit 0 only when both import.
set -uo pipefail
carry=${1:?carry dir holding mamba_ssm-*/ and causal_conv1d-*/}; dst=${2:?build dir}
packages=${3:-causal_conv1d mamba_ssm}
mkdir -p "$dst"
jobs=${MAX_JOBS:-12}

build() {  # build NAME SRC: copy SRC to dst/NAME, keep only sm_90, build the extension in place
  local name=$1 src=$2 out=$dst/$1
  rm -rf "$out"; cp -r "$src" "$out"
  (
    cd "$out" || exit 1
    python3 - <<'PY'
import pathlib
p = pathlib.Path("setup.py"); s = p.read_text()
marker = "    # HACK: The compiler flag"
assert marker in s, "setup.py changed: no place to pin the architecture"
s = s.replace(marker, '    cc_flag = ["-gencode", "arch=compute_90,code=sm_90"]\n' + marker, 1)
p.write_text(s)
PY
    MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=$jobs NVCC_THREADS=${NVCC_THREADS:-2} \
      python3 setup.py build_ext --inplace
  ) > "$dst/$name.log" 2>&1
  echo "$name build exit $? ($(date +%T))"
}

start=$(date +%s)
for name in $packages; do
  build "$name" "$(ls -d "$carry/$name"-*/ | head -1)" &
done
wait
echo "built in $(( $(date +%s) - start )) s"
PYTHONPATH=$dst/mamba_ssm:$dst/causal_conv1d${PYTHONPATH:+:$PYTHONPATH} python3 -c "
import causal_conv1d, mamba_ssm
from causal_conv1d import causal_conv1d_fn
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
print('mamba_ssm', mamba_ssm.__version__, 'and causal_conv1d', causal_conv1d.__version__, 'import')
"
