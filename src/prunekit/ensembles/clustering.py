"""Clustering-based pruning: group members that predict alike and keep one per group.

Giacinto, Roli & Fumera (2000), "Design of effective multiple classifier systems by clustering of
classifiers", ICPR; Lazarevic & Obradovic (2001), "Effective pruning of neural network classifier
ensembles", IJCNN. Members are clustered by their prediction vectors on the pruning data with
average-linkage hierarchical clustering (scipy), so one dendrogram serves every target size; each
cluster contributes its most accurate member.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from prunekit.ensembles._members import MemberMatrix
from prunekit.ensembles._scoring import individual_scores


def prediction_distances(M: MemberMatrix) -> np.ndarray:
    """``[N, N]`` distances between members' prediction vectors.

    Classification: the disagreement rate (fraction of samples, usable by both, on which the
    two members predict different labels). Regression: root mean squared difference of the
    predictions.
    """
    valid = M.valid.astype(np.float64)
    if M.task == "classification" and M.mask is None:  # every pair shares all samples
        from prunekit.ensembles.ordering import label_agreement

        dist = label_agreement(M)
        dist *= -1.0 / max(M.n_samples, 1)
        dist += 1.0  # 1 - agree / n, in place (N x N temporaries dominate at large N)
        np.fill_diagonal(dist, 0.0)
        dist += dist.T
        dist *= 0.5
        return dist
    both = valid @ valid.T
    if M.task == "classification":
        from prunekit.ensembles.ordering import label_agreement

        agree = label_agreement(M)
        dist = 1.0 - np.divide(agree, both, out=np.zeros_like(agree), where=both > 0)
    else:
        v = np.where(M.valid, M.labels, 0.0)
        sq = (v**2) @ valid.T
        cross = v @ v.T
        ssd = sq + sq.T - 2.0 * cross
        dist = np.sqrt(
            np.divide(np.maximum(ssd, 0.0), both, out=np.zeros_like(ssd), where=both > 0)
        )
    np.fill_diagonal(dist, 0.0)
    return 0.5 * (dist + dist.T)


class ClusterSelector:
    """Builds the dendrogram once; :meth:`select` cuts it into ``k`` clusters."""

    def __init__(self, M: MemberMatrix) -> None:
        self.n_members = M.n_members
        self.quality = individual_scores(M)
        if M.n_members > 1:
            condensed = squareform(prediction_distances(M), checks=False)
            self.linkage = linkage(condensed, method="average")
        else:
            self.linkage = None

    def select(self, k: int) -> np.ndarray:
        """Indices of the most accurate member of each of (at most) ``k`` clusters."""
        if self.linkage is None or k >= self.n_members:
            return np.arange(self.n_members)[:k]
        labels = fcluster(self.linkage, t=k, criterion="maxclust")
        # best member per cluster: sort by (cluster, -quality, index) and take each first
        order = np.lexsort((np.arange(self.n_members), -self.quality, labels))
        first = np.ones(len(order), dtype=bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        chosen = order[first]
        return chosen[np.argsort(-self.quality[chosen], kind="stable")]


def cluster_select(M: MemberMatrix, k: int) -> np.ndarray:
    """Keep one member (the most accurate) per cluster of ``k`` clusters of alike members."""
    return ClusterSelector(M).select(k)
