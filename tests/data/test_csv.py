"""CSV source: column kinds, missing values, categoricals, target handling, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import ConfigError, DataError
from honing.data import load


def _mixed_rows(n: int = 60) -> list[list[object]]:
    colors = ["red", "green", "blue"]
    rows = []
    for i in range(n):
        size = "" if i % 7 == 3 else f"{i * 0.5:.1f}"
        color = "NA" if i % 11 == 5 else colors[i % 3]
        rows.append([i, size, color, "yes" if i % 2 else "no"])
    return rows


def test_csv_kinds_missing_and_onehot(tmp_path: Path, files) -> None:
    path = files.write_csv(tmp_path / "t.csv", ["id", "size", "color", "label"], _mixed_rows())
    ds = load(f"csv:{path}", seed=0)
    pre = ds.preprocessor
    assert pre.kinds == ["numeric", "numeric", "categorical"]
    assert pre.feature_names == ["id", "size", "color=blue", "color=green", "color=red"]
    assert ds.task == "classification" and ds.class_names == ["no", "yes"]
    assert ds.input_shape == (5,) and ds.train.x.dtype == torch.float32
    for split in (ds.train, ds.val, ds.test):
        assert torch.isfinite(split.x).all()  # missing values imputed
        assert (split.x[:, 2:].sum(1) == 1).all()  # missing colour -> most frequent, one-hot


def test_csv_unknown_category_is_all_zeros(tmp_path: Path, files) -> None:
    path = files.write_csv(tmp_path / "t.csv", ["id", "size", "color", "label"], _mixed_rows())
    ds = load(f"csv:{path}")
    out = ds.preprocessor.transform([[1, "2.5", "purple"], [2, None, "red"], [3, "nan", "NA"]])
    assert out.shape == (3, 5)
    torch.testing.assert_close(out[0, 2:], torch.zeros(3))
    torch.testing.assert_close(out[1, 2:], torch.tensor([0.0, 0.0, 1.0]))
    fill = ds.preprocessor.category_fill["color"]
    assert out[2, 2 + ds.preprocessor.categories["color"].index(fill)] == 1
    assert out[1, 1] == out[2, 1]  # missing numeric cells get the same (imputed) value


def test_csv_index_encoding(tmp_path: Path, files) -> None:
    path = files.write_csv(tmp_path / "t.csv", ["id", "size", "color", "label"], _mixed_rows())
    ds = load(f"csv:{path}", categorical="index")
    assert ds.input_shape == (3,)
    out = ds.preprocessor.transform([[1, 1, "blue"], [1, 1, "green"], [1, 1, "purple"]])
    assert out[:, 2].tolist() == [1.0, 2.0, 0.0]  # 1..K in sorted order, 0 unknown


def test_csv_target_column_and_drop(tmp_path: Path, files) -> None:
    rows = [[i, i % 3, float(i) * 1.5 + 0.25] for i in range(50)]
    path = files.write_csv(tmp_path / "r.csv", ["a", "b", "price"], rows)
    ds = load(f"csv:{path}", target="price")
    assert ds.task == "regression" and ds.num_outputs == 1 and ds.train.y.shape == (len(ds.train), 1)
    ds = load(f"csv:{path}", target="b", drop_columns=["price"])  # few integer values -> labels
    assert ds.task == "classification" and ds.class_names == ["0", "1", "2"] and ds.input_shape == (1,)
    ds = load(f"csv:{path}", target="b", task="regression")
    assert ds.task == "regression"
    ds = load(f"csv:{path}", target=["b", "price"])
    assert ds.task == "regression" and ds.num_outputs == 2


def test_csv_many_integer_values_is_regression(tmp_path: Path, files) -> None:
    path = files.write_csv(tmp_path / "r.csv", ["a", "y"], [[i, i * 3] for i in range(60)])
    assert load(f"csv:{path}").task == "regression"


def test_csv_rows_with_missing_target_dropped(tmp_path: Path, files) -> None:
    rows = [[i, "" if i % 10 == 0 else i % 2] for i in range(50)]
    path = files.write_csv(tmp_path / "m.csv", ["a", "y"], rows)
    ds = load(f"csv:{path}", drop_duplicates=False)
    assert ds.info["dropped_missing_target"] == 5
    assert len(ds.train) + len(ds.val) + len(ds.test) == 45


def test_csv_scale_target(tmp_path: Path, files) -> None:
    rows = [[i, 100.0 + 10 * i + (i % 3)] for i in range(40)]
    path = files.write_csv(tmp_path / "r.csv", ["a", "y"], rows)
    ds = load(f"csv:{path}", scale_target=True)
    assert abs(float(ds.train.y.mean())) < 1e-5
    back = ds.preprocessor.inverse_transform_target(ds.train.y)
    raw_y = ds.raw_train_val[1][: len(ds.train)]
    np.testing.assert_allclose(back.numpy(), raw_y, rtol=1e-5)
    with pytest.raises(ConfigError, match="scale_target"):
        load("sklearn:iris", scale_target=True)


def test_regression_targets_are_standardized_by_default_and_it_is_said(tmp_path: Path, files) -> None:
    from honing.pipeline._summary import data_lines

    rows = [[i, 100.0 + 10 * i + (i % 3)] for i in range(40)]
    path = files.write_csv(tmp_path / "r.csv", ["a", "y"], rows)
    ds = load(f"csv:{path}")
    assert abs(float(ds.train.y.mean())) < 1e-5 and ds.info["scale_target"] == {"on": True, "origin": "default"}
    assert any("target standardized for training (the default for regression" in line
               for line in data_lines(ds.summary()))
    off = load(f"csv:{path}", scale_target=False)  # asked off: the targets stay in their units
    assert float(off.train.y.mean()) > 100 and off.info["scale_target"] == {"on": False, "origin": "data.scale_target"}
    assert not any("standardized" in line for line in data_lines(off.summary()))
    assert "scale_target" not in load("sklearn:iris").info  # classification: nothing to say


def test_csv_errors_name_the_thing(tmp_path: Path, files) -> None:
    path = files.write_csv(tmp_path / "t.csv", ["a", "b"], [[i, i % 2] for i in range(20)])
    with pytest.raises(DataError, match="'nope'") as info:
        load(f"csv:{path}", target="nope")
    assert "a, b" in str(info.value)  # lists the columns
    with pytest.raises(DataError, match="missing.csv"):
        load(f"csv:{tmp_path / 'missing.csv'}")
    bad = tmp_path / "ragged.csv"
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match="line 3"):
        load(f"csv:{bad}")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load(f"csv:{tmp_path / 'empty.csv'}")
    with pytest.raises(DataError, match="column 'a'"):
        load(f"csv:{path}", target="b").preprocessor.transform([["x"]])  # text in a numeric column
    with pytest.raises(DataError, match="1 columns"):
        load(f"csv:{path}", target="b").preprocessor.transform(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="image"):
        load(f"csv:{path}", target="b", image=True)


def test_tsv_and_regression_rejects_text_target(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("a\tlabel\n" + "".join(f"{i}\t{'ab'[i % 2]}\n" for i in range(20)))
    assert load(f"csv:{path}").class_names == ["a", "b"]
    with pytest.raises(DataError, match="numeric targets"):
        load(f"csv:{path}", task="regression")


def test_csv_target_is_never_guessed(tmp_path: Path, files) -> None:
    """The label first and a year last: no rule names a column, so the target must be given
    (it used to be the last column, silently: a model of the year)."""
    rows = [["setosa" if i % 2 else "virginica", 1.0 + i % 5, 2000 + i % 7] for i in range(40)]
    path = files.write_csv(tmp_path / "p.csv", ["species", "size", "year"], rows)
    with pytest.raises(DataError, match="which column is the target") as info:
        load(f"csv:{path}")
    assert "data.target" in str(info.value) and "species, size, year" in str(info.value)
    ds = load(f"csv:{path}", target="species")
    assert ds.class_names == ["setosa", "virginica"] and ds.info["target"] == ["species"]
    assert ds.info["target_from"] == "data.target"


@pytest.mark.parametrize("name", ["label", "Target", "class", "y"])
def test_csv_target_by_its_name(tmp_path: Path, files, name: str) -> None:
    rows = [[i % 2, 1.0 + i % 5, 2000 + i % 7] for i in range(40)]
    path = files.write_csv(tmp_path / "p.csv", [name, "size", "year"], rows)
    ds = load(f"csv:{path}")
    assert ds.info["target"] == [name] and ds.input_shape == (2,)
    assert "named" in ds.info["target_from"]


def test_csv_two_target_like_names_need_a_choice(tmp_path: Path, files) -> None:
    path = files.write_csv(tmp_path / "p.csv", ["label", "a", "y"], [[i % 2, i, i % 3] for i in range(40)])
    with pytest.raises(DataError, match="several columns could be the target"):
        load(f"csv:{path}")
