"""`ssmbench gen-speed` through CliRunner: --verify, a smoke run + `ssmbench report`, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.models.megabyte import MegaByte

runner = CliRunner()
FAST = ["--gen-len", "20", "--prompt-len", "5", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_verify_smoke_preset_passes_for_every_model(tmp_path) -> None:
    res = runner.invoke(
        app, ["gen-speed", "--preset", "gen-smoke", "--verify", "--batch-sizes", "1", *FAST,
              "--out", str(tmp_path / "run"), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [v["model"] for v in doc["verify"]] == ["mambabyte", "megabyte", "byte-transformer"]
    assert all(v["passed"] and v["error"] <= v["tolerance"] < 1e-3 for v in doc["verify"])
    assert all(v["sensitivity"] >= 100 * v["tolerance"] for v in doc["verify"])


def test_verify_fails_with_exit_1_on_a_broken_cache(tmp_path, monkeypatch) -> None:
    real_step = MegaByte.step

    def broken(self, idx_t, cache):
        cache.patch_bytes.add_(1).remainder_(256)  # the global model then sees wrong patches
        return real_step(self, idx_t, cache)

    monkeypatch.setattr(MegaByte, "step", broken)
    res = runner.invoke(
        app, ["gen-speed", "--models", "megabyte", "--preset", "gen-smoke", "--verify", *FAST,
              "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.stdout
    assert not (tmp_path / "run").exists()  # nothing measured


def test_smoke_run_writes_folder_and_report_renders_it(tmp_path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["gen-speed", "--batch-sizes", "1,2", *FAST, "--sample", "--top-k", "8", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    for f in ("manifest.json", "metrics.csv", "summary.json", "summary.md", "bytes_per_s_vs_batch.png",
              "step_latency_vs_position.png", "time_to_generate.png"):  # fmt: skip
        assert (out / f).is_file(), f
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "gen-speed" and manifest["random_init"] is True
    assert manifest["ceilings"]["copy_gbps"] > 0
    df = pd.read_csv(out / "metrics.csv")
    gen = df[df["measurement"] == "generate"]
    assert len(gen) == 6 and (gen["status"] == "ok").all()
    assert (gen["bytes_per_s"] > 0).all() and (gen["stream_limit_frac"] > 0).all()
    assert gen["decode_path"].str.startswith("eager").all()
    latency_models = set(df[df["measurement"] == "step_latency"]["model"])
    assert latency_models == {"mambabyte", "megabyte", "byte-transformer"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ratio_reference"] == "megabyte"
    assert summary["bytes_per_s_ratio"]["1"]["megabyte"] == pytest.approx(1.0)
    assert "random-init" in (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    rep = runner.invoke(app, ["report", str(out)])
    assert rep.exit_code == 0, rep.output
    assert (out / "summary.md").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--models", "nope"], "unknown model"),
        (["--preset", "gen-smoke", "--models", "mambabyte,nope"], "unknown model"),
        (["--preset", "no-such-set"], "unknown preset"),
        (["--gen-len", "0"], "--gen-len"),
        (["--prompt-len", "0"], "--prompt-len"),
        (["--prompt-file", "/no/such/file.txt"], "does not exist"),
        (["--batch-sizes", "1,x"], "--batch-sizes"),
        (["--batch-sizes", "0"], "--batch-sizes"),
        (["--batch-sizes", "1000000000"], "does not fit"),
        (["--dtype", "int8"], "unknown dtype"),
        (["--device", "tpu"], "device"),
        (["--sample", "--temperature", "0"], "temperature"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path) -> None:
    res = runner.invoke(app, ["gen-speed", *args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_prompt_file_sets_the_prompt(tmp_path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"To be, or not")
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["gen-speed", "--models", "mambabyte", "--preset", "gen-smoke", "--batch-sizes", "1",
              "--gen-len", "4", "--prompt-file", str(prompt), "--out", str(out), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["prompt_len"] == 13
