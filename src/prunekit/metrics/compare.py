"""Side-by-side comparison of a model before and after pruning."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunekit._tables import times
from prunekit._validation import check_positive_int
from prunekit.errors import ShapeMismatchError
from prunekit.metrics._common import check_model, is_dataloader, to_numpy
from prunekit.metrics.classification import (
    Task,
    infer_task,
    loader_targets,
    predict,
    scores,
)
from prunekit.metrics.classification import confusion_matrix as _confusion
from prunekit.metrics.complexity import Complexity, complexity
from prunekit.metrics.latency import Latency, measure_latency_pair

# (field, label, "int"|"float"|"bytes") rows of the complexity part of the table
_COMPLEXITY_ROWS = (
    ("n_params", "parameters", "int"),
    ("n_nonzero", "non-zero parameters", "int"),
    ("sparsity", "sparsity", "float"),
    ("weight_sparsity", "weight sparsity", "float"),
    ("macs", "MACs", "int"),
    ("nonzero_macs", "non-zero MACs", "int"),
    ("n_nodes", "nodes", "int"),
    ("n_leaves", "leaves", "int"),
    ("depth", "depth", "int"),
    ("n_members", "members", "int"),
    ("size_bytes", "size (bytes)", "int"),
)


def _ratio(after: float | None, before: float | None) -> float | None:
    if after is None or before is None or before == 0:
        return None
    return float(after) / float(before)


@dataclass(frozen=True)
class Comparison:
    """Quality, complexity and latency of two models on the same test data.

    ``changes()`` gives ratios after/before for sizes and the speed-up; ``to_markdown()`` a table.
    """

    task: str
    n_samples: int
    before_metrics: dict[str, float]
    after_metrics: dict[str, float]
    before_complexity: Complexity
    after_complexity: Complexity
    before_latency: Latency | None = None
    after_latency: Latency | None = None
    before_confusion: np.ndarray | None = None
    after_confusion: np.ndarray | None = None
    labels: list[Any] = field(default_factory=list)
    names: tuple[str, str] = ("before", "after")

    # ---- convenience ----------------------------------------------------------------
    def delta(self, metric: str) -> float:
        """``after - before`` of a quality metric (e.g. ``"accuracy"``)."""
        return self.after_metrics[metric] - self.before_metrics[metric]

    @property
    def accuracy_delta(self) -> float | None:
        return self.delta("accuracy") if "accuracy" in self.before_metrics else None

    @property
    def size_ratio(self) -> float | None:
        """Serialized size after / before."""
        return _ratio(self.after_complexity.size_bytes, self.before_complexity.size_bytes)

    @property
    def speedup(self) -> float | None:
        """Median latency before / after (> 1 means the pruned model is faster)."""
        if self.before_latency is None or self.after_latency is None:
            return None
        return _ratio(self.before_latency.median_s, self.after_latency.median_s)

    def changes(self) -> dict[str, float | None]:
        """Deltas of the quality metrics, ratios (after/before) of sizes, and the speed-up."""
        out: dict[str, float | None] = {
            f"{k}_delta": self.after_metrics[k] - v for k, v in self.before_metrics.items()
        }
        for key, _, _ in _COMPLEXITY_ROWS:
            if key in ("sparsity", "weight_sparsity"):
                continue
            out[f"{key}_ratio"] = _ratio(
                getattr(self.after_complexity, key), getattr(self.before_complexity, key)
            )
        out["speedup"] = self.speedup
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of everything measured."""
        return {
            "task": self.task,
            "n_samples": self.n_samples,
            "names": list(self.names),
            "metrics": {self.names[0]: self.before_metrics, self.names[1]: self.after_metrics},
            "complexity": {
                self.names[0]: self.before_complexity.to_dict(),
                self.names[1]: self.after_complexity.to_dict(),
            },
            "latency": {
                self.names[0]: self.before_latency.to_dict() if self.before_latency else None,
                self.names[1]: self.after_latency.to_dict() if self.after_latency else None,
            },
            "confusion_matrix": {
                self.names[0]: _tolist(self.before_confusion),
                self.names[1]: _tolist(self.after_confusion),
            },
            "labels": [_plain(v) for v in self.labels],
            "changes": self.changes(),
        }

    def rows(self) -> list[dict[str, str]]:
        """Table rows ``{"metric", before-name, after-name, "change"}`` as formatted strings."""
        b, a = self.names
        rows = []
        for k, vb in self.before_metrics.items():
            va = self.after_metrics[k]
            rows.append({"metric": k, b: f"{vb:.4f}", a: f"{va:.4f}", "change": f"{va - vb:+.4f}"})
        trees = self.before_complexity.n_nodes is not None  # nodes, not weights: no sparsity
        for key, label, fmt in _COMPLEXITY_ROWS:
            vb, va = getattr(self.before_complexity, key), getattr(self.after_complexity, key)
            if (vb is None and va is None) or (trees and key in _WEIGHT_ROWS):
                continue
            if fmt == "float":
                change = f"{va - vb:+.4f}" if vb is not None and va is not None else ""
            else:
                r = _ratio(va, vb)
                change = times(r) if r is not None else ""
            rows.append({"metric": label, b: _fmt(vb, fmt), a: _fmt(va, fmt), "change": change})
        if self.before_latency is not None and self.after_latency is not None:
            sp = self.speedup
            rows.append({
                "metric": f"latency median (ms, batch {self.before_latency.batch_size})",
                b: f"{self.before_latency.median_s * 1e3:.3f}",
                a: f"{self.after_latency.median_s * 1e3:.3f}",
                "change": times(sp, "slower", "faster") if sp is not None else "",
            })
            rmin = _ratio(self.before_latency.min_s, self.after_latency.min_s)
            rows.append({
                "metric": "latency min (ms)",
                b: f"{self.before_latency.min_s * 1e3:.3f}",
                a: f"{self.after_latency.min_s * 1e3:.3f}",
                "change": times(rmin, "slower", "faster") if rmin is not None else "",
            })
        return rows

    def to_markdown(self) -> str:
        """A Markdown table: one row per metric, columns before / after / change."""
        return markdown_table(self.rows())


