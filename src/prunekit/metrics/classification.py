"""Predictions and quality metrics for scikit-learn estimators and torch modules alike.

Metric values come from :mod:`sklearn.metrics` so they match what scikit-learn users already
report. Permutation feature importance follows Breiman (2001), "Random Forests", Machine
Learning 45(1), sect. 10, in the model-agnostic form of Fisher, Rudin & Dominici (2019),
JMLR 20(177).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

from prunekit._validation import check_choice, check_positive_int
from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.metrics._common import (
    as_model_input,
    call_module,
    check_model,
    check_same_length,
    eval_mode,
    is_dataloader,
    model_device_dtype,
    output_tensor,
    to_numpy,
)

Task = Literal["classification", "regression"]
TASKS = ("classification", "regression")
AVERAGES = ("macro", "weighted", "micro", "binary")


# --------------------------------------------------------------------------- predictions
def _batch_inputs(batch: Any) -> Any:
    """The model input of a DataLoader batch: ``x`` of ``(x, y, ...)``, else the batch itself."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0]
    if isinstance(batch, (tuple, list)) and len(batch) == 1:
        return batch[0]
    return batch


def loader_targets(loader: Any) -> np.ndarray:
    """Concatenate the targets ``y`` of a DataLoader that yields ``(x, y)`` batches."""
    ys = []
    for batch in loader:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise ShapeMismatchError(
                "the DataLoader must yield (inputs, targets) batches when y is not given"
            )
        ys.append(to_numpy(batch[1]))
    return np.concatenate(ys) if ys else np.empty(0)


def torch_outputs(model: Any, X: Any, *, batch_size: int = 256) -> np.ndarray:
    """Raw outputs of a torch module over ``X`` (ndarray, tensor or DataLoader), in eval mode."""
    import torch

    batch_size = check_positive_int("batch_size", batch_size)
    device, dtype = model_device_dtype(model)
    if is_dataloader(X):
        batches = (_batch_inputs(b) for b in X)
    else:
        if not hasattr(X, "shape"):
            X = np.asarray(X)
        batches = (X[i : i + batch_size] for i in range(0, X.shape[0], batch_size))
    outs = []
    with eval_mode(model), torch.inference_mode():
        for xb in batches:
            out = output_tensor(call_module(model, as_model_input(xb, device, dtype)))
            outs.append(out.detach().float().cpu().numpy())
    if not outs:
        return np.empty((0,))
    return np.concatenate(outs)


def _outputs_to_predictions(out: np.ndarray, task: Task | None) -> np.ndarray:
    if out.ndim >= 2 and out.shape[1] > 1 and task != "regression":
        return out.argmax(axis=1)
    flat = out.reshape(len(out), -1)[:, 0] if out.ndim >= 2 else out
    if task == "classification":  # one logit: binary classifier
        return (flat > 0).astype(np.int64)
    return flat


def predict(
    model: Any, X: Any, *, task: Task | None = None, batch_size: int = 256
) -> np.ndarray:
    """Predict labels (classification) or values (regression) with any supported model.

    scikit-learn estimators use ``model.predict``. Torch modules run a forward pass in eval mode
    under :func:`torch.inference_mode`, in batches of ``batch_size`` over an ndarray, tensor or
    DataLoader; outputs with more than one column are turned into labels with ``argmax``, a single
    column is returned as is (regression) or thresholded at 0 when ``task="classification"``.
    """
    if task is not None:
        check_choice("task", task, TASKS)
    kind = check_model(model)
    if kind == "sklearn":
        if is_dataloader(X):
            X = np.concatenate([to_numpy(_batch_inputs(b)) for b in X])
        return np.asarray(model.predict(to_numpy(X)))
    return _outputs_to_predictions(torch_outputs(model, X, batch_size=batch_size), task)


# --------------------------------------------------------------------------- plain metrics
def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    yt, yp = to_numpy(y_true).ravel(), to_numpy(y_pred).ravel()
    check_same_length("y_true", yt, "y_pred", yp)
    if len(yt) == 0:
        raise ShapeMismatchError("y_true and y_pred are empty; metrics need at least one sample")
    return yt, yp


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of correct predictions (:func:`sklearn.metrics.accuracy_score`)."""
    yt, yp = _pair(y_true, y_pred)
    return float(skm.accuracy_score(yt, yp))


def f1(y_true: Any, y_pred: Any, average: str = "macro") -> float:
    """F1 score (:func:`sklearn.metrics.f1_score`); ``average``: macro, weighted, micro, binary."""
    check_choice("average", average, AVERAGES)
    yt, yp = _pair(y_true, y_pred)
    return float(skm.f1_score(yt, yp, average=average, zero_division=0))


def confusion_matrix(y_true: Any, y_pred: Any, labels: Any = None) -> np.ndarray:
    """Confusion matrix: rows true class, columns predicted (sklearn.metrics.confusion_matrix)."""
    yt, yp = _pair(y_true, y_pred)
    return skm.confusion_matrix(yt, yp, labels=labels)


def infer_task(model: Any, y: Any = None) -> Task:
    """``classification`` or ``regression`` from the estimator type, else from ``y``'s dtype."""
    from sklearn.base import is_classifier, is_regressor

    if not hasattr(model, "parameters"):  # sklearn side
        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    if y is not None:
        arr = to_numpy(y)
        if arr.dtype.kind in "iub" or arr.dtype.kind in "OUS":
            return "classification"
        return "regression"
    raise InvalidParameterError(
        "task could not be inferred; pass task='classification' or 'regression'"
    )


