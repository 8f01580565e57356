"""Minimum description length pruning (Mehta, Rissanen & Agrawal 1995).

Mehta, M., Rissanen, J. & Agrawal, R. (1995) "MDL-based decision tree pruning", KDD-95, 216-221
(the pruning of SLIQ; Mehta, Agrawal & Rissanen, EDBT 1996). The tree is a code for the training
labels: a leaf costs one structure bit plus the stochastic complexity of its class counts,

    C(S) = sum_i n_i log2(n / n_i) + (k - 1)/2 log2(n / 2) + log2(pi^(k/2) / Gamma(k/2)),

and an internal node costs one structure bit, the cost of its test (``log2(n_features)`` bits for
the attribute plus ``value_bits`` for a numeric split value, 1 bit in SLIQ) and its children's
costs. Bottom-up ("full" pruning), a node becomes a leaf when coding it as a leaf is no longer
than coding its (pruned) subtree.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from prunekit._validation import check_real
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF

_LOG2E = 1.0 / math.log(2.0)


def stochastic_complexity(counts: np.ndarray) -> np.ndarray:
    """Bits to code the class labels of each row of ``counts`` (n_nodes, k) - MRA95's ``C(S)``."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    k = counts.shape[1]
    n = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log2(n[:, None] / counts), 0.0)
        size = np.where(n > 0, (k - 1) / 2.0 * np.log2(n / 2.0), 0.0)
    const = (k / 2.0 * math.log(math.pi) - gammaln(k / 2.0)) * _LOG2E
    return terms.sum(axis=1) + size + np.where(n > 0, const, 0.0)


def mdl(ctx: PruneContext, *, value_bits: float = 1.0) -> MethodResult:
    """MDL pruning (Mehta, Rissanen & Agrawal 1995); see the module docstring."""
    value_bits = check_real("value_bits", value_bits, minimum=0.0)
    struct = ctx.struct
    n_features = int(ctx.model.n_features_in_)
    split_bits = math.log2(max(n_features, 1)) + float(value_bits)
    leaf_cost = 1.0 + stochastic_complexity(struct.counts)
    cost = np.zeros(struct.n_nodes)
    collapse = np.zeros(struct.n_nodes, dtype=bool)
    for t in struct.postorder():
        if struct.left[t] == TREE_LEAF:
            cost[t] = leaf_cost[t]
            continue
        both = 1.0 + split_bits + cost[struct.left[t]] + cost[struct.right[t]]
        if leaf_cost[t] <= both:
            collapse[t] = True
            cost[t] = leaf_cost[t]
        else:
            cost[t] = both
    return MethodResult(
        collapse=collapse,
        params={"value_bits": float(value_bits), "description_length_bits": float(cost[0])},
    )