_WEIGHT_ROWS = ("n_params", "n_nonzero", "sparsity", "weight_sparsity")


def _fmt(v: Any, fmt: str) -> str:
    if v is None:
        return "—"
    if fmt == "float":
        return f"{v:.4f}"
    return f"{int(v):,}"


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _tolist(a: np.ndarray | None) -> list[list[int]] | None:
    return None if a is None else np.asarray(a).tolist()


def markdown_table(rows: list[dict[str, Any]], *, right: Iterable[str] = ()) -> str:
    """Render ``rows`` (dicts with the same keys) as a GitHub-flavoured Markdown table.

    Floats are shown with 4 significant digits (pre-format them as strings for another format);
    the columns named in ``right`` are right-aligned.
    """
    if not rows:
        return ""
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]
    right = set(right)

    def cell(v: Any) -> str:
        text = "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return text.replace("|", "\\|").replace("\n", " ")

    rule = "|" + "".join("---:|" if c in right else "---|" for c in cols)
    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", rule]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _first_batch(X: Any, n: int) -> Any:
    if is_dataloader(X):
        batch = next(iter(X))
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return x[:n]
    return X[:n]


def compare(
    before: Any,
    after: Any,
    X_test: Any,
    y_test: Any = None,
    *,
    example_inputs: Any = None,
    latency: bool = True,
    task: Task | None = None,
    latency_batch_size: int = 32,
    warmup: int = 3,
    repeats: int = 20,
    names: tuple[str, str] = ("before", "after"),
) -> Comparison:
    """Evaluate ``before`` and ``after`` on the same test data and measure both.

    Quality metrics come from :func:`prunekit.metrics.scores`, sizes from
    :func:`prunekit.metrics.complexity` (torch MACs on ``example_inputs``, by default the first
    test sample), latency from :func:`prunekit.metrics.measure_latency` on the first
    ``latency_batch_size`` test samples (skipped with ``latency=False``).
    ``X_test`` may be an array, a tensor or a DataLoader of ``(x, y)`` batches (then ``y_test``
    may be omitted).
    """
    kind_b, kind_a = check_model(before, "before"), check_model(after, "after")
    latency_batch_size = check_positive_int("latency_batch_size", latency_batch_size)
    if y_test is None:
        if not is_dataloader(X_test):
            from prunekit.errors import InvalidParameterError

            raise InvalidParameterError("y_test is required unless X_test is a DataLoader")
        y_test = loader_targets(X_test)
    y = to_numpy(y_test).ravel()
    if task is None:
        task = infer_task(before, y)
    pred_b = predict(before, X_test, task=task)
    pred_a = predict(after, X_test, task=task)
    if len(pred_b) != len(y):
        raise ShapeMismatchError(
            f"X_test gives {len(pred_b)} predictions but y_test has {len(y)} samples"
        )
    cm_b = cm_a = None
    labels: list[Any] = []
    if task == "classification":
        labels = sorted(set(np.unique(y).tolist()) | set(np.unique(pred_b).tolist())
                        | set(np.unique(pred_a).tolist()))
        cm_b = _confusion(y, pred_b, labels=labels)
        cm_a = _confusion(y, pred_a, labels=labels)
    if example_inputs is None:
        example_inputs = _first_batch(X_test, 1)
    cx_b = complexity(before, example_inputs if kind_b == "torch" else None)
    cx_a = complexity(after, example_inputs if kind_a == "torch" else None)
    lat_b = lat_a = None
    if latency:
        xs = _first_batch(X_test, latency_batch_size)
        lat_b, lat_a = measure_latency_pair(before, after, xs, warmup=warmup, repeats=repeats)
    return Comparison(
        task=task,
        n_samples=len(y),
        before_metrics=scores(y, pred_b, task),
        after_metrics=scores(y, pred_a, task),
        before_complexity=cx_b,
        after_complexity=cx_a,
        before_latency=lat_b,
        after_latency=lat_a,
        before_confusion=cm_b,
        after_confusion=cm_a,
        labels=labels,
        names=tuple(names),  # type: ignore[arg-type]
    )
