"""The only module that touches scikit-learn's private tree state (``tree_`` arrays, pickling).

Everything else in :mod:`prunekit.trees` works on the plain numpy arrays of :class:`RawTree`.
scikit-learn does not promise a stable layout for ``sklearn.tree._tree.Tree``; this module pins the
versions whose layout it was written against (:data:`SUPPORTED_SKLEARN`) and checks the node dtype
and the pickled-state keys at run time, so a change fails loudly instead of building a broken tree.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

from prunekit.errors import NotFittedError, ShapeMismatchError, UnsupportedModelError

#: scikit-learn versions (major, minor), inclusive lower and exclusive upper bound, whose private
#: ``Tree`` layout this module was written against. Widen only after tests/test_trees.py passes.
SUPPORTED_SKLEARN = ((1, 4), (1, 10))

#: Fields of ``Tree.__getstate__()["nodes"]`` (the C ``Node`` struct) in order.
NODE_FIELDS = (
    "left_child",
    "right_child",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
    "missing_go_to_left",
)
#: Keys of ``Tree.__getstate__()``.
STATE_KEYS = ("max_depth", "node_count", "nodes", "values")

TREE_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
TREE_UNDEFINED = -2  # sklearn.tree._tree.TREE_UNDEFINED


def sklearn_version() -> tuple[int, int]:
    """The installed scikit-learn's (major, minor)."""
    parts = sklearn.__version__.split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def check_sklearn_version() -> None:
    """Raise :class:`UnsupportedModelError` if scikit-learn is outside :data:`SUPPORTED_SKLEARN`."""
    low, high = SUPPORTED_SKLEARN
    if not (low <= sklearn_version() < high):
        raise UnsupportedModelError(
            f"prunekit.trees supports scikit-learn >= {low[0]}.{low[1]} and < {high[0]}.{high[1]} "
            f"(it rebuilds the private Tree state); found {sklearn.__version__}"
        )


@dataclass
class RawTree:
    """A decision tree as plain numpy arrays, one entry per node (scikit-learn's node layout).

    ``value`` has shape ``(n_nodes, n_outputs, max_n_classes)`` with scikit-learn's semantics:
    class *fractions* (weighted) for classifiers (scikit-learn >= 1.4), node means for regressors.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    impurity: np.ndarray
    n_node_samples: np.ndarray
    weighted_n_node_samples: np.ndarray
    missing_go_to_left: np.ndarray
    value: np.ndarray

    @property
    def node_count(self) -> int:
        return int(self.left.shape[0])

    def take(self, nodes: np.ndarray) -> RawTree:
        """The given nodes' rows (children indices are not renumbered)."""
        return RawTree(*(getattr(self, f)[nodes] for f in _RAW_FIELDS))


_RAW_FIELDS = (
    "left",
    "right",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
    "missing_go_to_left",
    "value",
)


def check_tree_model(model: object) -> None:
    """Check that ``model`` is a fitted single-output scikit-learn decision tree."""
    check_sklearn_version()
    if not isinstance(model, DecisionTreeClassifier | DecisionTreeRegressor):
        raise UnsupportedModelError(
            "model must be a fitted sklearn.tree.DecisionTreeClassifier or DecisionTreeRegressor, "
            f"got {type(model).__name__}"
        )
    tree = getattr(model, "tree_", None)
    if not isinstance(tree, Tree):
        raise NotFittedError(
            f"This {type(model).__name__} is not fitted yet; call fit(X, y) before pruning it"
        )
    if tree.n_outputs != 1:
        raise UnsupportedModelError(
            f"only single-output trees can be pruned; this tree has n_outputs={tree.n_outputs}"
        )


def is_classifier_tree(model: object) -> bool:
    return isinstance(model, DecisionTreeClassifier)


def read_tree(model: DecisionTreeClassifier | DecisionTreeRegressor) -> RawTree:
    """Copy the fitted tree's node arrays out of ``model.tree_``."""
    check_tree_model(model)
    state = model.tree_.__getstate__()
    _check_state(state)
    nodes = state["nodes"]
    return RawTree(
        left=nodes["left_child"].astype(np.intp),
        right=nodes["right_child"].astype(np.intp),
        feature=nodes["feature"].astype(np.intp),
        threshold=nodes["threshold"].astype(np.float64),
        impurity=nodes["impurity"].astype(np.float64),
        n_node_samples=nodes["n_node_samples"].astype(np.intp),
        weighted_n_node_samples=nodes["weighted_n_node_samples"].astype(np.float64),
        missing_go_to_left=nodes["missing_go_to_left"].astype(np.uint8),
        value=np.array(state["values"], dtype=np.float64),
    )


