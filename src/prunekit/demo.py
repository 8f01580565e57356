"""``prunekit demo``: an end-to-end showcase on bundled data, written to one HTML report.

Five sections, each using the public entry point of one domain:

1. a decision tree on breast_cancer pruned by ``prunekit.trees.prune_tree`` (reduced-error and
   cost-complexity);
2. a 100-tree random forest pruned to 20 % by ``prunekit.ensembles.prune_ensemble``
   (reduce-error ordered aggregation);
3. a small CNN on digits pruned by ``prunekit.nn.prune_model`` at several sparsities
   (accuracy-vs-sparsity curve);
4. the same CNN slimmed by ``prunekit.nn.structured.prune`` (channels physically removed);
5. deployment: the slim CNN exported to ONNX and quantized to int8 by ``prunekit.deploy``
   (size, accuracy and latency of dense eager / slim eager / ONNX fp32 / ONNX int8).

A section whose domain API is not importable is skipped with a visible note; the rest still run.
Outputs: ``report.html`` (self-contained) and ``figures.json`` (the data behind every figure) in
``--output-dir``; a Markdown summary is printed unless ``--quiet``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import typer

from prunekit import __version__
from prunekit._cli_common import SEED_MAX, check_output_dir, write_outputs
from prunekit._progress import ProgressBar
from prunekit._tables import times
from prunekit._validation import check_positive_int
from prunekit.errors import InvalidParameterError
from prunekit.metrics import (
    compare,
    complexity,
    evaluate,
    feature_importances,
    markdown_table,
    permutation_importance,
    serialized_size,
)
from prunekit.report import Report, plots

OUTPUT_FILES = ("report.html", "figures.json")
MAX_THREADS = 1024


@dataclass
class SectionResult:
    """Outcome of one demo section: ``status`` is ok, skipped or failed."""

    name: str
    status: str = "ok"
    note: str = ""
    seconds: float = 0.0
    headline: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    report: Report
    sections: list[SectionResult]
    html_path: Path
    figures_path: Path
    seconds: float

    def summary_markdown(self) -> str:
        """The printed summary: one headline row per pruned model, then section notes."""
        rows = [r for s in self.sections for r in s.headline]
        lines = [f"# prunekit demo ({self.seconds:.1f} s)", ""]
        if rows:
            lines += [markdown_table(rows), ""]
        for s in self.sections:
            if s.status != "ok":
                lines.append(f"- **{s.name}**: {s.status} — {s.note}")
        lines += ["", f"Report: `{self.html_path}`  ", f"Figure data: `{self.figures_path}`"]
        return "\n".join(lines) + "\n"


@dataclass
class _Config:
    seed: int
    fast: bool
    latency_repeats: int
    rf_trees: int
    epochs: int
    sparsities: tuple[float, ...]
    finetune_sparsities: tuple[float, ...]
    finetune_epochs: int
    structured_epochs: int


def _config(fast: bool, seed: int) -> _Config:
    if fast:
        return _Config(seed, True, 3, 20, 1, (0.0, 0.5, 0.8), (0.8,), 1, 1)
    return _Config(seed, False, 31, 100, 8, (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                   (0.5, 0.8, 0.9, 0.95), 1, 2)


def _lookup(module: str, attr: str) -> tuple[Any | None, str]:
    """``(object, "")`` if ``module.attr`` can be imported, else ``(None, reason)``."""
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        return None, f"{module}.{attr} not available ({type(exc).__name__}: {exc})"
    return obj, ""


def _require(module: str, attr: str, res: SectionResult, rep: Report) -> Any | None:
    """``module.attr`` if importable; otherwise mark ``res`` skipped, say why in ``rep``, None."""
    obj, why = _lookup(module, attr)
    if obj is None:
        res.status, res.note = "skipped", f"section skipped: {module} not available"
        rep.add_text(f"*{res.note}* ({why})")
    return obj


def _headline(name: str, cmp: Any, what: str) -> dict[str, Any]:
    key = "accuracy" if "accuracy" in cmp.before_metrics else next(iter(cmp.before_metrics))
    sr = cmp.size_ratio
    sp = cmp.speedup
    return {
        "model": name,
        "pruning": what,
        key: f"{cmp.before_metrics[key]:.3f} -> {cmp.after_metrics[key]:.3f}",
        "size": times(sr) if sr is not None else None,
        "speed": times(sp, "slower", "faster") if sp is not None else None,
    }


# --------------------------------------------------------------------------- 1. trees
def _section_trees(cfg: _Config, rep: Report) -> SectionResult:
    from sklearn.tree import DecisionTreeClassifier

    from prunekit.data import load_dataset

    res = SectionResult("1. decision tree")
    rep.add_text("## 1. Decision tree on breast_cancer")
    prune_tree = _require("prunekit.trees", "prune_tree", res, rep)
    if prune_tree is None:
        return res
    d = load_dataset("breast_cancer", seed=cfg.seed)
    tree = DecisionTreeClassifier(random_state=cfg.seed).fit(d.X_train, d.y_train)
    rep.add_text(
        "A fully grown `DecisionTreeClassifier` is pruned on the validation split; "
        "all numbers are on the held-out test split."
    )
    rows: list[dict[str, Any]] = []
    bars = [{"name": "unpruned", "n_nodes": tree.tree_.node_count}]
    first_cmp = None
    for method in ("reduced_error", "cost_complexity"):
        pruned = prune_tree(tree, method=method, X_val=d.X_val, y_val=d.y_val)
        cmp = compare(tree, pruned, d.X_test, d.y_test, repeats=cfg.latency_repeats,
                      names=("unpruned", method))
        first_cmp = first_cmp or cmp
        c = cmp.after_complexity
        rows.append({
            "method": method,
            "test accuracy": round(cmp.after_metrics["accuracy"], 4),
            "macro F1": round(cmp.after_metrics["f1_macro"], 4),
            "nodes": c.n_nodes, "leaves": c.n_leaves, "depth": c.depth,
            "size (bytes)": c.size_bytes,
        })
        bars.append({"name": method, "n_nodes": c.n_nodes,
                     "latency_ms": cmp.after_latency.median_s * 1e3 if cmp.after_latency else None})
        bars[0]["latency_ms"] = cmp.before_latency.median_s * 1e3 if cmp.before_latency else None
        report_obj = getattr(pruned, "prune_report_", None)
        rep.add_comparison(f"unpruned vs {method}", cmp)
        if report_obj is not None:
            rep.add_text(f"`{report_obj}`")
        res.headline.append(_headline("decision tree", cmp, method))
    base = complexity(tree)
    rows.insert(0, {"method": "unpruned",
                    "test accuracy": round(first_cmp.before_metrics["accuracy"], 4),
                    "macro F1": round(first_cmp.before_metrics["f1_macro"], 4),
                    "nodes": base.n_nodes, "leaves": base.n_leaves, "depth": base.depth,
                    "size (bytes)": base.size_bytes})
    rep.add_table(rows, title="Tree pruning methods")
    pruned_re = prune_tree(tree, method="reduced_error", X_val=d.X_val, y_val=d.y_val)
    pi_before = permutation_importance(tree, d.X_test, d.y_test, n_repeats=3, seed=cfg.seed,
                                       feature_names=d.feature_names)
    pi_after = permutation_importance(pruned_re, d.X_test, d.y_test, n_repeats=3, seed=cfg.seed,
                                      feature_names=d.feature_names)
    own = feature_importances(pruned_re)
    after_mean = dict(zip(d.feature_names, pi_after.importances_mean.tolist(), strict=True))
    own_map = dict(zip(d.feature_names, own.tolist(), strict=True)) if own is not None else {}
    rep.add_table([{"feature": f, "permutation (unpruned)": round(v, 4),
                    "permutation (reduced_error)": round(after_mean[f], 4),
                    "impurity importance (reduced_error)": round(own_map.get(f, 0.0), 4)}
                   for f, v in pi_before.top(5)],
                  title="Top features by permutation importance (test accuracy drop)")
    rep.add_figure(plots.size_latency(bars, columns=["n_nodes", "latency_ms"],
                                      title="Decision tree: nodes and latency"), "Tree size")
    rep.add_figure(plots.confusion_matrices(first_cmp.before_confusion, first_cmp.after_confusion,
                                            d.target_names, names=first_cmp.names),
                   "Decision tree: confusion matrices (test)")
    return res


# --------------------------------------------------------------------------- 2. ensembles
def _section_ensemble(cfg: _Config, rep: Report) -> SectionResult:
    from sklearn.ensemble import RandomForestClassifier

    from prunekit.data import load_dataset

    res = SectionResult("2. random forest")
    rep.add_text("## 2. Random forest on breast_cancer")
    prune_ensemble = _require("prunekit.ensembles", "prune_ensemble", res, rep)
    if prune_ensemble is None:
        return res
    d = load_dataset("breast_cancer", seed=cfg.seed)
    forest = RandomForestClassifier(n_estimators=cfg.rf_trees, random_state=cfg.seed, n_jobs=1)
    forest.fit(d.X_train, d.y_train)
    small = prune_ensemble(forest, method="reduce_error", size=0.2, X_val=d.X_val, y_val=d.y_val)
    cmp = compare(forest, small, d.X_test, d.y_test, repeats=cfg.latency_repeats,
                  names=(f"{cfg.rf_trees} trees", "pruned"))
    rep.add_text(
        f"A {cfg.rf_trees}-tree forest is reduced to 20 % of its members by reduce-error "
        "ordered aggregation (Margineantu & Dietterich 1997) on the validation split."
    )
    rep.add_comparison("forest vs pruned forest", cmp)
    pr = getattr(small, "prune_report_", None)
    if pr is not None and getattr(pr, "curve", None):
        curve = [(float(s), float(v)) for s, v in pr.curve]
        kept = int(getattr(pr, "n_members_after", 0) or 0)
        chosen = {"reduce_error ordering": next((p for p in curve if int(p[0]) == kept),
                                                curve[-1])}
        rep.add_tradeoff("Ensemble: validation accuracy along the pruning order",
                         {"reduce_error ordering": curve}, xlabel="members kept",
                         metric="validation accuracy", baseline=float(pr.score_before),
                         baseline_label=f"all {cfg.rf_trees} trees", chosen=chosen)
    rep.add_figure(plots.size_latency([
        {"name": cmp.names[0], "size_bytes": cmp.before_complexity.size_bytes,
         "latency_ms": cmp.before_latency.median_s * 1e3 if cmp.before_latency else None},
        {"name": cmp.names[1], "size_bytes": cmp.after_complexity.size_bytes,
         "latency_ms": cmp.after_latency.median_s * 1e3 if cmp.after_latency else None},
    ], title="Random forest: size and latency"), "Ensemble size")
    res.headline.append(_headline("random forest", cmp, "reduce_error, 20 % of members"))
    return res


# --------------------------------------------------------------------------- 3./4. networks
def _tiny_cnn(n_classes: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
        nn.Linear(64, n_classes),
    )


def _train(model: Any, loader: Any, epochs: int, lr: float = 3e-3,
           on_step: Callable[[int], None] | None = None) -> None:
    train_classifier, _ = _lookup("prunekit.nn.training", "train_classifier")
    if train_classifier is not None:
        train_classifier(model, loader, epochs=epochs, lr=lr, on_step=on_step)
        return
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step = 0
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            step += 1
            if on_step is not None:
                on_step(step)
    model.eval()


def _finetune_keeping_zeros(model: Any, loader: Any, epochs: int) -> Any:
    """Fine-tune a pruned model; after every step the weights pruned to zero are zeroed again."""
    import torch

    masks = [(p, p.ne(0).to(p.dtype)) for n, p in model.named_parameters()
             if n.endswith("weight") and p.dim() > 1]

    def keep_zeros(_step: int) -> None:
        with torch.no_grad():
            for p, m in masks:
                p.mul_(m)

    _train(model, loader, epochs, lr=1e-3, on_step=keep_zeros)
    return model


def _digits_model(cfg: _Config) -> tuple[Any, Any, Any, str]:
    import torch

    from prunekit.data import load_dataset

    torch.manual_seed(cfg.seed)
    d = load_dataset("digits", seed=cfg.seed)
    train, _, _ = d.loaders(batch_size=64, images=True, seed=cfg.seed)
    cnn_cls, _ = _lookup("prunekit.nn.models", "DigitsCNN")
    if cnn_cls is not None:
        model, name = cnn_cls(n_classes=d.n_classes), "DigitsCNN"
    else:
        model, name = _tiny_cnn(d.n_classes), "tiny CNN (nn.Sequential)"
    _train(model, train, cfg.epochs)
    return model, d, train, name


def _unwrap(out: Any, fallback: Any) -> Any:
    import torch

    if isinstance(out, torch.nn.Module):
        return out
    if isinstance(out, tuple) and out and isinstance(out[0], torch.nn.Module):
        return out[0]
    return fallback


def _section_unstructured(cfg: _Config, rep: Report, net: tuple[Any, Any, Any, str]
                          ) -> SectionResult:
    res = SectionResult("3. CNN, unstructured")
    rep.add_text("## 3. Unstructured pruning of a CNN on digits")
    model, d, train, model_name = net
    prune_model = _require("prunekit.nn", "prune_model", res, rep)
    if prune_model is None:
        return res
    X_test = d.images(d.X_test)

    prune_reports: dict[tuple[float, str], Any] = {}

    def prune_at(s: float, criterion: str) -> Any:
        m = copy.deepcopy(model)
        if s == 0.0:
            return m
        out = prune_model(m, sparsity=s, criterion=criterion, pattern="unstructured")
        prune_reports[(s, criterion)] = out
        return _unwrap(out, m)

    curves: dict[str, list[tuple[float, float]]] = {}
    tuned: dict[float, Any] = {}
    pts = []
    for s in cfg.finetune_sparsities:
        m = _finetune_keeping_zeros(prune_at(s, "magnitude"), train, cfg.finetune_epochs)
        tuned[s] = m
        pts.append((s, evaluate(m, X_test, d.y_test)["accuracy"]))
    tuned_pts = pts
    for criterion in ("magnitude", "random"):
        pts = []
        try:
            for s in cfg.sparsities:
                pruned = prune_at(s, criterion)
                pts.append((s, evaluate(pruned, X_test, d.y_test)["accuracy"]))
        except Exception as exc:  # noqa: BLE001 - a missing criterion must not end the demo
            if criterion == "magnitude":
                raise
            rep.add_text(f"*criterion='random' skipped: {type(exc).__name__}: {exc}*")
            continue
        curves[criterion] = pts
    dense_acc = curves["magnitude"][0][1]
    label = f"magnitude + {cfg.finetune_epochs} epoch fine-tuning"
    curves[label] = [(0.0, dense_acc), *tuned_pts]
    rep.add_text(
        f"`{model_name}` trained for {cfg.epochs} epoch(s), then pruned with "
        "`criterion='magnitude', pattern='unstructured'`: one-shot, and one-shot followed by "
        f"{cfg.finetune_epochs} epoch(s) of fine-tuning that keeps the zeros; `random` is the "
        "sanity baseline."
    )
    grid = sorted({s for p in curves.values() for s, _ in p})
    rep.add_table([{"sparsity": s, **{c: round(dict(p)[s], 4) if s in dict(p) else None
                                      for c, p in curves.items()}} for s in grid],
                  title="Test accuracy vs. sparsity")
    rep.add_tradeoff(f"{model_name} on digits: test accuracy vs. sparsity", curves,
                     xlabel="sparsity", metric="test accuracy", baseline=dense_acc,
                     baseline_label="dense", x_better="higher")
    target = 0.8 if 0.8 in tuned else max(tuned)
    pruned = tuned[target]
    cmp = compare(model, pruned, X_test, d.y_test, repeats=cfg.latency_repeats,
                  names=("dense", f"{target:.0%} sparse"))
    rep.add_comparison(f"dense vs {target:.0%} magnitude-pruned and fine-tuned", cmp)
    res.headline.append(_headline(model_name, cmp, f"magnitude {target:.0%} + fine-tune"))
    rep.add_text(
        "Unstructured zeros keep the dense shapes: MACs and latency stay, `non-zero MACs` "
        "shows the ideal cost on a sparse kernel."
    )
    preport = prune_reports.get((target, "magnitude"))
    if preport is not None and hasattr(preport, "to_markdown"):
        rep.add_text(f"**What `prune_model` did at {target:.0%}:**\n\n{preport.to_markdown()}")
    save_compact, _ = _lookup("prunekit.nn", "save_compact")
    if save_compact is not None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = save_compact(pruned, Path(tmp) / "sparse.safetensors")
            compact = path.stat().st_size
        dense_bytes = cmp.before_complexity.size_bytes or 0
        rep.add_table([
            {"checkpoint": "dense, torch.save(state_dict)", "bytes": dense_bytes},
            {"checkpoint": f"{target:.0%} sparse, torch.save(state_dict)",
             "bytes": cmp.after_complexity.size_bytes},
            {"checkpoint": f"{target:.0%} sparse, prunekit.nn.save_compact", "bytes": compact},
        ], title="Checkpoint size")
        res.headline.append({"model": model_name, "pruning": f"compact checkpoint, {target:.0%}",
                             "accuracy": "(same model)",
                             "size": times(compact / max(dense_bytes, 1)), "speed": None})
    if cmp.after_complexity.layer_sparsity:
        rep.add_figure(plots.layer_sparsity(cmp.after_complexity.layer_sparsity,
                                            title=f"Sparsity per layer at {target:.0%}"),
                       "Per-layer sparsity")
    return res


def _section_structured(cfg: _Config, rep: Report, net: tuple[Any, Any, Any, str],
                        shared: dict[str, Any] | None = None) -> SectionResult:
    import torch

    res = SectionResult("4. CNN, structured")
    rep.add_text("## 4. Structured pruning: channels removed")
    prune = _require("prunekit.nn.structured", "prune", res, rep)
    if prune is None:
        return res
    model, d, train, model_name = net
    X_test = d.images(d.X_test)
    example = torch.as_tensor(X_test[:1], dtype=torch.float32)
    out = prune(copy.deepcopy(model), example, ratio=0.5)
    slim, sreport = (out if isinstance(out, tuple) else (out, None))
    if cfg.structured_epochs:
        _train(slim, train, cfg.structured_epochs, lr=1e-3)
    cmp = compare(model, slim, X_test, d.y_test, repeats=cfg.latency_repeats,
                  names=("dense", "slim"))
    rep.add_text(
        f"`prunekit.nn.structured.prune(model, example_inputs, ratio=0.5)` removes half of the "
        f"prunable channels of `{model_name}` along its dependency groups, then the slim model "
        f"is fine-tuned for {cfg.structured_epochs} epoch(s)."
    )
    if sreport is not None:
        text = sreport.to_markdown() if hasattr(sreport, "to_markdown") else str(sreport)
        rep.add_text(text if "\n" in text else f"`{text}`")
    rep.add_comparison("dense vs structurally pruned", cmp)
    rep.add_figure(plots.size_latency([
        {"name": "dense", "n_params": cmp.before_complexity.n_params,
         "macs": cmp.before_complexity.macs,
         "latency_ms": cmp.before_latency.median_s * 1e3 if cmp.before_latency else None},
        {"name": "slim", "n_params": cmp.after_complexity.n_params,
         "macs": cmp.after_complexity.macs,
         "latency_ms": cmp.after_latency.median_s * 1e3 if cmp.after_latency else None},
    ], columns=["n_params", "macs", "latency_ms"], title="Structured pruning: params, MACs, "
       "latency"), "Structured pruning")
    res.headline.append(_headline(model_name, cmp, "structured, 50 % channels"))
    if shared is not None:
        shared["slim"] = slim
    return res


def _section_deploy(cfg: _Config, rep: Report, net: tuple[Any, Any, Any, str],
                    shared: dict[str, Any], workdir: Path) -> SectionResult:
    """Dense eager vs slim eager vs slim ONNX fp32 vs slim ONNX int8: bytes, accuracy, speed."""
    import torch

    res = SectionResult("5. deployment")
    rep.add_text("## 5. Deployment: ONNX and int8")
    export_onnx = _require("prunekit.deploy", "export_onnx", res, rep)
    if export_onnx is None or "slim" not in shared:
        if export_onnx is not None:
            res.status, res.note = "skipped", "needs the slim model of section 4"
        return res
    try:
        from prunekit.deploy import quantize
        from prunekit.deploy._common import median_times, ort_session
    except ImportError as exc:  # the deploy extra (onnx, onnxruntime) is missing
        res.status, res.note = "skipped", f"the deploy extra is missing ({exc})"
        rep.add_text(f"*{res.note}: pip install 'prunekit[deploy]'*")
        return res
    model, d, _, model_name = net
    slim = shared["slim"].eval()
    X_test = torch.as_tensor(d.images(d.X_test), dtype=torch.float32)
    calibration = [torch.as_tensor(d.images(d.X_val[i:i + 64]), dtype=torch.float32)
                   for i in range(0, len(d.X_val), 64)]
    fp32, int8 = workdir / "slim.onnx", workdir / "slim.int8.onnx"
    export_onnx(slim, X_test[:1], fp32, exporter="torchscript")
    q = quantize(fp32, int8, "static", calibration=calibration)
    sessions = {"fp32": ort_session(fp32), "int8": ort_session(int8)}
    name = sessions["fp32"].get_inputs()[0].name
    batch = X_test[:8]

    def eager_acc(m: Any) -> float:
        with torch.inference_mode():
            return float((m(X_test).argmax(1).numpy() == d.y_test).mean())

    def ort_acc(kind: str) -> float:
        out = sessions[kind].run(None, {name: X_test.numpy()})[0]
        return float((out.argmax(1) == d.y_test).mean())

    with torch.inference_mode():
        lat = median_times({
            "dense": lambda: model(batch), "slim": lambda: slim(batch),
            "fp32": lambda: sessions["fp32"].run(None, {name: batch.numpy()}),
            "int8": lambda: sessions["int8"].run(None, {name: batch.numpy()}),
        }, reps=cfg.latency_repeats)
    dense_bytes, slim_bytes = serialized_size(model), serialized_size(slim)  # torch.save bytes
    rows = [
        ("dense, PyTorch eager", dense_bytes, eager_acc(model), lat["dense"]),
        ("slim, PyTorch eager", slim_bytes, eager_acc(slim), lat["slim"]),
        ("slim, ONNX Runtime fp32", fp32.stat().st_size, ort_acc("fp32"), lat["fp32"]),
        ("slim, ONNX Runtime int8 (static QDQ)", int8.stat().st_size, ort_acc("int8"),
         lat["int8"]),
    ]
    table = [{"variant": v, "file bytes": b, "size vs dense": times(b / dense_bytes),
              "test accuracy": round(a, 4), "batch-8 latency (ms)": round(t * 1e3, 3),
              "speed vs dense": times(lat["dense"] / t, "slower", "faster")}
             for v, b, a, t in rows]
    rep.add_text(
        f"The slim `{model_name}` of section 4 exported with `prunekit.deploy.export_onnx` "
        "(BatchNorm folded, outputs verified in onnxruntime) and quantized to int8 with "
        "`prunekit.deploy.quantize(..., 'static')` on the validation split. Latencies are "
        f"interleaved medians of {cfg.latency_repeats} calls on one batch of 8 (one thread)."
    )
    rep.add_table(table, title="Deployment: dense vs slim vs ONNX vs int8")
    for note in q.notes:
        rep.add_text(f"- {note}")
    acc0, acc_q = rows[0][2], rows[3][2]
    res.headline.append({
        "model": model_name, "pruning": "structured 50 % + int8 ONNX",
        "accuracy": f"{acc0:.3f} -> {acc_q:.3f}", "size": times(rows[3][1] / dense_bytes),
        "speed": times(lat["dense"] / lat["int8"], "slower", "faster")})
    return res


# --------------------------------------------------------------------------- driver
def run_demo(
    output_dir: str | Path = "prunekit-demo",
    *,
    fast: bool = False,
    quiet: bool = True,
    seed: int = 0,
    threads: int = 1,
) -> DemoResult:
    """Run all sections, write ``report.html`` and ``figures.json``, return a :class:`DemoResult`.

    ``fast=True`` shrinks every section (fewer trees, epochs, sparsities) for tests. Torch runs
    with ``threads`` intra-op threads (restored afterwards): the demo's networks are tiny, and
    one thread is as fast as two on an idle machine and far faster on a busy one.
    """
    import torch

    threads = check_positive_int("threads", threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(Path(output_dir), _config(fast, seed), quiet)
    finally:
        torch.set_num_threads(previous_threads)


def _run(out: Path, cfg: _Config, quiet: bool) -> DemoResult:
    import torch

    seed, fast = cfg.seed, cfg.fast
    start = time.perf_counter()
    np.random.seed(seed)
    torch.manual_seed(seed)
    body = Report("body")
    results: list[SectionResult] = []
    net: tuple[Any, Any, Any, str] | None = None

    shared: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="prunekit-demo-"))

    def nn_sections() -> list[tuple[str, Callable[[], SectionResult]]]:
        return [("3. CNN, unstructured", lambda: _section_unstructured(cfg, body, _net())),
                ("4. CNN, structured",
                 lambda: _section_structured(cfg, body, _net(), shared)),
                ("5. deployment",
                 lambda: _section_deploy(cfg, body, _net(), shared, workdir))]

    def _net() -> tuple[Any, Any, Any, str]:
        nonlocal net
        if net is None:
            net = _digits_model(cfg)
        return net

    steps = [("1. decision tree", lambda: _section_trees(cfg, body)),
             ("2. random forest", lambda: _section_ensemble(cfg, body)), *nn_sections()]
    with ProgressBar(len(steps), "prunekit demo", enabled=not quiet) as bar, \
            contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        for name, fn in steps:
            bar.advance(0, description=f"demo: {name}")
            t0 = time.perf_counter()
            try:
                res = fn()
            except Exception as exc:  # noqa: BLE001 - show the failure, run the other sections
                res = SectionResult(name, "failed", f"{type(exc).__name__}: {exc}")
                body.add_text(f"**section failed:** `{res.note}`")
            res.seconds = time.perf_counter() - t0
            results.append(res)
            bar.advance(1)
    elapsed = time.perf_counter() - start
    rep = Report("prunekit demo", subtitle=(
        f"prunekit {__version__} · torch {torch.__version__} · Python "
        f"{platform.python_version()} · {'fast' if fast else 'full'} run in {elapsed:.1f} s"))
    headline = [r for s in results for r in s.headline]
    if headline:
        rep.add_table(headline, title="Headline (test split)")
    rep.add_table([{"section": s.name, "status": s.status, "seconds": round(s.seconds, 2),
                    "note": s.note} for s in results], title="Sections")
    rep.sections.extend(body.sections)
    html_path, figures_path = out / "report.html", out / "figures.json"
    write_outputs({html_path: rep.to_html(),
                   figures_path: lambda tmp: rep.write_figures_json(tmp)})
    return DemoResult(rep, results, html_path, figures_path, elapsed)


def demo(
    output_dir: Path = typer.Option(
        Path("prunekit-demo"), "--output-dir", "-o", help="Folder for report.html and figures.json."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_MAX, help="Seed for data splits, training and pruning."
    ),
    threads: int = typer.Option(1, "--threads", help="Torch intra-op threads for the demo."),
    fast: bool = typer.Option(False, "--fast", hidden=True, help="Tiny settings for tests."),
) -> None:
    """Prune a decision tree, a random forest and a CNN on bundled data; write an HTML report.

    Writes report.html and figures.json to --output-dir and prints a Markdown summary. Exits
    with status 1 if a section failed (the report still shows the others and the error).
    """
    check_positive_int("threads", threads)
    if threads > MAX_THREADS:
        raise InvalidParameterError(f"--threads={threads} must be at most {MAX_THREADS}")
    check_output_dir("--output-dir", output_dir, OUTPUT_FILES)
    result = run_demo(output_dir, fast=fast, quiet=quiet, seed=seed, threads=threads)
    if not quiet:
        typer.echo(result.summary_markdown())
    if any(s.status == "failed" for s in result.sections):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``prunekit demo`` to the root command."""
    app.command("demo")(demo)
