"""Gradient-boosted trees outside scikit-learn: XGBoost and LightGBM.

A boosted model predicts ``base margin + sum of its trees``. A *member* here is one boosting
round (all trees of an iteration: one per class, times ``num_parallel_tree``). The ordering
methods of :func:`prunekit.ensembles.prune_ensemble` run on each round's raw-score contribution
(classification: a round "votes" for the classes it pushes up, so the sub-ensemble's predicted
class is the argmax of base margin + kept contributions; regression: squared error of base +
kept contributions), and :func:`keep_rounds` writes a model with an arbitrary, non-contiguous
set of rounds that the library loads natively (XGBoost: the JSON model's ``trees``,
``tree_info``, ``iteration_indptr`` and ``num_trees``; LightGBM: the model string's ``Tree=``
blocks, ``tree_sizes`` and iteration count). The result is the same estimator class.

LightGBM folds the initial score (``boost_from_average``) into the first tree: dropping round 0
drops that average too (the saved model is still exactly the sum of the kept trees).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import numpy as np

from prunekit.errors import InvalidParameterError, OptionalDependencyError


def boosted_library(model: object) -> str | None:
    """``"xgboost"`` or ``"lightgbm"`` for those libraries' scikit-learn estimators, else None."""
    mod = type(model).__module__
    if mod.startswith("xgboost") and hasattr(model, "get_booster"):
        return "xgboost"
    if mod.startswith("lightgbm") and hasattr(model, "booster_"):
        return "lightgbm"
    return None


def _require(lib: str):
    try:
        return __import__(lib)
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise OptionalDependencyError(
            f"pruning {lib} models needs {lib}: pip install 'prunekit[{lib}]'") from exc


def is_classifier_model(model: object) -> bool:
    return hasattr(model, "classes_") or type(model).__name__.endswith("Classifier")


# ----------------------------------------------------------------------------- XGBoost


def _xgb_json(model) -> dict:
    return json.loads(bytes(model.get_booster().save_raw("json")))


def _xgb_rounds(gb: dict) -> list[list[int]]:
    indptr = gb["model"].get("iteration_indptr")
    n = len(gb["model"]["trees"])
    if not indptr:
        return [[i] for i in range(n)]
    return [list(range(indptr[r], indptr[r + 1])) for r in range(len(indptr) - 1)]