def _check_state(state: dict) -> None:
    keys = tuple(state)
    if keys != STATE_KEYS:
        raise UnsupportedModelError(
            f"scikit-learn {sklearn.__version__} changed the Tree state keys to {keys}; "
            f"prunekit.trees expects {STATE_KEYS}"
        )
    names = tuple(state["nodes"].dtype.names or ())
    if names != NODE_FIELDS:
        raise UnsupportedModelError(
            f"scikit-learn {sklearn.__version__} changed the Tree node fields to {names}; "
            f"prunekit.trees expects {NODE_FIELDS}"
        )


def tree_depth(left: np.ndarray, right: np.ndarray) -> int:
    """Depth of the tree (root alone = 0) given child arrays."""
    depth = np.zeros(left.shape[0], dtype=np.intp)
    # nodes are stored parent before child, so one forward pass suffices
    for i in range(left.shape[0]):
        if left[i] != TREE_LEAF:
            depth[left[i]] = depth[i] + 1
            depth[right[i]] = depth[i] + 1
    return int(depth.max()) if depth.size else 0


def write_tree(model: DecisionTreeClassifier | DecisionTreeRegressor, raw: RawTree):
    """Return a deep copy of ``model`` whose ``tree_`` holds exactly the nodes of ``raw``.

    ``raw`` must be compact: node 0 is the root, every node is reachable, and each child's index
    is larger than its parent's (pre-order numbering, as :func:`compact` produces).
    """
    check_tree_model(model)
    old = model.tree_
    n = raw.node_count
    _check_compact(raw)
    state = old.__getstate__()
    _check_state(state)
    nodes = np.zeros(n, dtype=state["nodes"].dtype)
    is_leaf = raw.left == TREE_LEAF
    nodes["left_child"] = raw.left
    nodes["right_child"] = raw.right
    nodes["feature"] = np.where(is_leaf, TREE_UNDEFINED, raw.feature)
    nodes["threshold"] = np.where(is_leaf, float(TREE_UNDEFINED), raw.threshold)
    nodes["impurity"] = raw.impurity
    nodes["n_node_samples"] = raw.n_node_samples
    nodes["weighted_n_node_samples"] = raw.weighted_n_node_samples
    nodes["missing_go_to_left"] = np.where(is_leaf, 0, raw.missing_go_to_left)
    values = np.ascontiguousarray(raw.value, dtype=np.float64)
    expected = (n, old.n_outputs, old.max_n_classes)
    if values.shape != expected:
        raise ShapeMismatchError(f"value array has shape {values.shape}, expected {expected}")
    new_tree = Tree(old.n_features, np.asarray(old.n_classes, dtype=np.intp), old.n_outputs)
    new_tree.__setstate__(
        {
            "max_depth": tree_depth(raw.left, raw.right),
            "node_count": n,
            "nodes": nodes,
            "values": values,
        }
    )
    memo = {id(old): new_tree}  # do not copy the old tree only to throw it away
    pruned = copy.deepcopy(model, memo)
    pruned.tree_ = new_tree
    for attr in ("prune_report_",):
        if hasattr(pruned, attr):
            delattr(pruned, attr)
    return pruned


def _check_compact(raw: RawTree) -> None:
    n = raw.node_count
    if n == 0:
        raise ShapeMismatchError("a tree needs at least one node")
    internal = np.flatnonzero(raw.left != TREE_LEAF)
    if np.any((raw.left == TREE_LEAF) != (raw.right == TREE_LEAF)):
        raise ShapeMismatchError("each node needs either two children or none")
    kids = np.concatenate([raw.left[internal], raw.right[internal]])
    if kids.size and (
        np.any(kids <= np.concatenate([internal, internal]))
        or np.any(kids >= n)
        or np.unique(kids).size != kids.size
        or kids.size != n - 1
    ):
        raise ShapeMismatchError("tree is not compact: orphaned, shared or out-of-order nodes")
