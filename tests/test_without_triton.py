"""`make demo` installs no triton: the CLI must import and its demo commands run without it. Each
command runs in a fresh interpreter where importing triton fails as if it were not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIDE_TRITON = "import sys; sys.modules['triton'] = None; from ssmbench.cli import main; main()"


def run_without_triton(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # this checkout
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, "-c", HIDE_TRITON, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_env_says_triton_is_missing(tmp_path) -> None:
    res = run_without_triton("env", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "triton is not installed" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("train-compare", "--preset", "smoke", "--models", "mamba,moe-mamba", "--steps", "2",
         "--eval-interval", "1", "--json"),
        ("kernel-profile", "--preset", "smoke", "--shape", "1,8,16,4", "--json"),
        ("gen-speed", "--preset", "gen-smoke", "--models", "mambabyte", "--verify", "--json"),
    ],
    ids=["train-compare", "kernel-profile", "gen-speed"],
)  # fmt: skip
def test_demo_commands_run_without_triton(tmp_path, args) -> None:
    res = run_without_triton(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "out" / "manifest.json").is_file() and (tmp_path / "out" / "metrics.csv").is_file()
