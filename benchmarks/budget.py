"""How far can I prune? Sensitivity allocation, accuracy-budget search and calibration recovery.

Parts (each prints a Markdown table; all rows go to benchmarks/results/budget.json):

1. allocation — trained MnistCNN and LeNet-300-100 (MNIST, 5000 samples), structured removal at
   2x/3x/4x MACs reduction: uniform ratio vs global magnitude ranking vs sensitivity allocation
   (group_sensitivity on the validation split + knapsack DP), test accuracy before and after the
   same short fine-tune (1 epoch, Adam 1e-3). LeNet also unstructured at 2x/3x/4x (sparsity of the
   weights) with global magnitude vs uniform vs layer_sensitivity allocation.
2. proxies — layer_sensitivity of MnistCNN: rank correlation of the cheap proxies (loss on 2
   batches, first-order Taylor + Fisher) with the full validation-accuracy curves, and their time.
3. budget — max_drop=0.01 (test split): trees on 5 data sets (search over methods and parameters
   vs the best default setting of each method), bagging and random forests (size search vs the
   best of the fixed sizes 10/20/30 %), LeNet unstructured and MnistCNN structured (search vs the
   best fixed setting of a small grid); compression reached and search time.
4. recovery — calibration-only structured recovery (no labels, no training): trained MnistCNN and
   DigitsCNN (BatchNorm) at 1.3x and 2x MACs, and the pretrained MiniLM heads/FFN at 1.3x and 2x:
   magnitude vs + BatchNorm re-estimation vs + least-squares reconstruction vs + activation scores
   vs + sensitivity allocation; agreement with the dense model / accuracy / embedding cosine on
   held-out data, calibration time.
5. oneshot — MiniLM 50 % SparseGPT calibrated on docstring paragraphs vs on the everyday
   sentences, then masked distillation on the everyday sentences (zeros kept; previous recipe vs
   cosine only vs the masked_distill defaults): cosine and nearest-neighbour agreement on the
   held-out sentences (other topics), cosine on unused docstring paragraphs (out of domain),
   sparsity, time, memory.
6. sweep — search_sparsity with a short fine-tune per candidate, 1 vs 2 workers (interleaved,
   median wall and CPU time incl. the worker processes, load averages; the first 2-worker search,
   which starts the workers, on its own row).

    python benchmarks/budget.py            # full run (~10-15 min on 2 cores)
    python benchmarks/budget.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunekit._evaluation import Accuracy, BatchLoss
from prunekit._io import atomic_write_json
from prunekit.data import load_dataset
from prunekit.errors import PrunekitError
from prunekit.metrics import count_macs, markdown_table

RESULTS = Path(__file__).parent / "results" / "budget.json"


def _train(model: torch.nn.Module, loader: Any, epochs: int, seed: int = 0) -> torch.nn.Module:
    from prunekit.nn.training import train_classifier

    torch.manual_seed(seed)
    train_classifier(model, loader, epochs=epochs, lr=1e-3)
    return model.eval()


def _finetune(model: torch.nn.Module, loader: Any, steps: int | None = None) -> None:
    from prunekit.nn.training import train_classifier

    torch.manual_seed(1)
    train_classifier(model, loader, epochs=1, lr=1e-3, max_steps=steps)
    model.eval()


def _mnist(quick: bool) -> tuple[Any, Any, Any, Any]:
    d = load_dataset("mnist")
    tr, va, te = d.loaders(64, images=True)
    return d, tr, va, te


# ----------------------------------------------------------------------------- 1 allocation


def allocation_part(quick: bool) -> list[dict[str, Any]]:
    """Every cell over several seeds (model init, training and fine-tune order): mean and
    sample standard deviation of the test accuracy, and the paired difference to the uniform
    allocation of the same seed (percentage points, mean and standard deviation, wins).
    "sensitivity + mix" blends uniform and knapsack ratios, the blend chosen by the loss of
    the jointly pruned model on the validation split (select_allocation)."""
    from prunekit.budget import _keep_zeros_finetune
    from prunekit.nn.allocation import allocate, select_allocation
    from prunekit.nn.models import LeNet300100, MnistCNN
    from prunekit.nn.sensitivity import group_sensitivity, layer_sensitivity
    from prunekit.nn.sparsity import prune_model
    from prunekit.nn.structured import prune
    from prunekit.nn.training import train_classifier

    d = load_dataset("mnist")
    seeds = (0, 1) if quick else (0, 1, 2, 3, 4)
    ft_steps = 10 if quick else None
    grid = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    cells: dict[tuple[str, str, str, str], list[dict[str, float]]] = {}

    def finetune(m: torch.nn.Module, seed: int) -> None:
        # a fresh loader per candidate: every allocation of a seed sees the same batches
        torch.manual_seed(100 + seed)
        fresh = d.loaders(64, images=True, seed=1000 + seed)[0]
        train_classifier(m, fresh, epochs=1, lr=1e-3, max_steps=ft_steps)
        m.eval()

    def record(key: tuple[str, str, str, str], cand: torch.nn.Module, reached: float,
               dense: float, test: Any, ft: Any, t_sens: float | None) -> None:
        before = test(cand)
        ft(cand)
        cells.setdefault(key, []).append({"reached_x": reached, "acc_dense": dense,
                                          "acc_pruned": before, "acc_finetuned": test(cand),
                                          "sensitivity_s": t_sens})

    for seed in seeds:
        tr, va, te = d.loaders(64, images=True, seed=seed)
        val, test, val_loss = Accuracy(va), Accuracy(te), BatchLoss(va)
        x = next(iter(te))[0][:1]
        for name, ctor in (("MnistCNN", MnistCNN), ("LeNet-300-100", LeNet300100)):
            torch.manual_seed(seed)
            model = _train(ctor(), tr, 1 if quick else 3, seed=seed)
            dense = test(model)
            t0 = time.perf_counter()
            sens = group_sensitivity(model, x, val, grid=grid)
            t_sens = time.perf_counter() - t0
            for factor in (2, 3, 4):
                reached: dict[str, float] = {}
                for alloc in ("uniform", "global", "sensitivity"):
                    slim, rep = prune(model, x, target_macs=1 / factor, allocation=alloc,
                                      sensitivity=sens if alloc == "sensitivity" else None)
                    reached[alloc] = rep.macs_reduction
                    record((name, "structured", f"{factor}x MACs", alloc), slim,
                           rep.macs_reduction, dense, test,
                           lambda m, s=seed: finetune(m, s),
                           t_sens if alloc == "sensitivity" else None)
                # uniform ratios move in coarse steps on narrow layers (it may overshoot the
                # target): the knapsack again at the MACs uniform actually reached
                slim, rep = prune(model, x, target_macs=1 / reached["uniform"] + 1e-9,
                                  allocation="sensitivity", sensitivity=sens)
                record((name, "structured", f"{factor}x MACs", "sensitivity @ uniform's MACs"),
                       slim, rep.macs_reduction, dense, test, lambda m, s=seed: finetune(m, s),
                       t_sens)
                t0 = time.perf_counter()
                choice = select_allocation(model, val_loss, sens, example_inputs=x,
                                           target_macs=1 / factor)
                record((name, "structured", f"{factor}x MACs", "sensitivity + mix"),
                       choice.model, choice.report.macs_reduction, dense, test,
                       lambda m, s=seed: finetune(m, s),
                       t_sens + time.perf_counter() - t0)
            if name != "LeNet-300-100":
                continue
            t0 = time.perf_counter()
            wsens = layer_sensitivity(model, val, grid=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98),
                                      example_inputs=x)
            t_w = time.perf_counter() - t0
            for factor in (2, 3, 4):
                s = 1 - 1 / factor
                t0 = time.perf_counter()
                mixed = select_allocation(model, val_loss, wsens, target_macs=1 - s).model
                t_mix = t_w + time.perf_counter() - t0
                variants = {
                    "global": lambda m, s=s: prune_model(m, s, prune_first_last=True),
                    "uniform": lambda m, s=s: prune_model(m, s, scope="layer",
                                                          prune_first_last=True),
                    "sensitivity": lambda m, s=s, w=wsens: prune_model(
                        m, scope=allocate(w, target_macs=1 - s).scope, prune_first_last=True),
                    "sensitivity + mix": lambda m, c=mixed: m.load_state_dict(c.state_dict()),
                }
                for alloc, fn in variants.items():
                    cand = copy.deepcopy(model)
                    fn(cand)
                    ws = [p for n, p in cand.named_parameters() if "weight" in n]
                    reached = sum(p.numel() for p in ws) / sum(int((p != 0).sum()) for p in ws)
                    record((name, "unstructured", f"{factor}x MACs", alloc), cand, reached,
                           dense, test,
                           lambda m, s=seed: _keep_zeros_finetune(m, lambda mm: finetune(mm, s)),
                           {"sensitivity": t_w, "sensitivity + mix": t_mix}.get(alloc))

    def stats(v: list[float]) -> tuple[float, float]:
        return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    rows: list[dict[str, Any]] = []
    for key, runs in cells.items():
        row: dict[str, Any] = dict(zip(("model", "kind", "target", "allocation"), key,
                                       strict=True))
        row["seeds"] = len(runs)
        for k in ("reached_x", "acc_dense"):
            row[k] = float(np.mean([r[k] for r in runs]))
        t = [r["sensitivity_s"] for r in runs if r["sensitivity_s"] is not None]
        row["sensitivity_s"] = float(np.median(t)) if t else None
        uni = cells[(*key[:3], "uniform")]
        for k in ("acc_pruned", "acc_finetuned"):
            m, sd = stats([r[k] for r in runs])
            row[k], row[f"{k}_sd"], row[f"{k}_str"] = m, sd, f"{m:.4f} ± {sd:.4f}"
            row[f"{k}_seeds"] = [r[k] for r in runs]
            if key[3] != "uniform":
                diff = [100 * (a[k] - b[k]) for a, b in zip(runs, uni, strict=True)]
                m, sd = stats(diff)
                wins = sum(x > 0 for x in diff)
                row[f"delta_{k}"], row[f"delta_{k}_sd"] = m, sd
                row[f"delta_{k}_str"] = f"{m:+.2f} ± {sd:.2f} ({wins}/{len(diff)} wins)"
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- 2 proxies


def proxies_part(quick: bool) -> list[dict[str, Any]]:
    from prunekit.nn.models import MnistCNN
    from prunekit.nn.sensitivity import layer_sensitivity

    d, tr, va, te = _mnist(quick)
    model = _train(MnistCNN(), tr, 1 if quick else 3)
    grid = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
    t0 = time.perf_counter()
    full = layer_sensitivity(model, Accuracy(va), grid=grid)
    t_full = time.perf_counter() - t0
    ref = np.concatenate([full.drop(n) for n in full.names])
    rows = [{"method": "full (val accuracy, 1000 samples)", "spearman": 1.0, "seconds": t_full}]

    def rank(v: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float)

    for label, kw in (("loss on 2 batches", {"data": va, "max_batches": 2}),
                      ("Taylor+Fisher, 4 batches", {"data": va, "max_batches": 4,
                                                   "method": "taylor"})):
        t0 = time.perf_counter()
        res = layer_sensitivity(model, grid=grid, **kw)
        sec = time.perf_counter() - t0
        v = np.concatenate([res.drop(n) for n in res.names])
        rho = float(np.corrcoef(rank(ref), rank(v))[0, 1])
        rows.append({"method": label, "spearman": rho, "seconds": sec})
    return rows


# ----------------------------------------------------------------------------- 3 budget


def _tree_rows(quick: bool) -> list[dict[str, Any]]:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from prunekit.budget import search_tree
    from prunekit.trees import prune_tree

    rows = []
    defaults = [("reduced_error", {}), ("cost_complexity", {"select": "validation"}),
                ("pessimistic", {}), ("c45", {}), ("min_error", {}), ("mdl", {})]
    sets = ("iris", "wine", "breast_cancer", "digits", "diabetes")
    for name in sets[:2] if quick else sets:
        d = load_dataset(name)
        reg = d.task != "classification"
        est = (DecisionTreeRegressor if reg else DecisionTreeClassifier)(random_state=0)
        tree = est.fit(d.X_train, d.y_train)
        base = tree.score(d.X_test, d.y_test)
        t0 = time.perf_counter()
        res = search_tree(tree, max_drop=0.01, X_val=d.X_val, y_val=d.y_val, X_eval=d.X_test,
                          y_eval=d.y_test)
        t_s = time.perf_counter() - t0
        best_fixed = None
        for method, params in defaults:
            try:
                p = prune_tree(tree, method, X_val=d.X_val, y_val=d.y_val, **params)
            except PrunekitError:
                continue  # classification-only method on a regressor
            if p.score(d.X_test, d.y_test) >= base - 0.01 - 1e-12:
                n = p.tree_.node_count
                if best_fixed is None or n < best_fixed[1]:
                    best_fixed = (method, n)
        rows.append({
            "domain": "tree", "data": name, "dense_metric": base,
            "dense_size": tree.tree_.node_count,
            "search_setting": _setting(res), "search_metric": res.chosen.metric if res.reachable
            else None, "search_x": res.compression if res.reachable else None,
            "fixed_setting": best_fixed[0] if best_fixed else "none within budget",
            "fixed_x": tree.tree_.node_count / best_fixed[1] if best_fixed else None,
            "candidates": len(res.points), "search_s": t_s})
    return rows


def _setting(res: Any) -> str:
    if not res.reachable:
        return "not reachable"
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in res.chosen.setting.items())


def _ensemble_rows(quick: bool) -> list[dict[str, Any]]:
    from sklearn.ensemble import BaggingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    from prunekit.budget import search_ensemble
    from prunekit.ensembles import prune_ensemble

    rows = []
    n = 30 if quick else 100
    for data in ("breast_cancer",) if quick else ("breast_cancer", "wine", "digits"):
        d = load_dataset(data)
        for kind, est in (("bagging", BaggingClassifier(DecisionTreeClassifier(), n_estimators=n,
                                                        random_state=0)),
                          ("random forest", RandomForestClassifier(n, random_state=0))):
            model = est.fit(d.X_train, d.y_train)
            base = model.score(d.X_test, d.y_test)
            t0 = time.perf_counter()
            res = search_ensemble(model, max_drop=0.01, X_val=d.X_val, y_val=d.y_val,
                                  X_eval=d.X_test, y_eval=d.y_test)
            t_s = time.perf_counter() - t0
            best_fixed = None
            for frac in (0.1, 0.2, 0.3):
                for method in ("reduce_error", "margin_distance", "orientation"):
                    p = prune_ensemble(model, method, size=frac, X_val=d.X_val, y_val=d.y_val)
                    k = len(p.estimators_)
                    if p.score(d.X_test, d.y_test) >= base - 0.01 - 1e-12 and (
                            best_fixed is None or k < best_fixed[1]):
                        best_fixed = (f"{method} {frac:.0%}", k)
            rows.append({
                "domain": f"ensemble ({kind})", "data": data, "dense_metric": base,
                "dense_size": n, "search_setting": _setting(res),
                "search_metric": res.chosen.metric if res.reachable else None,
                "search_x": res.compression if res.reachable else None,
                "fixed_setting": best_fixed[0] if best_fixed else "none within budget",
                "fixed_x": n / best_fixed[1] if best_fixed else None,
                "candidates": len(res.points), "search_s": t_s})
    return rows


def _nn_rows(quick: bool) -> list[dict[str, Any]]:
    from prunekit.budget import search_sparsity, search_structured
    from prunekit.nn.models import LeNet300100, MnistCNN
    from prunekit.nn.sparsity import prune_model
    from prunekit.nn.structured import prune

    d, tr, va, te = _mnist(quick)
    test = Accuracy(te)
    rows = []
    lenet = _train(LeNet300100(), tr, 1 if quick else 3)
    base = test(lenet)
    t0 = time.perf_counter()
    res = search_sparsity(lenet, test, max_drop=0.01, prune_first_last=True)
    t_s = time.perf_counter() - t0
    best = None
    for s in (0.5, 0.8, 0.9, 0.95):
        c = copy.deepcopy(lenet)
        prune_model(c, s, prune_first_last=True)
        if test(c) >= base - 0.01 - 1e-12:
            best = s
    nz0 = sum(int((p != 0).sum()) for p in lenet.parameters())
    rows.append({"domain": "LeNet unstructured", "data": "mnist", "dense_metric": base,
                 "dense_size": nz0, "search_setting": _setting(res),
                 "search_metric": res.chosen.metric if res.reachable else None,
                 "search_x": res.compression if res.reachable else None,
                 "fixed_setting": f"sparsity {best}" if best else "none within budget",
                 "fixed_x": _nz_x(lenet, best) if best else None,
                 "candidates": len(res.points), "search_s": t_s})
    cnn = _train(MnistCNN(), tr, 1 if quick else 3)
    x = next(iter(te))[0][:1]
    base = test(cnn)
    macs0 = count_macs(cnn, x)
    t0 = time.perf_counter()
    res = search_structured(cnn, x, test, max_drop=0.01)
    t_s = time.perf_counter() - t0
    best = None
    for keep in (0.9, 0.75, 0.5, 0.33, 0.25):
        slim, rep = prune(cnn, x, target_macs=keep)
        if test(slim) >= base - 0.01 - 1e-12:
            best = (keep, rep.macs_reduction)
    rows.append({"domain": "MnistCNN structured", "data": "mnist", "dense_metric": base,
                 "dense_size": macs0, "search_setting": _setting(res),
                 "search_metric": res.chosen.metric if res.reachable else None,
                 "search_x": res.compression if res.reachable else None,
                 "fixed_setting": f"target_macs {best[0]}" if best else "none within budget",
                 "fixed_x": best[1] if best else None, "candidates": len(res.points),
                 "search_s": t_s})
    return rows


def _nz_x(model: torch.nn.Module, s: float) -> float:
    from prunekit.nn.sparsity import prune_model

    c = copy.deepcopy(model)
    prune_model(c, s, prune_first_last=True)
    return sum(int((p != 0).sum()) for p in model.parameters()) / sum(
        int((p != 0).sum()) for p in c.parameters())


def budget_part(quick: bool) -> list[dict[str, Any]]:
    return _tree_rows(quick) + _ensemble_rows(quick) + _nn_rows(quick)


# ----------------------------------------------------------------------------- 4 recovery


def _agree(dense: torch.nn.Module, pruned: torch.nn.Module, xs: torch.Tensor) -> float:
    with torch.no_grad():
        return float((dense(xs).argmax(1) == pruned(xs).argmax(1)).float().mean())


def recovery_part(quick: bool) -> list[dict[str, Any]]:
    from prunekit.nn.models import DigitsCNN, MnistCNN
    from prunekit.nn.sensitivity import group_sensitivity
    from prunekit.nn.structured import prune
    from prunekit.nn.structured.recovery import prune_calibrated

    rows: list[dict[str, Any]] = []
    for data, ctor in (("mnist", MnistCNN), ("digits", DigitsCNN)):
        d = load_dataset(data)
        tr, va, te = d.loaders(64, images=True)
        epochs = (1 if quick else 3) if data == "mnist" else (3 if quick else 8)
        model = _train(ctor(), tr, epochs)
        xs = torch.cat([b[0] for b in te])
        test = Accuracy(te)
        x = xs[:1]
        calib = [b[0] for b in tr][:4]  # 256 unlabelled training images
        dense = test(model)
        sens = group_sensitivity(model, x, BatchLoss(va, max_batches=4),
                                 grid=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
        for factor in (1.3, 2.0):
            keep = 1 / factor
            variants = [
                ("magnitude (l2)", None),
                ("+ BN re-estimation", dict(criterion="l2", reconstruct_weights=False)),
                ("+ reconstruction", dict(criterion="l2")),
                ("+ activation scores", dict(criterion="activation")),
                ("+ sensitivity allocation", dict(criterion="activation",
                                                  allocation="sensitivity", sensitivity=sens)),
            ]
            for label, kw in variants:
                t0 = time.perf_counter()
                if kw is None:
                    slim, rep = prune(model, x, target_macs=keep)
                else:
                    slim, rep = prune_calibrated(model, x, calib, target_macs=keep, **kw)
                sec = time.perf_counter() - t0
                rows.append({"model": ctor.__name__, "target": f"{factor}x MACs",
                             "variant": label, "reached_x": rep.macs_reduction,
                             "agreement": _agree(model, slim, xs), "acc_dense": dense,
                             "acc": test(slim), "seconds": sec})
    rows += _minilm_recovery(quick)
    return rows


def _minilm_recovery(quick: bool) -> list[dict[str, Any]]:
    """MiniLM heads + FFN neurons at exact 1.3x / 2x MACs: magnitude and activation scores at a
    uniform per-layer ratio, then Fisher mask importance, global allocation and reconstruction,
    each added in turn; calibration on everyday paragraphs (22 topics disjoint from the held-out
    sentences) or, for comparison, stdlib docstrings; out-of-domain cosine on docstrings (64
    other draws from the same docstring pool: in domain for the stdlib-calibrated rows)."""
    try:
        from prunekit.nn.oneshot.corpus import (
            builtin_sentences,
            everyday_paragraphs,
            stdlib_paragraphs,
        )
        from prunekit.nn.oneshot.minilm import embed_sentences, embedding_agreement, load_minilm
        from prunekit.nn.structured.recovery import prune_transformer_calibrated
        from prunekit.nn.structured.transformers import prune_transformer

        model, tok = load_minilm()
    except (PrunekitError, ImportError) as exc:
        print(f"  MiniLM recovery skipped: {exc}", file=sys.stderr)
        return []
    sents = builtin_sentences()  # held out: never used for calibration
    ood = stdlib_paragraphs(24 if quick else 64, seed=7)  # out of domain (not calibration)
    dense, dense_ood = embed_sentences(model, tok, sents), embed_sentences(model, tok, ood)
    n = 32 if quick else 256

    def batches(texts: list[str]) -> list[dict[str, torch.Tensor]]:
        return [dict(tok(texts[i:i + 16], padding=True, truncation=True, max_length=128,
                         return_tensors="pt")) for i in range(0, len(texts), 16)]

    calib = {"everyday": batches(everyday_paragraphs(n, seed=0)),
             "stdlib": batches(stdlib_paragraphs(n, seed=0))}
    x1 = {k: v[:1] for k, v in calib["everyday"][0].items()}  # MACs counted on one paragraph
    probes = 1 if quick else 2
    rows = []
    for factor in (1.3, 2.0):
        ratio = _uniform_ratio(prune_transformer, model, x1, 1 / factor)
        uni = dict(head_ratio=ratio, ffn_ratio=ratio, reconstruction="none")
        glob = dict(target_macs=1 / factor, probes=probes)
        variants = [
            ("magnitude (l2), uniform", "-", None),
            ("activation, uniform", "everyday", dict(criterion="activation", **uni)),
            ("+ Fisher importance, uniform", "everyday", dict(criterion="fisher", **uni,
                                                             probes=probes)),
            ("activation, global allocation", "everyday", dict(criterion="activation", **glob,
                                                              reconstruction="none")),
            ("+ Fisher importance, global allocation", "everyday",
             dict(criterion="fisher", **glob, reconstruction="none")),
            ("+ bias compensation (FLAP)", "everyday", dict(**glob, reconstruction="bias")),
            ("+ mask tuning (Kwon: scales + bias)", "everyday",
             dict(**glob, reconstruction="scales")),
            ("+ LS refit of output projections (default)", "everyday", dict(**glob)),
            ("activation, global + LS refit", "everyday", dict(criterion="activation", **glob)),
            ("Fisher, global, no reconstruction", "stdlib", dict(**glob, reconstruction="none")),
            ("Fisher, global + LS refit (default)", "stdlib", dict(**glob)),
        ]
        for label, source, kw in variants:
            t0 = time.perf_counter()
            if kw is None:
                slim, rep = prune_transformer(model, head_ratio=ratio, ffn_ratio=ratio,
                                              example_inputs=x1)
            else:
                slim, rep = prune_transformer_calibrated(model, calib[source],
                                                         example_inputs=x1, **kw)
            sec = time.perf_counter() - t0
            agree = embedding_agreement(dense, embed_sentences(slim, tok, sents))
            out = embedding_agreement(dense_ood, embed_sentences(slim, tok, ood))
            rows.append({"model": "MiniLM heads+FFN", "target": f"{factor}x MACs",
                         "variant": label, "calib": source,
                         "reached_x": rep.macs_before / max(rep.macs_after, 1),
                         "agreement": agree["nn_agreement"], "cosine": agree["mean_cosine"],
                         "ood_cosine": out["mean_cosine"], "acc": None, "acc_dense": None,
                         "seconds": sec})
            print(f"  {factor}x {label} [{source}]: cos {agree['mean_cosine']:.4f} "
                  f"ood {out['mean_cosine']:.4f} ({sec:.0f} s)", file=sys.stderr)
    return rows


def _uniform_ratio(prune_transformer: Any, model: torch.nn.Module, x: Any,
                   keep: float) -> float:
    """The smallest uniform head/FFN ratio whose MACs are at most ``keep`` of the dense."""
    lo, hi = 0.0, 0.95
    for _ in range(12):
        mid = (lo + hi) / 2
        _, rep = prune_transformer(model, head_ratio=mid, ffn_ratio=mid, example_inputs=x)
        if rep.macs_after <= keep * rep.macs_before:
            hi = mid
        else:
            lo = mid
    return hi


# ----------------------------------------------------------------------------- 5 oneshot


def oneshot_part(quick: bool) -> list[dict[str, Any]]:
    """MiniLM at 50 % SparseGPT, then masked distillation; held-out and out-of-domain cosine."""
    try:
        from prunekit.nn.oneshot import oneshot
        from prunekit.nn.oneshot.corpus import (
            builtin_sentences,
            everyday_sentences,
            stdlib_paragraphs,
        )
        from prunekit.nn.oneshot.minilm import embed_sentences, load_minilm

        model, tok = load_minilm()
    except (PrunekitError, ImportError) as exc:
        print(f"  one-shot part skipped: {exc}", file=sys.stderr)
        return []
    stdlib_calib = stdlib_paragraphs(16 if quick else 128, seed=0)
    everyday = everyday_sentences()  # in-domain unlabelled text: calibration and distillation
    # held out: builtin_sentences (other topics than everyday) and docstring paragraphs that no
    # calibration or training text contains (out-of-domain check)
    ood = [p for p in stdlib_paragraphs(400, seed=7) if p not in set(stdlib_calib)][:40]
    sents = builtin_sentences()
    ref = (embed_sentences(model, tok, sents), embed_sentences(model, tok, ood))

    def row(variant: str, m: torch.nn.Module, sec: float, extra_mb: float) -> dict[str, Any]:
        from prunekit.nn.oneshot.minilm import embedding_agreement

        held = embedding_agreement(ref[0], embed_sentences(m, tok, sents))
        out = embedding_agreement(ref[1], embed_sentences(m, tok, ood))
        return {"variant": variant, "mean_cosine": held["mean_cosine"],
                "nn_agreement": held["nn_agreement"], "ood_cosine": out["mean_cosine"],
                "sparsity": _sparsity(m), "seconds": sec, "extra_mb": extra_mb,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    rows, pruned = [], {}
    for label, calib in (("stdlib", stdlib_calib), ("everyday", everyday)):
        work = copy.deepcopy(model)
        sec, mb = _measured(lambda w=work, c=calib: oneshot(w, c, "sparsegpt", 0.5, tokenizer=tok,
                                                             max_length=128, batch_size=8))
        rows.append(row(f"SparseGPT 50 % ({label} calibration, {len(calib)} texts)", work, sec,
                        mb))
        pruned[label] = work
    rng = np.random.default_rng(0)
    texts = [everyday[i] for i in rng.permutation(len(everyday))]
    train = [dict(tok(texts[i:i + 16], padding=True, truncation=True, max_length=128,
                      return_tensors="pt")) for i in range(0, len(texts), 16)]
    for label, start, kw in _recovery_variants(quick):
        kw = {**kw, "tokenizer": tok} if kw.get("tokenizer") else kw
        work = copy.deepcopy(pruned[start])
        sec, mb = _measured(lambda w=work, k=kw: _recover(w, model, train, k))
        rows.append(row(label, work, sec, mb))
    return rows


def _recovery_variants(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, start, masked_distill options); ``engine="previous"`` is the recipe before
    issue 14 (distill_hidden_states: pooled cosine + raw hidden-state MSE of layers 1-6);
    ``tokenizer=True`` stands for MiniLM's tokenizer (whole-word pool of the augmentation)."""
    from prunekit.nn.oneshot.recovery import DEFAULT_AUGMENT, DEFAULT_LR, DEFAULT_STEPS

    steps = 4 if quick else DEFAULT_STEPS
    d = f"{steps} steps x 16 everyday sentences"
    aug = f"{DEFAULT_AUGMENT:.0%} of tokens replaced by random words"
    return [
        (f"everyday + previous recipe (lr 5e-4, raw hidden MSE; {d})", "everyday",
         dict(engine="previous", steps=steps, lr=5e-4)),
        (f"everyday + cosine only, no layer term (lr {DEFAULT_LR:g}; {d})", "everyday",
         dict(steps=steps, layers=None, augment=0.0)),
        (f"everyday + cosine + normalised layers, no augmentation ({d})", "everyday",
         dict(steps=steps, augment=0.0)),
        (f"everyday + masked_distill defaults ({aug} each step; {d})", "everyday",
         dict(steps=steps, tokenizer=True)),
        (f"stdlib + masked_distill defaults ({aug}; {d})", "stdlib",
         dict(steps=steps, tokenizer=True)),
    ]


