import json

import pandas as pd
import pytest

from ssmbench.errors import ResultsError
from ssmbench.results import SCHEMA_VERSION, RunFolder, atomic_write_text, load_run


def test_run_folder_roundtrip(tmp_path):
    folder = RunFolder.create("kernel-profile", tmp_path / "run")
    folder.write_manifest(config={"a": 1}, seed=3, environment={"device": "cpu"})
    folder.write_metrics([{"impl": "ref", "ms_median": 1.5}, {"impl": "chunked", "ms_median": 0.5}])
    folder.write_summary({"ok": True})
    run = load_run(tmp_path / "run")
    assert run.kind == "kernel-profile"
    assert run.manifest["schema_version"] == SCHEMA_VERSION
    assert list(run.metrics["impl"]) == ["ref", "chunked"]
    assert run.summary == {"ok": True}
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "content, msg",
    [("{not json", "not valid JSON"), (json.dumps({"kind": "x"}), "schema_version"),
     (json.dumps({"schema_version": 999, "kind": "x"}), "schema version 999")],
)
def test_load_run_rejects_bad_manifest(tmp_path, content, msg):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ResultsError, match=msg):
        load_run(tmp_path)


def test_load_run_missing(tmp_path):
    with pytest.raises(ResultsError, match="no results folder"):
        load_run(tmp_path / "nope")
    pd.DataFrame()


def test_atomic_write_uses_normal_file_mode(tmp_path):
    import os
    import stat

    target = tmp_path / "m.txt"
    atomic_write_text(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