def _xgb_contributions(model, X) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-round raw contributions ``[R, n, K]``, base margin ``[n, K]`` and K."""
    xgb = _require("xgboost")
    doc = _xgb_json(model)
    gb = doc["learner"]["gradient_booster"]
    _check_gbtree(gb)
    trees, info = gb["model"]["trees"], gb["model"]["tree_info"]
    booster = model.get_booster()
    dm = xgb.DMatrix(np.asarray(X, dtype=np.float32))
    leaves = booster.predict(dm, pred_leaf=True, strict_shape=True)
    leaves = leaves.reshape(leaves.shape[0], -1).astype(np.intp)  # [n, n_trees]
    margin = booster.predict(dm, output_margin=True, strict_shape=True)
    margin = margin.reshape(margin.shape[0], -1).astype(np.float64)
    K = margin.shape[1]
    rounds = _xgb_rounds(gb)
    contrib = np.zeros((len(rounds), leaves.shape[0], K))
    for r, ids in enumerate(rounds):
        for t in ids:
            vals = np.asarray(trees[t]["split_conditions"], dtype=np.float32).astype(np.float64)
            contrib[r, :, int(info[t])] += vals[leaves[:, t]]
    # the base margin is one number per class; XGBoost sums in float32, so take the median
    # over samples of what the trees do not explain rather than one sample's rounding
    base = np.broadcast_to(np.median(margin - contrib.sum(axis=0), axis=0), margin.shape).copy()
    return contrib, base, K


def _check_gbtree(gb: dict) -> None:
    if gb.get("name") not in ("gbtree",):
        raise InvalidParameterError(
            f"only tree boosters (booster='gbtree') can be pruned by rounds; got "
            f"booster={gb.get('name')!r}")


def _xgb_keep(model, rounds: np.ndarray):
    xgb = _require("xgboost")
    doc = _xgb_json(model)
    gb = doc["learner"]["gradient_booster"]
    _check_gbtree(gb)
    m = gb["model"]
    groups = _xgb_rounds(gb)
    keep = [t for r in sorted(set(int(i) for i in rounds)) for t in groups[r]]
    new_trees = []
    for new_id, t in enumerate(keep):
        tree = copy.deepcopy(m["trees"][t])
        tree["id"] = new_id
        new_trees.append(tree)
    m["trees"] = new_trees
    m["tree_info"] = [m["tree_info"][t] for t in keep]
    sizes = [len(groups[r]) for r in sorted(set(int(i) for i in rounds))]
    m["iteration_indptr"] = [0, *np.cumsum(sizes).astype(int).tolist()]
    m["gbtree_model_param"]["num_trees"] = str(len(keep))
    attrs = doc["learner"].get("attributes", {})
    for key in ("best_iteration", "best_score", "best_ntree_limit"):
        attrs.pop(key, None)
    raw = bytearray(json.dumps(doc).encode())
    booster = xgb.Booster(model_file=raw)
    new = copy.deepcopy(model)
    new._Booster = booster
    for attr in ("best_iteration", "best_score"):
        if attr in new.__dict__:
            delattr(new, attr)
    if hasattr(new, "n_estimators"):
        new.n_estimators = len(sizes)
    return new


# ----------------------------------------------------------------------------- LightGBM

_TREE_RE = re.compile(r"^Tree=\d+\n", re.M)


def _lgb_split(text: str) -> tuple[str, list[str], str]:
    """Header, tree blocks (each ``Tree=i ...`` up to the next), and the tail from
    ``end of trees``."""
    end = text.index("end of trees")
    starts = [m.start() for m in _TREE_RE.finditer(text, 0, end)]
    if not starts:
        raise InvalidParameterError("the LightGBM model string has no trees")
    header = text[: starts[0]]
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], end], strict=True)]
    return header, blocks, text[end:]


def _lgb_per_iter(header: str) -> int:
    m = re.search(r"^num_tree_per_iteration=(\d+)$", header, re.M)
    return int(m.group(1)) if m else 1


def _lgb_contributions(model, X) -> tuple[np.ndarray, np.ndarray, int]:
    booster = model.booster_
    header, blocks, _ = _lgb_split(booster.model_to_string())
    K = _lgb_per_iter(header)
    Xa = np.asarray(X, dtype=np.float64)
    leaves = np.asarray(booster.predict(Xa, pred_leaf=True)).reshape(Xa.shape[0], -1)
    leaves = leaves.astype(np.intp)
    n_rounds = len(blocks) // K
    contrib = np.zeros((n_rounds, Xa.shape[0], K))
    for t, block in enumerate(blocks):
        m = re.search(r"^leaf_value=(.*)$", block, re.M)
        vals = np.array(m.group(1).split(), dtype=np.float64) if m else np.zeros(1)
        contrib[t // K, :, t % K] += vals[leaves[:, t]]
    return contrib, np.zeros((Xa.shape[0], K)), K


def _lgb_keep(model, rounds: np.ndarray):
    lgb = _require("lightgbm")
    header, blocks, tail = _lgb_split(model.booster_.model_to_string())
    K = _lgb_per_iter(header)
    keep = [r * K + c for r in sorted(set(int(i) for i in rounds)) for c in range(K)]
    new_blocks = [_TREE_RE.sub(f"Tree={j}\n", blocks[t], count=1) for j, t in enumerate(keep)]
    sizes = " ".join(str(len(b.encode())) for b in new_blocks)
    header = re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", header, count=1, flags=re.M)
    tail = re.sub(r"^\[num_iterations: \d+\]$", f"[num_iterations: {len(keep) // K}]", tail,
                  count=1, flags=re.M)
    text = header + "".join(new_blocks) + tail
    booster = lgb.Booster(model_str=text)
    new = copy.deepcopy(model)
    new._Booster = booster
    if hasattr(new, "_best_iteration"):
        new._best_iteration = -1
    if hasattr(new, "_n_estimators"):
        new._n_estimators = len(keep) // K
    new.n_estimators = len(keep) // K
    return new


# ----------------------------------------------------------------------------- public


def round_contributions(model, X) -> tuple[np.ndarray, np.ndarray]:
    """``(contrib [n_rounds, n_samples, K], base [n_samples, K])``: each boosting round's raw
    score (margin) on ``X`` and the base margin; ``base + contrib.sum(0)`` is the model's raw
    prediction (K = 1 for binary and regression, n_classes for multiclass)."""
    lib = boosted_library(model)
    if lib == "xgboost":
        c, b, _ = _xgb_contributions(model, X)
    elif lib == "lightgbm":
        c, b, _ = _lgb_contributions(model, X)
    else:
        raise InvalidParameterError(f"not an XGBoost/LightGBM estimator: {type(model).__name__}")
    return c, b


def n_rounds(model) -> int:
    lib = boosted_library(model)
    if lib == "xgboost":
        return len(_xgb_rounds(_xgb_json(model)["learner"]["gradient_booster"]))
    header, blocks, _ = _lgb_split(model.booster_.model_to_string())
    return len(blocks) // _lgb_per_iter(header)


def keep_rounds(model, rounds: Any):
    """A copy of a fitted XGBoost/LightGBM estimator holding only the given boosting rounds
    (any subset, in any order; duplicates are dropped). Same class; ``save_model`` writes a file
    the library loads natively; its raw prediction is the base margin plus the kept trees."""
    lib = boosted_library(model)
    if lib is None:
        raise InvalidParameterError(f"not an XGBoost/LightGBM estimator: {type(model).__name__}")
    total = n_rounds(model)
    try:
        idx = np.atleast_1d(np.asarray(rounds))
    except (TypeError, ValueError):
        idx = np.asarray([None], dtype=object)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 \
            or idx.max() >= total:
        raise InvalidParameterError(
            f"rounds must be a non-empty list of round indices in [0, {total - 1}], "
            f"got {rounds!r}")
    return _xgb_keep(model, idx) if lib == "xgboost" else _lgb_keep(model, idx)


def member_matrix(model, X, y_codes: np.ndarray, fingerprint: str | None = None):
    """The :class:`MemberMatrix` of a boosted model: rounds as additive members."""
    from prunekit.ensembles._members import MemberMatrix

    contrib, base = round_contributions(model, X)
    R, n, K = contrib.shape
    if is_classifier_model(model):
        if K == 1:  # binary: margin m votes for class 1 when positive
            votes = np.concatenate([np.maximum(-contrib, 0), np.maximum(contrib, 0)], axis=2)
            offset = np.concatenate([np.maximum(-base, 0), np.maximum(base, 0)], axis=1)
        else:  # shift per sample so votes are >= 0; argmax of sums is unchanged
            votes = contrib - contrib.min(axis=2, keepdims=True)
            offset = base - base.min(axis=1, keepdims=True)
        return MemberMatrix("classification", votes.astype(np.float32), y_codes, np.ones(R),
                            None, fingerprint, offset)
    return MemberMatrix("regression", contrib, np.asarray(y_codes, dtype=np.float64), np.ones(R),
                        None, fingerprint, base)
