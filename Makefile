# Two commands matter: `make demo` (the main job on the embedded data) and `make test`.
PY ?= python3
OUT ?= results/demo

.PHONY: install demo test lint bench profile-smoke docs clean

# torch first: on a CPU-only machine `torch==2.13.0` is the local CPU build; an
# unpinned torch would pull gigabytes of CUDA wheels. A machine that already has a
# torch (a GPU image, say) keeps it.
install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'

demo: install
	$(PY) -m ssmbench train-compare --preset smoke --out $(OUT)/train-compare
	$(PY) -m ssmbench kernel-profile --preset smoke --out $(OUT)/kernel-profile

test: install
	$(PY) -m pytest tests

lint: install
	$(PY) -m ruff check ssmbench tests benchmarks

bench: install
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-autosave

profile-smoke: install
	$(PY) -m ssmbench kernel-profile --preset smoke --out results/kernel-profile-smoke

docs:
	$(PY) -m ssmbench.cli.reference > docs/cli.md

clean:
	rm -rf build *.egg-info .pytest_cache .benchmarks