def _recover(student: torch.nn.Module, teacher: torch.nn.Module, train: list[Any],
             kw: dict[str, Any]) -> None:
    from prunekit.nn.oneshot.recovery import masked_distill

    kw = dict(kw)
    if kw.pop("engine", None) == "previous":
        from prunekit.deploy.recover import masked_distill_hidden_states
        from prunekit.nn.oneshot.recovery import sparse_masks

        masked_distill_hidden_states(student, teacher, train, masks=sparse_masks(student),
                                     loss="cosine", dropout=False,
                                     layer_map={i: i for i in range(1, 7)}, **kw)
    else:
        masked_distill(student, teacher, train, **kw)


def _measured(fn: Any) -> tuple[float, float]:
    """(seconds, RSS growth in MB sampled during the call) of ``fn()``."""
    from prunekit.nn.oneshot._memory import PeakMemory

    t0 = time.perf_counter()
    with PeakMemory(torch.device("cpu")) as mem:
        fn()
    return time.perf_counter() - t0, mem.peak_bytes / 2**20


def _sparsity(model: torch.nn.Module) -> float:
    ws = [m.weight for n, m in model.named_modules()
          if isinstance(m, torch.nn.Linear) and "encoder.layer" in n]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


# ----------------------------------------------------------------------------- 6 sweep


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, its reaped children and its live
    descendants (the loky workers), from /proc; this process alone where /proc is missing."""
    import os

    total = sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF,
                resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
    proc = Path("/proc")
    if not proc.is_dir():
        return total
    stats, parent = {}, {}
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)], stats[int(d.name)] = int(f[1]), f
    mine, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        kids = [c for c, pp in parent.items() if pp == pid and c not in mine]
        mine.update(kids)
        todo += kids
    tick = os.sysconf("SC_CLK_TCK")
    return total + sum(sum(int(x) for x in stats[p][11:15]) / tick for p in mine)


def _settle(max_s: float = 20.0) -> None:
    """Wait until this process's workers are idle (start-up finished), so that CPU they spend
    late is not billed to the next measured run."""
    end = time.perf_counter() + max_s
    while time.perf_counter() < end:
        c0 = _cpu_s()
        time.sleep(0.25)
        if _cpu_s() - c0 < 0.02:
            return


def _load() -> str:
    import os

    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def sweep_part(quick: bool) -> list[dict[str, Any]]:
    """1 vs 2 workers on the same searches, interleaved (order alternating per repeat); medians
    of wall time and of CPU time (this process + its workers, including their clean-up after
    the search). The first 2-worker search also starts the
    worker processes: reported on its own row, not in the medians. Load averages (1/5/15 min) are
    read before and after: the cores may be shared with other work."""
    from prunekit.budget import format_setting, search_sparsity
    from prunekit.nn.models import LeNet300100

    d, tr, va, te = _mnist(quick)
    lenet = _train(LeNet300100(), tr, 1)
    test = Accuracy(te)
    steps = 5 if quick else 60  # fine-tune steps per candidate (at most one epoch: 47)
    grid = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97)
    searches = {  # label -> (search options, fine-tune epochs, repeats)
        "6-point grid": (dict(grid=grid, refine=0, patience=6), 1, 3 if quick else 5),
        "patience 2 + refine 3": (dict(grid=grid, refine=3, patience=2), 1, 3 if quick else 5),
    }
    if not quick:  # candidates 5x heavier: start-up and hand-over costs matter less
        searches["6-point grid, 5 fine-tune epochs"] = (dict(grid=grid, refine=0, patience=6),
                                                        5, 3)

    rows: list[dict[str, Any]] = []
    for label, (kw, epochs, repeats) in searches.items():

        def finetune(m: torch.nn.Module, epochs: int = epochs) -> None:
            for _ in range(epochs):  # a fresh seeded loader: the same batches in any process
                _finetune(m, d.loaders(64, images=True, seed=0)[0], steps)

        _settle()
        load0 = _load()
        runs: dict[Any, list[tuple[float, float]]] = {1: [], 2: [], "cold": []}
        found: dict[Any, Any] = {}
        for r in range(repeats + 1):
            for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
                t0, c0 = time.perf_counter(), _cpu_s()
                res = search_sparsity(lenet, test, max_drop=0.01, finetune=finetune,
                                      n_jobs=workers, prune_first_last=True, **kw)
                wall = time.perf_counter() - t0
                _settle()  # bill the workers' clean-up after the search to this run too
                cpu = _cpu_s() - c0
                key = "cold" if workers == 2 and r == 0 and not rows else workers
                runs[key].append((wall, cpu))
                found[key] = ([(p.setting, p.metric) for p in res.points],
                              res.chosen.setting if res.reachable else None)
        base_wall = statistics.median(w for w, _ in runs[1])
        for key in (k for k in (1, 2, "cold") if runs[k]):
            walls, cpus = [w for w, _ in runs[key]], [c for _, c in runs[key]]
            rows.append({
                "search": label, "workers": "2 (first: starts workers)" if key == "cold"
                else str(key), "runs": len(walls),
                "wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
                "speedup": base_wall / statistics.median(walls),
                "candidates": len(found[key][0]), "chosen": format_setting(found[key][1] or {}),
                "same_as_serial": found[key] == found[1], "load": f"{load0} -> {_load()}",
            })
    return rows


# ----------------------------------------------------------------------------- main


def _fmt(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    out = []
    for r in rows:
        line = {}
        for title, key, fmt in cols:
            v = r.get(key)
            line[title] = "-" if v is None else (format(v, fmt) if fmt else str(v))
        out.append(line)
    return markdown_table(out, right=[t for t, _, f in cols if f])


PARTS = ("allocation", "proxies", "budget", "recovery", "oneshot", "sweep")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    out: dict[str, Any] = {"quick": args.quick, "torch": torch.__version__}
    t_all = time.perf_counter()
    for part in parts:
        t0 = time.perf_counter()
        rows = globals()[f"{part}_part"](args.quick)
        out[part] = rows
        print(f"\n### {part} ({time.perf_counter() - t0:.0f} s)\n")
        print(_fmt(rows, COLUMNS[part]))
        sys.stdout.flush()
    out["wall_s"] = time.perf_counter() - t_all
    print(f"\nwall time {out['wall_s']:.0f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS, out)
    return 0


COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "allocation": [("model", "model", ""), ("kind", "kind", ""), ("target", "target", ""),
                   ("allocation", "allocation", ""), ("seeds", "seeds", "d"),
                   ("reached", "reached_x", ".2f"), ("acc dense", "acc_dense", ".4f"),
                   ("acc pruned (mean ± sd)", "acc_pruned_str", ""),
                   ("acc fine-tuned (mean ± sd)", "acc_finetuned_str", ""),
                   ("Δ vs uniform pruned, pts", "delta_acc_pruned_str", ""),
                   ("Δ vs uniform fine-tuned, pts", "delta_acc_finetuned_str", ""),
                   ("sensitivity s", "sensitivity_s", ".1f")],
    "proxies": [("sensitivity method", "method", ""), ("Spearman vs full", "spearman", ".3f"),
                ("seconds", "seconds", ".2f")],
    "budget": [("domain", "domain", ""), ("data", "data", ""), ("dense", "dense_metric", ".4f"),
               ("search: chosen", "search_setting", ""), ("metric", "search_metric", ".4f"),
               ("search x", "search_x", ".2f"), ("best fixed", "fixed_setting", ""),
               ("fixed x", "fixed_x", ".2f"), ("candidates", "candidates", "d"),
               ("search s", "search_s", ".2f")],
    "recovery": [("model", "model", ""), ("target", "target", ""), ("variant", "variant", ""),
                 ("calibration", "calib", ""), ("reached", "reached_x", ".3f"),
                 ("top-1 / NN agreement", "agreement", ".4f"), ("acc", "acc", ".4f"),
                 ("emb. cosine", "cosine", ".4f"), ("OOD cosine", "ood_cosine", ".4f"),
                 ("seconds", "seconds", ".2f")],
    "oneshot": [("variant", "variant", ""), ("sparsity", "sparsity", ".3f"),
                ("held-out cosine", "mean_cosine", ".4f"), ("NN agreement", "nn_agreement", ".3f"),
                ("out-of-domain cosine", "ood_cosine", ".4f"), ("seconds", "seconds", ".1f"),
                ("RSS growth MB", "extra_mb", ".0f"), ("peak RSS MB", "peak_rss_mb", ".0f")],
    "sweep": [("search", "search", ""), ("workers", "workers", ""), ("runs", "runs", "d"),
              ("wall s (median)", "wall_s", ".2f"), ("CPU s (median)", "cpu_s", ".2f"),
              ("speed-up (wall)", "speedup", ".2f"), ("candidates", "candidates", "d"),
              ("chosen", "chosen", ""), ("same as 1 worker", "same_as_serial", ""),
              ("load 1/5/15 min before -> after", "load", "")],
}


if __name__ == "__main__":
    raise SystemExit(main())
