"""Leaf refinement of tree ensembles (Buschjäger & Morik): "LR" and "LR+L1".

Buschjäger, S. & Morik, K. (2021), "Improving the accuracy-memory trade-off of random forests via
leaf-refinement", arXiv:2110.10075; (2023) "Joint leaf-refinement and ensemble pruning through L1
regularization", Data Mining and Knowledge Discovery 37.

- :func:`refine_leaves` ("LR"): keep every split, refit the leaf values of all trees *jointly* on
  data so that the ensemble's own output fits it. Classifiers: each leaf holds a class
  distribution (``softmax`` of free logits, started at the tree's fractions) and the forest's
  ``predict_proba`` is their mean, so full-batch Adam minimises the log-loss of that mean.
  Regressors: the leaf values minimise the squared error of the mean prediction (a sparse least
  squares problem, solved with LSQR and a ridge pull towards the original values).
- :func:`prune_lr_l1` ("LR+L1"): joint selection. Member weights ``w`` and free leaf vectors
  ``h`` are trained together on the ensemble's raw output ``f(x) = sum_i w_i h_i(x)`` (softmax
  cross-entropy, or squared error) with an L1 penalty on ``w`` (proximal gradient steps); the
  ``size`` members with the largest weights are kept and their leaves refined with LR.
  scikit-learn ensembles average their members with equal weights, so the final model holds the
  kept members with equal weights and refined leaves (the weights only select).

The result is an ordinary fitted estimator of the same class; only leaf rows of ``tree_.value``
change (written through :mod:`prunekit.trees._sktree`), so memory (node count) is unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import lsqr
from sklearn.base import is_classifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit._validation import check_real
from prunekit.ensembles._members import check_pruning_data, encode_targets, ensemble_kind
from prunekit.ensembles._rebuild import rebuild
from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.trees._sktree import TREE_LEAF, read_tree, write_tree


class _Leaves:
    """Which leaf of which tree each sample reaches, with a global leaf numbering."""

    def __init__(self, model: Any, X: np.ndarray) -> None:
        kind = ensemble_kind(model)
        trees = list(getattr(model, "estimators_", []))
        if kind not in ("forest", "bagging") or not trees or not all(
            isinstance(t, DecisionTreeClassifier | DecisionTreeRegressor) for t in trees
        ):
            raise UnsupportedModelError(
                "leaf refinement needs a fitted RandomForest/ExtraTrees or Bagging of decision "
                f"trees; got {type(model).__name__}")
        feats = getattr(model, "estimators_features_", None) if kind == "bagging" else None
        Xf = np.asarray(X, dtype=np.float32 if kind == "forest" else np.float64)
        self.trees = trees
        self.raws = [read_tree(t) for t in trees]
        self.leaf_ids: list[np.ndarray] = []  # node ids of each tree's leaves
        self.local: list[np.ndarray] = []  # node id -> leaf position in that tree
        cols, offset = [], 0
        for i, (tree, raw) in enumerate(zip(trees, self.raws, strict=True)):
            leaves = np.flatnonzero(raw.left == TREE_LEAF)
            pos = np.full(raw.node_count, -1, dtype=np.intp)
            pos[leaves] = np.arange(leaves.size)
            Xi = Xf if feats is None else Xf[:, feats[i]]
            cols.append(offset + pos[tree.apply(Xi)])
            self.leaf_ids.append(leaves)
            self.local.append(pos)
            offset += leaves.size
        self.n_leaves = offset
        self.index = np.stack(cols, axis=1)  # [n_samples, n_trees] global leaf ids
        self.starts = np.cumsum([0, *[ids.size for ids in self.leaf_ids]])

    def initial(self) -> np.ndarray:
        """``[n_leaves, C]`` leaf values as stored (class fractions or means)."""
        return np.concatenate([raw.value[ids, 0, :] for raw, ids in
                               zip(self.raws, self.leaf_ids, strict=True)])

    def write(self, model: Any, values: np.ndarray) -> Any:
        """A copy of ``model`` whose trees' leaves hold ``values``."""
        new_trees = []
        for i, (tree, raw, ids) in enumerate(zip(self.trees, self.raws, self.leaf_ids,
                                                  strict=True)):
            new_raw = copy.copy(raw)
            new_raw.value = raw.value.copy()
            new_raw.value[ids, 0, :] = values[self.starts[i]:self.starts[i + 1]]
            new_trees.append(write_tree(tree, new_raw))
        new = copy.deepcopy(model, {id(model.estimators_): new_trees,
                                    **{id(t): None for t in self.trees}})
        new.estimators_ = new_trees
        return new


