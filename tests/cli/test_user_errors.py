"""User errors end in one line on stderr and exit 2, never a traceback: folders that cannot be
written or are in use by another run, numbers that are not finite or out of range, sweeps in
which nothing could be measured."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ssmbench.generate.speed as speed_mod
from ssmbench.cli import app
from ssmbench.errors import ResultsError
from ssmbench.results import MANIFEST, RunFolder, writable_folder

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
KERNEL = ["kernel-profile", "--shape", "1,16,16,4", "--impl", "ref", "--mode", "fwd", "--rounds", "1",
          "--rep-ms", "1", "--min-reps", "2", "--device", "cpu"]
GEN = ["gen-speed", "--models", "mambabyte", "--preset", "gen-smoke", "--gen-len", "4", "--batch-sizes", "1",
       "--device", "cpu"]
TRAIN = ["train-compare", "--preset", "smoke", "--models", "transformer", "--steps", "2", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(result, *texts: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error:"), result.stderr
    for text in texts:
        assert text in err, err
    return err


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "not-a-folder.txt"
    f.write_text("x")
    return f


# -- folders that cannot be written -------------------------------------------------------------


@pytest.mark.parametrize("args", [KERNEL, GEN, TRAIN], ids=["kernel-profile", "gen-speed", "train-compare"])
def test_out_under_a_file_cannot_be_written(args, a_file):
    one_line_error(runner.invoke(app, [*args, "--out", str(a_file / "run")]), "--out", "cannot be written")


@pytest.mark.parametrize("args", [KERNEL, GEN], ids=["kernel-profile", "gen-speed"])
def test_out_that_is_a_file(args, a_file):
    one_line_error(runner.invoke(app, [*args, "--out", str(a_file)]), "exists and is not a folder")


def test_report_out_cannot_be_written(tmp_path, a_file):
    run = tmp_path / "run"
    assert runner.invoke(app, [*KERNEL, "--out", str(run)]).exit_code == 0
    one_line_error(runner.invoke(app, ["report", str(run), "--out", str(a_file / "x")]), "cannot be written")
    one_line_error(runner.invoke(app, ["compare", str(run), str(run), "--out", str(a_file)]), "not a folder")


def test_writable_folder_reports_a_permission_error(tmp_path, monkeypatch):
    def refuse(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ResultsError, match="cannot be written: Permission denied"):
        writable_folder(tmp_path / "ro" / "run")


def test_a_disk_error_while_writing_is_one_line(tmp_path, monkeypatch):
    """An OS error of the user's environment in the middle of a run (disk full, read-only)."""
    import ssmbench.results as results_mod

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results_mod, "atomic_write_bytes", full)
    one_line_error(runner.invoke(app, [*KERNEL, "--out", str(tmp_path / "run")]), "No space left on device")


# -- one writer per results folder --------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from ssmbench.results import RunFolder
    folder = RunFolder.create("kernel-profile", sys.argv[1])
    folder.write_manifest(config={"first": True}, seed=0, environment={})
    print("locked", flush=True)
    sys.stdin.readline()
    folder.write_summary({"first run": "finished"})
    print("done", flush=True)
""")


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_of_a_folder_stops_and_the_first_is_unharmed(tmp_path):
    out = tmp_path / "run"
    first = _holder(out)
    try:
        manifest = (out / MANIFEST).read_bytes()
        for args in (KERNEL, GEN, TRAIN):
            second = runner.invoke(app, [*args, "--out", str(out)])
            one_line_error(second, "being written by another ssmbench run")
        assert (out / MANIFEST).read_bytes() == manifest
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.stdout.readline().strip() == "done"
    finally:
        first.stdin.close()
        first.wait(timeout=60)
    assert first.returncode == 0
    assert json.loads((out / "summary.json").read_text()) == {"first run": "finished"}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "summary.json"]  # no lock file left


def test_a_killed_run_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    result = runner.invoke(app, [*KERNEL, "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_lock_held_in_process_and_released_on_close(tmp_path):
    out = tmp_path / "run"
    with RunFolder.create("x", out), pytest.raises(ResultsError, match="being written"):
        RunFolder.create("x", out)
    RunFolder.create("x", out).close()


# -- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, texts", [
    ([*TRAIN, "--lr", "nan"], ["--lr", "finite"]),
    ([*TRAIN, "--lr", "inf"], ["--lr", "finite"]),
    ([*TRAIN, "--lr", "-1"], ["lr must be positive"]),
    ([*TRAIN, "--target-loss", "nan"], ["--target-loss"]),
    ([*TRAIN, "--seed", "-1"], ["--seed must be >= 0"]),
    ([*TRAIN, "--experts", "0"], ["--experts"]),
    ([*KERNEL, "--rep-ms", "inf"], ["--rep-ms", "finite"]),
    ([*KERNEL, "--warmup-ms", "nan"], ["--warmup-ms", "finite"]),
    ([*KERNEL, "--p-threshold", "nan"], ["--p-threshold", "finite"]),
    ([*KERNEL, "--min-reps", "0"], ["--min-reps"]),
    ([*KERNEL, "--seed", "-3"], ["--seed must be >= 0"]),
    ([*GEN, "--sample", "--temperature", "inf"], ["--temperature", "finite"]),
    ([*GEN, "--sample", "--temperature", "0"], ["temperature must be positive"]),
    ([*GEN, "--gen-len", "0"], ["--gen-len"]),
    (["models", "--preset", "smoke", "--experts", "100"], ["--experts must be in 1..32, got 100"]),
    (["models", "--preset", "smoke", "--experts", "0"], ["--experts must be in 1..32, got 0"]),
    (["models", "--preset", "smoke", "--seq-len", "0"], ["--seq-len"]),
])
def test_bad_numbers_exit_2(args, texts, tmp_path):
    out = [] if args[0] == "models" else ["--out", str(tmp_path / "run")]
    one_line_error(runner.invoke(app, [*args, *out]), *texts)


def test_models_experts_in_range_is_accepted():
    result = runner.invoke(app, ["models", "--preset", "smoke", "--experts", "32", "--json"])
    assert result.exit_code == 0, result.output
    assert "32 experts" in json.loads(result.stdout)["description"]


def test_gate_options_need_compare():
    one_line_error(runner.invoke(app, [*KERNEL, "--allow-missing"]), "need --compare")
    one_line_error(runner.invoke(app, [*KERNEL, "--max-regression", "inf"]), "need --compare")


# -- nothing measured ---------------------------------------------------------------------------


def test_kernel_sweep_with_every_row_skipped_exits_2(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["kernel-profile", "--shape", "1,16,16,4", "--impl", "mamba_ssm", "--mode",
                                 "fwd,step", "--device", "cpu", "--out", str(out)])
    one_line_error(result, "no row of 2 was measured", "2 skipped: unavailable")
    assert (out / "metrics.csv").is_file()  # the rows and their reasons are still written


def test_gen_speed_with_every_batch_out_of_memory_exits_2(tmp_path, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(speed_mod, "_measure", oom)
    result = runner.invoke(app, [*GEN, "--batch-sizes", "1,2", "--out", str(tmp_path / "run")])
    one_line_error(result, "nothing was measured", "mambabyte batch 1: oom", "batch 2: oom")