def scores(y_true: Any, y_pred: Any, task: Task) -> dict[str, float]:
    """All metrics of a task: accuracy, f1_macro, f1_weighted | r2, mse, mae."""
    check_choice("task", task, TASKS)
    yt, yp = _pair(y_true, y_pred)
    if task == "classification":
        return {
            "accuracy": float(skm.accuracy_score(yt, yp)),
            "f1_macro": float(skm.f1_score(yt, yp, average="macro", zero_division=0)),
            "f1_weighted": float(skm.f1_score(yt, yp, average="weighted", zero_division=0)),
        }
    yt, yp = yt.astype(np.float64), yp.astype(np.float64)
    return {
        "r2": float(skm.r2_score(yt, yp)),
        "mse": float(skm.mean_squared_error(yt, yp)),
        "mae": float(skm.mean_absolute_error(yt, yp)),
    }


def evaluate(
    model: Any, X: Any, y: Any = None, task: Task | None = None, *, batch_size: int = 256
) -> dict[str, float]:
    """Predict on ``X`` and score against ``y`` (taken from the DataLoader when ``X`` is one).

    Returns ``{"accuracy", "f1_macro", "f1_weighted"}`` for classification and
    ``{"r2", "mse", "mae"}`` for regression.
    """
    if y is None:
        if not is_dataloader(X):
            raise InvalidParameterError("y is required unless X is a DataLoader of (x, y) batches")
        y = loader_targets(X)
    if task is None:
        task = infer_task(model, y)
    y_pred = predict(model, X, task=task, batch_size=batch_size)
    return scores(y, y_pred, task)


# --------------------------------------------------------------------------- importances
SCORERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda t, p: float(skm.accuracy_score(t, p)),
    "f1_macro": lambda t, p: float(skm.f1_score(t, p, average="macro", zero_division=0)),
    "f1_weighted": lambda t, p: float(skm.f1_score(t, p, average="weighted", zero_division=0)),
    "r2": lambda t, p: float(skm.r2_score(t, p)),
    "neg_mean_squared_error": lambda t, p: -float(skm.mean_squared_error(t, p)),
    "neg_mean_absolute_error": lambda t, p: -float(skm.mean_absolute_error(t, p)),
}


@dataclass(frozen=True)
class PermutationImportance:
    """Drop in score when a feature is shuffled; ``importances``: (n_features, n_repeats)."""

    importances_mean: np.ndarray
    importances_std: np.ndarray
    importances: np.ndarray
    baseline_score: float
    scoring: str
    feature_names: list[str] = field(default_factory=list)

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most important features as ``(name, mean importance)``, largest first."""
        order = np.argsort(-self.importances_mean)[:k]
        names = self.feature_names or [f"x{i}" for i in range(len(self.importances_mean))]
        return [(names[i], float(self.importances_mean[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scoring": self.scoring,
            "baseline_score": self.baseline_score,
            "importances_mean": self.importances_mean.tolist(),
            "importances_std": self.importances_std.tolist(),
            "feature_names": list(self.feature_names),
        }


def permutation_importance(
    model: Any,
    X: Any,
    y: Any,
    *,
    n_repeats: int = 5,
    seed: int = 0,
    scoring: str | None = None,
    feature_names: list[str] | None = None,
    batch_size: int = 256,
) -> PermutationImportance:
    """Permutation feature importance (Breiman 2001; Fisher, Rudin & Dominici 2019).

    Works for scikit-learn estimators and torch modules. Each feature (a column of ``X``
    flattened to 2-D, so image pixels count as features) is shuffled ``n_repeats`` times; the
    importance is the baseline score minus the shuffled score. The shuffling follows
    :func:`sklearn.inspection.permutation_importance` exactly, so sklearn models get identical
    numbers for the same ``seed``. ``scoring`` defaults to ``accuracy`` / ``r2``.
    """
    n_repeats = check_positive_int("n_repeats", n_repeats)
    X = to_numpy(X)
    y = to_numpy(y)
    check_same_length("X", X, "y", y)
    task = infer_task(model, y)
    scoring = scoring or ("accuracy" if task == "classification" else "r2")
    check_choice("scoring", scoring, SCORERS)
    score = SCORERS[scoring]
    shape = X.shape
    flat = X.reshape(shape[0], -1)

    def run(Xf: np.ndarray) -> float:
        return score(y, predict(model, Xf.reshape(shape), task=task, batch_size=batch_size))

    baseline = run(flat)
    seeds = np.random.RandomState(seed)
    random_seed = seeds.randint(np.iinfo(np.int32).max + 1)
    imps = np.empty((flat.shape[1], n_repeats))
    for col in range(flat.shape[1]):
        rng = np.random.RandomState(random_seed)
        Xp = flat.copy()
        idx = np.arange(flat.shape[0])
        for r in range(n_repeats):
            rng.shuffle(idx)
            Xp[:, col] = Xp[idx, col]
            imps[col, r] = baseline - run(Xp)
    names = list(feature_names) if feature_names is not None else []
    return PermutationImportance(
        imps.mean(axis=1), imps.std(axis=1), imps, baseline, scoring, names
    )


def feature_importances(model: Any) -> np.ndarray | None:
    """The model's own importances: ``feature_importances_``, else mean ``|coef_|``; else None."""
    check_model(model)
    if hasattr(model, "feature_importances_"):
        try:
            return np.asarray(model.feature_importances_, dtype=np.float64)
        except (AttributeError, ValueError):  # e.g. an ensemble with no fitted members left
            return None
    if hasattr(model, "coef_"):
        coef = np.abs(np.atleast_2d(np.asarray(model.coef_, dtype=np.float64)))
        return coef.mean(axis=0)
    return None