def _check_classes(model: Any) -> None:
    n = len(model.classes_)
    for t in model.estimators_:
        if getattr(t, "n_classes_", n) != n:
            raise UnsupportedModelError(
                "leaf refinement needs every member tree to know all classes; a member's "
                "bootstrap missed a class (use more data or a RandomForest)")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class _Adam:
    def __init__(self, lr: float) -> None:
        self.lr, self.t, self.m, self.v = lr, 0, None, None

    def step(self, x: np.ndarray, g: np.ndarray) -> None:
        if self.m is None:
            self.m, self.v = np.zeros_like(g), np.zeros_like(g)
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mh = self.m / (1 - 0.9 ** self.t)
        vh = self.v / (1 - 0.999 ** self.t)
        x -= self.lr * mh / (np.sqrt(vh) + 1e-8)


def _refine_proba(L: _Leaves, y: np.ndarray, C: int, epochs: int, lr: float) -> np.ndarray:
    """Leaf class distributions minimising the log-loss of the trees' mean probability."""
    n, K = L.index.shape
    theta = np.log(np.clip(L.initial(), 1e-6, None))
    flat = L.index.ravel()
    ys = np.repeat(y, K)
    opt = _Adam(lr)
    for _ in range(epochs):
        p = _softmax(theta)
        P = p[L.index].sum(axis=1) / K  # [n, C]
        inv = 1.0 / np.maximum(P[np.arange(n), y], 1e-12)
        G = np.bincount(flat * C + ys, weights=-np.repeat(inv, K) / (n * K),
                        minlength=theta.size).reshape(theta.shape)
        grad = p * (G - (G * p).sum(axis=1, keepdims=True))
        opt.step(theta, grad)
    return _softmax(theta)


def _refine_mean(L: _Leaves, y: np.ndarray, ridge: float) -> np.ndarray:
    """Leaf values minimising the squared error of the trees' mean prediction (+ ridge)."""
    n, K = L.index.shape
    A = sparse.csr_matrix((np.full(n * K, 1.0 / K), L.index.ravel(),
                           np.arange(0, n * K + 1, K)), shape=(n, L.n_leaves))
    v0 = L.initial()[:, 0]
    delta = lsqr(A, y - A @ v0, damp=np.sqrt(ridge))[0]
    return (v0 + delta)[:, None]


def refine_leaves(
    model: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 100,
    learning_rate: float = 0.05,
    ridge: float = 1e-3,
) -> Any:
    """"LR": refit the leaf values of a fitted forest/bagging of trees jointly on ``X, y``.

    Classifiers: ``epochs`` full-batch Adam steps (``learning_rate``) on the log-loss of the
    ensemble's mean probability, leaves parameterised as class distributions (so
    ``predict_proba`` stays a probability). Regressors: the least-squares leaf values of the mean
    prediction with a ``ridge`` pull to the original values. Splits and node count are unchanged.
    Use data the trees were not fitted on (e.g. the pruning set) or the training set; the
    input model is not modified.
    """
    epochs = int(check_real("epochs", epochs, minimum=1))
    learning_rate = check_real("learning_rate", learning_rate, minimum=0.0)
    ridge = check_real("ridge", ridge, minimum=0.0)
    Xa, ya = check_pruning_data(model, X, y)
    L = _Leaves(model, np.asarray(Xa))
    if is_classifier(model):
        _check_classes(model)
        codes = encode_targets(model, ya, "y")
        values = _refine_proba(L, codes, len(model.classes_), epochs, learning_rate)
    else:
        values = _refine_mean(L, np.asarray(ya, dtype=np.float64), ridge)
    new = L.write(model, values)
    for attr in ("oob_score_", "oob_decision_function_", "oob_prediction_", "prune_report_"):
        if attr in new.__dict__:
            delattr(new, attr)
    return new


