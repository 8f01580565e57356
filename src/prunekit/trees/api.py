"""``prune_tree``: one entry point for every decision-tree pruning method, and its report."""

from __future__ import annotations

import copy
import inspect
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit._validation import check_choice, check_features, check_seed, check_target
from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import check_tree_model, is_classifier_tree, read_tree, write_tree
from prunekit.trees._structure import build_structure, compact
from prunekit.trees.cost_complexity import ccp_path, cost_complexity
from prunekit.trees.error_based import c45, min_error, pessimistic, reduced_error
from prunekit.trees.manual import NodeInfo, check_node_ids, simplify_mask, where_mask
from prunekit.trees.manual import simplify as simplify_method
from prunekit.trees.mdl import mdl
from prunekit.trees.pre_pruning import pre_pruning


@dataclass(frozen=True)
class MethodSpec:
    """A registered pruning method: its function, whether it handles regression, what it needs."""

    func: Callable[..., MethodResult]
    regression: bool
    needs: str
    reference: str


METHODS: dict[str, MethodSpec] = {
    "reduced_error": MethodSpec(reduced_error, True, "X_val, y_val", "Quinlan 1987"),
    "cost_complexity": MethodSpec(
        cost_complexity, True, "X_val, y_val or X_train, y_train (CV) or ccp_alpha",
        "Breiman et al. 1984"),
    "pessimistic": MethodSpec(pessimistic, False, "-", "Quinlan 1987"),
    "c45": MethodSpec(c45, False, "- (X_train, y_train for subtree_raising)", "Quinlan 1993"),
    "min_error": MethodSpec(min_error, False, "-", "Niblett & Bratko 1986; Cestnik & Bratko 1991"),
    "mdl": MethodSpec(mdl, False, "-", "Mehta, Rissanen & Agrawal 1995"),
    "pre_pruning": MethodSpec(
        pre_pruning, True, "X_train, y_train and X_val, y_val (or cv)", "Breiman et al. 1984"),
    "simplify": MethodSpec(simplify_method, True, "-", "lossless: merge splits that agree"),
}

#: Common short names accepted for ``method``.
ALIASES = {
    "rep": "reduced_error",
    "ccp": "cost_complexity",
    "weakest_link": "cost_complexity",
    "pep": "pessimistic",
    "ebp": "c45",
    "error_based": "c45",
    "mep": "min_error",
    "early_stopping": "pre_pruning",
}


@dataclass(frozen=True)
class TreePruneReport:
    """What a pruning call did. Attached to the pruned estimator as ``prune_report_``."""

    method: str
    n_nodes_before: int
    n_nodes_after: int
    n_leaves_before: int
    n_leaves_after: int
    depth_before: int
    depth_after: int
    params: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    time_s: float = 0.0

    @property
    def nodes_removed(self) -> int:
        return self.n_nodes_before - self.n_nodes_after

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["nodes_removed"] = self.nodes_removed
        return d

    def __str__(self) -> str:
        chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return (
            f"{self.method}: leaves {self.n_leaves_before} -> {self.n_leaves_after}, "
            f"nodes {self.n_nodes_before} -> {self.n_nodes_after}, depth {self.depth_before} -> "
            f"{self.depth_after}"
            + (f" ({chosen})" if chosen else "")
            + ("; " + "; ".join(self.notes) if self.notes else "")
        )


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def resolve_method(method: str) -> str:
    """Canonical method name (aliases accepted), or a clear error listing the choices."""
    if isinstance(method, str) and method in ALIASES:
        return ALIASES[method]
    return check_choice("method", method, [*METHODS, *ALIASES])


def _check_data(name: str, X: Any, y: Any, model):
    """Validate ``X_<name>, y_<name>`` against the fitted tree (shared with the ensembles)."""
    if X is None and y is None:
        return None, None
    if X is None or y is None:
        raise InvalidParameterError(f"pass both X_{name} and y_{name}, or neither")
    Xa = check_features(f"X_{name}", X, model, allow_nan=True, float32=True)
    ya = check_target(f"y_{name}", y, model, Xa.shape[0])
    return Xa, ya


def _check_sample_weight(sample_weight: Any, X_train: np.ndarray | None) -> np.ndarray | None:
    if sample_weight is None:
        return None
    if X_train is None:
        raise InvalidParameterError("sample_weight weighs the rows of X_train: pass X_train too")
    w = check_target("sample_weight", sample_weight, None, X_train.shape[0])
    if (w < 0).any() or w.sum() <= 0:
        raise InvalidParameterError("sample_weight must be >= 0 with a positive sum")
    return w


