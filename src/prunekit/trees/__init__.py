"""Decision-tree pruning for scikit-learn: post-pruning, pre-pruning search, compact rebuild.

>>> pruned = prune_tree(tree, method="reduced_error", X_val=X_val, y_val=y_val)  # doctest: +SKIP
>>> pruned.prune_report_  # doctest: +SKIP

The result is an ordinary fitted ``DecisionTreeClassifier``/``DecisionTreeRegressor`` that holds
only the reachable nodes. All access to scikit-learn's private tree state is in ``_sktree``.
"""

from prunekit.trees.api import (
    ALIASES,
    METHODS,
    TreePruneReport,
    collapse_nodes,
    cost_complexity_path,
    prune_tree,
)
from prunekit.trees.estimators import PrunedTreeClassifier, PrunedTreeRegressor
from prunekit.trees.manual import NodeInfo

__all__ = [
    "ALIASES",
    "METHODS",
    "NodeInfo",
    "PrunedTreeClassifier",
    "PrunedTreeRegressor",
    "TreePruneReport",
    "collapse_nodes",
    "cost_complexity_path",
    "prune_tree",
]