def _l1_weights(L: _Leaves, y: np.ndarray, C: int, clf: bool, l1: float, epochs: int,
                lr: float) -> np.ndarray:
    """Member weights from joint training of free leaf vectors and L1-penalised weights."""
    n, K = L.index.shape
    h = L.initial().copy()
    if clf:
        h = h - h.mean(axis=1, keepdims=True)  # free scores around the fractions
    w = np.full(K, 1.0 / K)
    onehot = np.eye(C)[y] if clf else y[:, None]
    opt_h, opt_w = _Adam(lr), _Adam(lr)
    flat = L.index.ravel()
    B = sparse.csr_matrix((np.ones(n * K), (flat, np.arange(n * K))), shape=(L.n_leaves, n * K))
    for _ in range(epochs):
        H = h[L.index]  # [n, K, C]
        f = np.einsum("k,nkc->nc", w, H)
        r = (_softmax(f) - onehot) / n if clf else 2.0 * (f - onehot) / n  # dLoss/df
        gw = np.einsum("nc,nkc->k", r, H)
        gh = B @ (r[:, None, :] * w[None, :, None]).reshape(n * K, -1)
        opt_h.step(h, gh)
        opt_w.step(w, gw)
        w = np.sign(w) * np.maximum(np.abs(w) - lr * l1, 0.0)  # proximal L1 step
    return w


def prune_lr_l1(
    model: Any,
    X: Any,
    y: Any,
    size: int | float,
    *,
    l1: float = 1e-3,
    epochs: int = 100,
    learning_rate: float = 0.05,
    refine: bool = True,
) -> Any:
    """"LR+L1": select ``size`` members (int count or fraction) by joint leaf refinement with an
    L1 penalty ``l1`` on member weights, then (``refine=True``) refine the kept members' leaves
    with :func:`refine_leaves`. Returns the same estimator class; ``lr_l1_weights_`` holds the
    learned weights of all members (0 = dropped by L1) and ``lr_l1_kept_`` the kept indices.
    """
    from prunekit.ensembles.prune import resolve_size

    l1 = check_real("l1", l1, minimum=0.0)
    epochs = int(check_real("epochs", epochs, minimum=1))
    learning_rate = check_real("learning_rate", learning_rate, minimum=0.0)
    Xa, ya = check_pruning_data(model, X, y)
    L = _Leaves(model, np.asarray(Xa))
    clf = is_classifier(model)
    if clf:
        _check_classes(model)
        codes = encode_targets(model, ya, "y")
        C = len(model.classes_)
    else:
        codes, C = np.asarray(ya, dtype=np.float64), 1
    k = resolve_size(size, len(L.trees))
    if k is None:
        raise InvalidParameterError("prune_lr_l1 needs size= as a count or a fraction")
    w = _l1_weights(L, codes, C, clf, l1, epochs, learning_rate)
    order = np.lexsort((np.arange(w.size), -w))
    kept = np.sort(order[:k])
    pruned, _ = rebuild(model, kept)
    if refine:
        pruned = refine_leaves(pruned, Xa, ya, epochs=epochs, learning_rate=learning_rate)
    pruned.lr_l1_weights_ = w
    pruned.lr_l1_kept_ = kept
    return pruned
