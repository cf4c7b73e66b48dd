# Two commands matter: `make demo` (the main job on the embedded data) and `make test`.
PY ?= python3
OUT ?= results/demo

.PHONY: torch install install-dev install-bench demo test test-timing lint bench profile-smoke docs clean

# torch first: on a CPU-only machine `torch==2.13.0` is the local CPU build; an
# unpinned torch would pull gigabytes of CUDA wheels. A machine that already has a
# torch (a GPU image, say) keeps it.
torch:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0

# The package alone: no triton, no test tools.
install: torch
	$(PY) -m pip install -q -e .

# What the tests need: pytest, ruff, scipy, triton (its interpreter runs the kernels on CPU),
# and pytest-benchmark (tests/benchmarks runs the benchmark suites).
install-dev: torch
	$(PY) -m pip install -q -e '.[dev,bench]'

install-bench: torch
	$(PY) -m pip install -q -e '.[bench]'

demo: install
	$(PY) -m ssmbench train-compare --preset smoke --out $(OUT)/train-compare
	$(PY) -m ssmbench kernel-profile --preset smoke --out $(OUT)/kernel-profile

test: install-dev  # the timing-marked tests last, on their own (a loaded machine can flake them)
	$(PY) -m pytest tests -m "not timing"
	$(PY) -m pytest tests -m timing

test-timing: install-dev  # tests that pass or fail on measured times: a loaded machine can flake them
	$(PY) -m pytest tests -m timing

lint: install-dev
	$(PY) -m ruff check ssmbench tests benchmarks

bench: install-bench
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-autosave

profile-smoke: install
	$(PY) -m ssmbench kernel-profile --preset smoke --out results/kernel-profile-smoke

docs:
	$(PY) -m ssmbench.cli.reference > docs/cli.md

clean:
	rm -rf build *.egg-info .pytest_cache .benchmarks