def prune_tree(
    model,
    method: str | None = None,
    *,
    nodes: Any = None,
    where: Callable[[NodeInfo], Any] | None = None,
    simplify: bool = False,
    X_val: Any = None,
    y_val: Any = None,
    X_train: Any = None,
    y_train: Any = None,
    random_state: int | None = None,
    sample_weight: Any = None,
    **params: Any,
):
    """Prune a fitted ``DecisionTreeClassifier``/``DecisionTreeRegressor``; the input is unchanged.

    Returns a new fitted estimator of the same class holding only the reachable nodes of the
    pruned tree, with a :class:`TreePruneReport` attached as ``prune_report_``.

    Methods (``method=``; short aliases in :data:`ALIASES`) and their extra parameters:

    - ``"reduced_error"`` (needs X_val, y_val)
    - ``"cost_complexity"``: ``ccp_alpha``, ``select`` ("auto", "validation", "cv"), ``cv``,
      ``one_se``
    - ``"pessimistic"``; ``"c45"``: ``confidence`` (0.25), ``subtree_raising`` (False; True needs
      X_train, y_train); ``"min_error"``: ``m``, ``prior``; ``"mdl"``: ``value_bits``
      (classification only)
    - ``"pre_pruning"``: ``param_grid``, ``cv`` (needs X_train, y_train; re-grows the tree)

    Data: every method takes what it needs from ``X_val, y_val`` and ``X_train, y_train``; both
    are validated (labels of the tree's ``classes_``, finite values, the tree's width; a data
    frame's columns are matched to ``feature_names_in_`` by name and reordered). Trees grown with
    ``class_weight`` or ``sample_weight`` are pruned on the weighted counts they store; methods
    that re-route or refit the training data (``c45`` with raising, ``cost_complexity`` by CV,
    ``pre_pruning``) then need ``sample_weight``, the weights of the ``X_train`` rows as passed to
    ``fit`` (class weights are re-derived from the tree's ``class_weight``).

    By hand, instead of ``method``: ``nodes=[ids]`` collapses those internal nodes (ids of
    ``model.tree_``) into leaves; ``where=predicate`` collapses every internal node for which
    ``predicate(NodeInfo)`` is true (see :class:`~prunekit.trees.manual.NodeInfo`). ``method=
    "simplify"`` (``tol`` for regressors) merges splits whose leaves all predict the same; with
    ``simplify=True`` that lossless step runs after any method (default False, because merging
    changes ``predict_proba`` to the merged node's class distribution; ``predict`` is unchanged).

    A fitted forest (RandomForest/ExtraTrees/Bagging of decision trees) is accepted for
    ``nodes=``, ``where=`` and ``"simplify"``: every tree is pruned (``nodes`` is then a list with
    one id list per tree, or a dict ``{tree_index: ids}``) and a copy of the forest is returned.
    ``"simplify"`` keeps each tree's ``predict``; a classifier forest's soft vote averages
    ``predict_proba`` and so can change where merged leaves' probabilities differ.
    """
    if _is_forest(model):
        return _prune_forest(model, method, nodes, where, simplify, params)
    check_tree_model(model)
    if nodes is not None or where is not None:
        return _prune_by_hand(model, method, nodes, where, simplify, params,
                              X_val, X_train, sample_weight)
    name = resolve_method("cost_complexity" if method is None else method)
    spec = METHODS[name]
    clf = is_classifier_tree(model)
    if not clf and not spec.regression:
        supported = [m for m, s in METHODS.items() if s.regression]
        raise UnsupportedModelError(
            f"method={name!r} is defined for classification trees only; for a "
            f"{type(model).__name__} use one of: {', '.join(supported)}"
        )
    accepted = [p for p in inspect.signature(spec.func).parameters if p != "ctx"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidParameterError(
            f"method={name!r} got unknown parameters {unknown}; accepted: {accepted or 'none'}"
        )
    Xv, yv = _check_data("val", X_val, y_val, model)
    Xt, yt = _check_data("train", X_train, y_train, model)
    sw = _check_sample_weight(sample_weight, Xt)
    start = time.perf_counter()
    struct = build_structure(read_tree(model), clf)
    ctx = PruneContext(model, struct, Xv, yv, Xt, yt, check_seed("random_state", random_state),
                       sw)
    with warnings.catch_warnings():  # data were aligned by name above; arrays go on by position
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        warnings.filterwarnings("ignore", message="X has feature names")
        result = spec.func(ctx, **params)
    if result.model is not None:
        pruned = result.model
    elif result.raw is not None:
        pruned = write_tree(model, result.raw)
    else:
        pruned = write_tree(model, compact(struct.raw, result.collapse))
    if simplify and name != "simplify":
        pruned, merged = _simplified(pruned)
        result.params["simplified"] = merged
    return _report(model, pruned, name, result.params, result.notes, start)


def _simplified(model, tol: float = 0.0):
    """``model`` after the lossless ``simplify`` step, and how many splits it merged."""
    raw = read_tree(model)
    struct = build_structure(raw, is_classifier_tree(model))
    mask, value = simplify_mask(raw, struct.is_classifier, tol, struct.postorder())
    if not mask.any():
        return model, 0
    new = type(raw)(**{**raw.__dict__, "value": value})
    return write_tree(model, compact(new, mask)), int(mask.sum())


def _report(model, pruned, name: str, params: dict, notes: list, start: float):
    elapsed = time.perf_counter() - start
    pruned.prune_report_ = TreePruneReport(
        method=name,
        n_nodes_before=int(model.tree_.node_count),
        n_nodes_after=int(pruned.tree_.node_count),
        n_leaves_before=int(model.get_n_leaves()),
        n_leaves_after=int(pruned.get_n_leaves()),
        depth_before=int(model.get_depth()),
        depth_after=int(pruned.get_depth()),
        params=dict(params),
        notes=tuple(notes),
        time_s=elapsed,
    )
    return pruned


def _prune_by_hand(model, method, nodes, where, simplify: bool, params: dict,
                   X_val: Any, X_train: Any, sample_weight: Any):
    """``prune_tree(model, nodes=...)`` / ``prune_tree(model, where=...)``."""
    if method is not None:
        raise InvalidParameterError(
            f"pass either method={method!r} or nodes=/where=, not both")
    if nodes is not None and where is not None:
        raise InvalidParameterError("pass either nodes= or where=, not both")
    if params or X_val is not None or X_train is not None or sample_weight is not None:
        extra = sorted(params) + [k for k, v in (("X_val", X_val), ("X_train", X_train),
                                                ("sample_weight", sample_weight)) if v is not None]
        raise InvalidParameterError(
            f"nodes=/where= collapse nodes by hand and take no data or method parameters; got "
            f"{extra}")
    start = time.perf_counter()
    raw = read_tree(model)
    struct = build_structure(raw, is_classifier_tree(model))
    if nodes is not None:
        mask = np.zeros(raw.node_count, dtype=bool)
        mask[check_node_ids(nodes, raw.node_count)] = True
        label = "nodes"
    else:
        mask = where_mask(struct, where)
        label = "where"
    mask &= ~struct.is_leaf
    pruned = write_tree(model, compact(raw, mask))
    out_params: dict[str, Any] = {"collapsed": int(mask.sum())}
    if simplify:
        pruned, out_params["simplified"] = _simplified(pruned)
    return _report(model, pruned, label, out_params, [], start)


_FOREST_OK = ("simplify", None)


def _is_forest(model) -> bool:
    trees = getattr(model, "estimators_", None)
    return (not isinstance(model, DecisionTreeClassifier | DecisionTreeRegressor)
            and isinstance(trees, list) and bool(trees)
            and all(isinstance(t, DecisionTreeClassifier | DecisionTreeRegressor) for t in trees))


def _prune_forest(model, method, nodes, where, simplify: bool, params: dict):
    """Prune every tree of a forest by hand (nodes/where) or with ``"simplify"``."""
    if method is not None and resolve_method(method) != "simplify":
        raise UnsupportedModelError(
            f"prune_tree on a {type(model).__name__} takes nodes=, where= or method='simplify'; "
            f"for method={method!r} prune each tree of estimators_, or use "
            "prunekit.ensembles.prune_members")
    if method is None and nodes is None and where is None:
        if not simplify:
            raise InvalidParameterError(
                f"prune_tree on a {type(model).__name__} needs nodes=, where= or "
                "method='simplify'")
        method = "simplify"
    trees = model.estimators_
    per_tree: list[Any] = [None] * len(trees)
    if nodes is not None:
        if isinstance(nodes, dict):
            bad = [k for k in nodes if not (isinstance(k, int | np.integer)
                                            and 0 <= k < len(trees))]
            if bad:
                raise InvalidParameterError(
                    f"nodes keys must be tree indices in [0, {len(trees) - 1}], got {bad}")
            per_tree = [nodes.get(i, []) for i in range(len(trees))]
        elif isinstance(nodes, list | tuple) and len(nodes) == len(trees):
            per_tree = list(nodes)
        else:
            raise InvalidParameterError(
                f"for a forest, nodes must be a list of {len(trees)} id lists (one per tree) or "
                "a dict {tree_index: ids}")
    new_trees = []
    for i, tree in enumerate(trees):
        if method is not None:
            new_trees.append(prune_tree(tree, "simplify", **params))
        else:
            new_trees.append(prune_tree(tree, nodes=per_tree[i] if nodes is not None else None,
                                        where=where, simplify=simplify))
    memo = {id(t): None for t in trees}
    memo[id(trees)] = new_trees
    pruned = copy.deepcopy(model, memo)
    pruned.estimators_ = new_trees
    return pruned


def cost_complexity_path(model) -> dict[str, np.ndarray]:
    """The weakest-link path of a fitted tree: ``{"ccp_alphas", "impurities"}``.

    Equal to scikit-learn's ``cost_complexity_pruning_path`` but computed from the fitted tree,
    without refitting.
    """
    check_tree_model(model)
    path = ccp_path(build_structure(read_tree(model), is_classifier_tree(model)))
    return {"ccp_alphas": path.ccp_alphas, "impurities": path.impurities}


def collapse_nodes(model, nodes: Any):
    """Turn the given internal nodes (ids in ``model.tree_``) into leaves; compact rebuild.

    The low-level operation every post-pruning method ends with; useful for custom criteria.
    """
    check_tree_model(model)
    raw = read_tree(model)
    ids = check_node_ids(nodes, raw.node_count)
    mask = np.zeros(raw.node_count, dtype=bool)
    mask[ids] = True
    return write_tree(model, compact(raw, mask))
