"""ONNX export of (pruned) scikit-learn trees and tree ensembles through ``skl2onnx``.

scikit-learn compares float32-cast inputs with float64 thresholds (``x <= t``); ONNX tree
ensembles store float32 thresholds. Where ``float32(t) > t`` (rounding up), an input exactly
equal to ``float32(t)`` would go left in onnxruntime and right in scikit-learn. Such thresholds
are counted in the report (``threshold_mismatches``) and, with ``snap_thresholds=True``
(default), replaced in a copy by the largest float32 not above ``t`` before conversion — for
every float32 input ``x <= t`` then holds exactly when ``x <= snapped``, whatever the converter
does (recent skl2onnx rounds down itself). The file is verified on ``X`` and on rows placed
exactly on the thresholds.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

from prunekit._io import atomic_path
from prunekit.deploy._common import ort_session, require
from prunekit.deploy.onnx_export import ExportReport, ExportVerificationError
from prunekit.errors import InvalidParameterError, NotFittedError, UnsupportedModelError


def is_sklearn_model(model: Any) -> bool:
    """True for a scikit-learn estimator (or a prunekit wrapper holding one in ``estimator_``)."""
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, BaseEstimator)


def _unwrap(model: Any) -> Any:
    """The plain scikit-learn estimator inside a prunekit wrapper (``PrunedTreeClassifier``)."""
    inner = getattr(model, "estimator_", None)
    if type(model).__module__.startswith("prunekit") and is_sklearn_model(inner):
        return inner
    return model


def _trees(model: Any) -> list[Any]:
    """Every fitted ``tree_`` holder inside ``model`` (a tree, forest, boosting, bagging...)."""
    if hasattr(model, "tree_"):
        return [model]
    found = []
    members = getattr(model, "estimators_", None)
    if members is None:
        return found
    for m in np.asarray(members, dtype=object).ravel():
        found += _trees(m)
    return found


def _round_down_f32(t: np.ndarray) -> np.ndarray:
    t32 = t.astype(np.float32)
    up = t32.astype(np.float64) > t
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


def _risky(model: Any) -> int:
    n = 0
    for est in _trees(model):
        th = est.tree_.threshold[est.tree_.feature >= 0]
        n += int(np.sum(th.astype(np.float32).astype(np.float64) > th))
    return n


def _snap(model: Any) -> Any:
    snapped = copy.deepcopy(model)
    for est in _trees(snapped):
        tree = est.tree_
        inner = tree.feature >= 0
        th = tree.threshold
        th[inner] = _round_down_f32(th[inner]).astype(np.float64)
    return snapped


def _edge_inputs(model: Any, X: np.ndarray, limit: int = 512) -> np.ndarray:
    """Rows of ``X`` with one feature set exactly to a float32-rounded threshold (the hard case)."""
    rows = []
    rng = np.random.default_rng(0)
    for est in _trees(model):
        tree = est.tree_
        for node in np.flatnonzero(tree.feature >= 0):
            row = X[rng.integers(len(X))].copy()
            row[tree.feature[node]] = np.float32(tree.threshold[node])
            rows.append(row)
            if len(rows) >= limit:
                return np.asarray(rows, dtype=np.float32)
    return np.asarray(rows, dtype=np.float32).reshape(-1, X.shape[1])


def export_sklearn_onnx(
    model: Any,
    X: Any,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    snap_thresholds: bool = True,
    rtol: float = 1e-4,
) -> ExportReport:
    """Convert a fitted scikit-learn tree / ensemble to ONNX, verify it on ``X`` (as float32).

    Classifiers are exported without ZipMap (outputs ``label``, ``probabilities``). The file is
    written atomically and only when onnxruntime predicts exactly as scikit-learn on ``X`` and on
    rows placed exactly on the rounded thresholds.
    """
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    model = _unwrap(model)
    try:
        check_is_fitted(model)
    except SkNotFitted as exc:
        raise NotFittedError(f"fit the {type(model).__name__} before exporting it") from exc
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) == 0:
        raise InvalidParameterError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    skl2onnx = require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    risky = _risky(model)
    target = _snap(model) if snap_thresholds and risky else model
    clf = is_classifier(model)
    options = {id(target): {"zipmap": False}} if clf else None
    try:
        onx = skl2onnx.convert_sklearn(
            target, initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
            options=options, target_opset=opset,
        )
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many kinds
        raise UnsupportedModelError(
            f"skl2onnx cannot convert {type(model).__name__}: {type(exc).__name__}: "
            f"{str(exc).strip()[:300]}"
        ) from exc
    notes = []
    if risky:
        notes.append(f"{risky} thresholds round up from float64 to float32; " + (
            "snapped down to the largest float32 below them, so float32 inputs route exactly "
            "as in scikit-learn" if snap_thresholds else
            "left to the converter (snap_thresholds=False); rows placed on them are checked "
            "below (prediction_mismatches)"))
    with atomic_path(path) as tmp:
        tmp.write_bytes(onx.SerializeToString())
        sess = ort_session(tmp)
        edge = _edge_inputs(model, X)
        checks, mism, diff = [], 0, 0.0
        for what, data in (("X", X), ("rows on thresholds", edge)):
            if not len(data):
                continue
            m, d = _check(model, sess, data, clf, rtol, what, fail=what == "X" or snap_thresholds)
            mism, diff = mism + m, max(diff, d)
            checks.append(f"{what} {data.shape}")
        size = tmp.stat().st_size
    opset_used = next((int(o.version) for o in onx.opset_import if o.domain in ("", "ai.onnx")),
                      None)
    return ExportReport(str(path), "skl2onnx", opset_used, [i.name for i in sess.get_inputs()],
                        [o.name for o in sess.get_outputs()], {"X": {0: "N"}}, size, diff,
                        rtol, checks, [], notes, prediction_mismatches=mism,
                        threshold_mismatches=risky)


def _check(model: Any, sess: Any, X: np.ndarray, clf: bool, rtol: float, what: str,
           fail: bool) -> tuple[int, float]:
    out = sess.run(None, {"X": X})
    if clf:
        differs = np.asarray(model.predict(X)).ravel() != out[0].ravel()
        diff = 0.0
        if hasattr(model, "predict_proba") and len(out) > 1:
            proba = model.predict_proba(X)
            diff = float(np.max(np.abs(proba - out[1])))
            top2 = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else None
            if top2 is not None:  # exact ties (e.g. 25 of 50 trees each): either label is right
                differs &= (top2[:, 1] - top2[:, 0]) > 1e-6
        mism = int(np.sum(differs))
    else:
        expected = np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)
        got = out[0].astype(np.float64).reshape(len(X), -1)
        diff = float(np.max(np.abs(expected - got)))
        scale = float(np.max(np.abs(expected))) or 1.0
        mism = int(np.sum(np.any(np.abs(expected - got) > rtol * scale, axis=1)))
    if mism and fail:
        raise ExportVerificationError(
            f"onnxruntime predicts differently from scikit-learn on {mism} of {len(X)} {what} "
            f"(float32 inputs); the converted {type(model).__name__} is not faithful"
        )
    return mism, diff
