"""--data pystdlib on the real standard library of this interpreter (sized small), and on a fake tree."""

from __future__ import annotations

import hashlib
import platform

import pytest

from ssmbench.data.pystdlib import is_validation, load_pystdlib, stdlib_files, stdlib_root
from ssmbench.data.streams import WindowStream
from ssmbench.data.training_data import DataRequest, open_training_data
from ssmbench.errors import BadInput


def test_real_stdlib_loads_hashes_and_splits_by_file() -> None:
    root = stdlib_root()
    files = stdlib_files(root)
    assert files == sorted(files) and len(files) > 100 and "os.py" in files
    excluded = {"site-packages", "dist-packages", "__pycache__"}
    assert not any(excluded.intersection(f.split("/")) for f in files)
    val_files = [f for f in files if is_validation(f)]
    train_files = [f for f in files if not is_validation(f)]
    assert 0.02 < len(val_files) / len(files) < 0.09
    train, val, info = load_pystdlib(data_bytes=300_000)
    assert len(train) == 300_000
    used = train_files[: info["train_files_used"]]
    assert train == b"".join((root / f).read_bytes() for f in used)[:300_000]
    assert val == b"".join((root / f).read_bytes() for f in val_files)  # whole files, none cut
    assert info["train_sha256"] == hashlib.sha256(train).hexdigest()
    assert info["val_sha256"] == hashlib.sha256(val).hexdigest()
    assert info["python"] == platform.python_version()
    counts = (info["files"], info["val_files"], info["train_files"])
    assert counts == (len(files), len(val_files), len(train_files))
    assert info["train_bytes_total"] == sum((root / f).stat().st_size for f in train_files)


def test_stdlib_training_data_end_to_end() -> None:
    req = DataRequest("pystdlib", tokenizer="bytes", seq_len=128, data_bytes=100_000, seed=3)
    data = open_training_data(req)
    assert isinstance(data.train, WindowStream)
    assert data.train.n_windows == (100_000 - 128) // 129
    assert data.tokens_available == data.train.n_windows * 128
    batch = data.train_batch(2, 16)
    assert batch.shape == (16, 129)
    ev = data.eval_set(8)
    assert ev.inputs.shape == (8, 128) and ev.n_bytes == 8 * 128
    d = data.describe()
    assert d["name"] == "pystdlib" and d["python"] == platform.python_version()
    assert d["train_bytes"] == 100_000 and len(d["train_sha256"]) == 64


def test_fake_tree_excludes_installed_packages(tmp_path) -> None:
    for rel in ("a.py", "pkg/b.py", "site-packages/x.py", "pkg/dist-packages/y.py", "__pycache__/z.py",
                "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"# {rel}\n")
    assert stdlib_files(tmp_path) == ["a.py", "pkg/b.py"]
    names = [f"m{i}.py" for i in range(400)]
    held = [n for n in names if is_validation(n)]
    assert 0 < len(held) < 50 and held == [n for n in names if is_validation(n)]
    with pytest.raises(BadInput, match="no .py files"):
        load_pystdlib(root=tmp_path / "nowhere")
