"""Local files, enwik8 (on a fake zip), Hugging Face errors, token windows and BPB bookkeeping."""

from __future__ import annotations

import hashlib
import sys
import types
import zipfile

import numpy as np
import pytest
import torch

from ssmbench.data import enwik8
from ssmbench.data.dataset import TokenDataset
from ssmbench.data.sources import load_source
from ssmbench.data.tokenizers import ByteTokenizer, resolve_tokenizer
from ssmbench.errors import BadInput


def test_local_file_and_folder(tmp_path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"x" * 900 + b"y" * 100)
    src = load_source(str(f))
    assert src.train == b"x" * 900 and src.val == b"y" * 100
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_bytes(b"B" * 50)
    (folder / "sub" / "c.txt").write_bytes(b"C" * 50)
    (folder / ".hidden").write_bytes(b"H" * 50)
    src = load_source(str(folder))
    assert src.train + src.val == b"B" * 50 + b"C" * 50 and src.info["files"] == 2
    for bad in (str(tmp_path / "missing.txt"),):
        with pytest.raises(BadInput, match="no such file"):
            load_source(bad)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(BadInput):
        load_source(str(tmp_path / "empty.txt"))


@pytest.fixture
def fake_enwik8(tmp_path, monkeypatch):
    data = np.random.default_rng(0).integers(32, 127, size=1000, dtype=np.uint8).tobytes()
    zpath = tmp_path / "served" / "enwik8.zip"
    zpath.parent.mkdir()
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("enwik8", data)
    monkeypatch.setattr(enwik8, "URL", zpath.as_uri())
    monkeypatch.setattr(enwik8, "MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(enwik8, "SIZE", 1000)
    monkeypatch.setattr(enwik8, "SPLIT", (900, 50, 50))
    monkeypatch.setenv("SSMBENCH_CACHE", str(tmp_path / "cache"))
    return data


def test_enwik8_download_split_and_cache(fake_enwik8, tmp_path, monkeypatch) -> None:
    src = load_source("enwik8")
    assert src.train == fake_enwik8[:900] and src.val == fake_enwik8[900:950]
    assert (tmp_path / "cache" / "enwik8").is_file()
    monkeypatch.setattr(enwik8, "URL", (tmp_path / "gone.zip").as_uri())
    assert load_source("enwik8").train == fake_enwik8[:900]  # from the cache, no download


def test_enwik8_bad_checksum_and_download_failure(fake_enwik8, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(enwik8, "MD5", "0" * 32)
    with pytest.raises(BadInput, match="checksum"):
        load_source("enwik8")
    assert not (tmp_path / "cache" / "enwik8").exists()
    monkeypatch.setattr(enwik8, "URL", (tmp_path / "gone.zip").as_uri())
    with pytest.raises(BadInput, match="could not download"):
        load_source("enwik8")


def test_hf_missing_package_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(BadInput, match="datasets package"):
        load_source("hf:c4")
    with pytest.raises(BadInput, match="unknown Hugging Face source"):
        load_source("hf:wiki")


def test_hf_unreachable_and_streaming(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("no route to host\nmore detail")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(BadInput, match="could not stream allenai/c4 .ConnectionError: no route to host.$"):
        load_source("hf:c4")
    rows = lambda *a, split, **k: iter([{"text": f"{split} document {i}"} for i in range(10_000)])
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=rows))
    src = load_source("hf:pg19", hf_bytes=2000)
    assert len(src.train) == 2000 and src.train.startswith(b"train document 0\n\n")
    assert src.val.startswith(b"validation document 0")


def _dataset(tokenizer_spec: str, seq_len: int = 16):
    src = load_source("synthetic", synthetic_bytes=40_000, seed=0)
    tok, _ = resolve_tokenizer(tokenizer_spec, src.train)
    ds = TokenDataset(tok.encode(src.train), tok.encode(src.val), seq_len, tok.token_byte_lengths(), seed=7)
    return tok, src, ds


def test_train_batches_are_seeded_windows_of_the_stream() -> None:
    _, _, ds = _dataset("bytes")
    a, b, c = ds.train_batch(3, 5), ds.train_batch(3, 5), ds.train_batch(4, 5)
    assert a.shape == (5, 17) and a.dtype == torch.int64
    assert torch.equal(a, b) and not torch.equal(a, c)
    stream = ds.train_ids.long()
    for row in a:
        starts = (stream[: len(stream) - 16] == row[0]).nonzero().flatten()
        assert any(torch.equal(stream[s : s + 17], row) for s in starts)


@pytest.mark.parametrize("spec", ["bytes", "bpe:320"])
def test_eval_windows_count_raw_bytes(spec: str) -> None:
    tok, src, ds = _dataset(spec, seq_len=13)
    ev = ds.eval_set(max_windows=10_000)
    assert ev.mode == "nonoverlap" and ev.mask.all()
    assert ev.n_bytes == len(tok.decode(ev.targets.flatten().tolist()))
    # scored targets of consecutive windows are one contiguous piece of the validation text
    covered = tok.decode(ev.targets.flatten().tolist())
    assert covered in src.val and len(covered) > 0.9 * len(src.val)
    sl = ds.eval_set(max_windows=10_000, mode="sliding", stride=5)
    assert sl.stride == 5 and sl.mask[0].all() and int(sl.mask[1].sum()) == 5
    scored = tok.decode(sl.targets[sl.mask].tolist())  # row-major = stream order
    assert scored in src.val and sl.n_bytes == len(scored)
    # a uniform model's BPB is log2(V) * tokens / bytes whatever the tokenizer
    bpb_uniform = ev.n_tokens * np.log2(tok.vocab_size) / ev.n_bytes
    assert bpb_uniform == pytest.approx(np.log2(tok.vocab_size) * ev.n_tokens / len(covered))


def test_bad_windows_are_bad_input() -> None:
    _, src, _ = _dataset("bytes")
    ids = ByteTokenizer().encode(src.val[:10])
    with pytest.raises(BadInput, match="longer than the training split"):
        TokenDataset(ids, ids, 64, np.ones(256, dtype=np.int64))
    _, _, ds = _dataset("bytes")
    for kwargs in ({"mode": "striped"}, {"mode": "sliding", "stride": 99}, {"max_windows": 0}):
        with pytest.raises(BadInput):
            ds.eval_set(**{"max_windows": 4, **kwargs})
