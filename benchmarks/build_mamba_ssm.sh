#!/usr/bin/env bash
# Build mamba_ssm's selective-scan CUDA extension for sm_90 only, from the PyPI source
# distribution unpacked under .carry/ (the device has no network; carry the source there).
# Usage: bash benchmarks/build_mamba_ssm.sh SRC_DIR BUILD_DIR   ->   export PYTHONPATH=BUILD_DIR:...
set -euo pipefail
src=${1:?source dir}; dst=${2:?build dir}
rm -rf "$dst"; cp -r "$src" "$dst"; cd "$dst"
# One architecture: the H100/H200 (sm_90). The stock setup.py builds up to nine.
python3 - <<'PY'
import re, pathlib
p = pathlib.Path("setup.py"); s = p.read_text()
s = s.replace("    # HACK: The compiler flag", '    cc_flag = ["-gencode", "arch=compute_90,code=sm_90"]\n    # HACK: The compiler flag', 1)
p.write_text(s)
# Import only the ops: the package __init__ also imports model code we do not need.
pathlib.Path("mamba_ssm/__init__.py").write_text('__version__ = "2.3.2.post1"\n')
PY
MAMBA_FORCE_BUILD=TRUE MAX_JOBS=${MAX_JOBS:-16} NVCC_THREADS=${NVCC_THREADS:-2} \
  python3 setup.py build_ext --inplace
python3 -c "import selective_scan_cuda; print('selective_scan_cuda built:', selective_scan_cuda.__file__)"
