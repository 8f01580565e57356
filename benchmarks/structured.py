"""Structured pruning: prunekit vs Torch-Pruning (DepGraph) in the same run.

Part 1 (speed, random init): resnet18, mobilenet_v2 and a small torchvision ViT pruned at the same
uniform channel ratio by both tools (L2 group magnitude); MACs, parameters, and batch-1 / batch-32
CPU latency medians, measured interleaved (original, prunekit, Torch-Pruning in one loop) so
machine noise hits all three alike. A second prunekit row bisects to at most Torch-Pruning's MACs
with hardware-friendly widths (``round_to=8``).

Part 2 (accuracy): DigitsCNN on digits and MnistCNN on MNIST-5k, trained, pruned 50% by both
tools, then fine-tuned with the same budget (same epochs, optimiser, data order); prunekit is also
shown with knowledge distillation from the unpruned model.

Part 3 (Hugging Face, no tracing): the bundled pretrained all-MiniLM-L6-v2 with half of every
layer's attention heads and FFN neurons removed by ``prune_transformer`` (no fine-tuning):
parameters, MACs and batch-32 x 128-token latency (interleaved with the dense model), and the
agreement of sentence embeddings with the dense model on the built-in sentences, per criterion
(``random`` is the baseline; ``taylor`` calibrates on stdlib docstrings, not on those sentences).
A last row recovers the ``l2`` model by embedding distillation from the dense model
(``distill_hidden_states``, cosine loss on mean-pooled embeddings) trained on stdlib docstring
paragraphs only, so it is evaluated on text it never saw (the built-in sentences).

Usage: python benchmarks/structured.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit._compat import import_torchvision, optional_import
from prunekit._io import atomic_write_json
from prunekit.errors import PrunekitError
from prunekit.metrics import count_macs, markdown_table
from prunekit.nn.structured import count_params, prune

RESULTS = Path(__file__).resolve().parent / "results" / "structured.json"


def tp_prune(model: nn.Module, x: torch.Tensor, ratio: float, ignored: list[nn.Module],
             tp: Any) -> nn.Module:
    """Torch-Pruning's MetaPruner, uniform ratio, GroupMagnitudeImportance(p=2)."""
    model = copy.deepcopy(model)
    ignored = [dict(model.named_modules())[n] for n in ignored]
    num_heads = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=ignored,
                                  num_heads=num_heads)
    pruner.step()
    if hasattr(model, "hidden_dim") and hasattr(model, "conv_proj"):  # torchvision ViT
        model.hidden_dim = model.conv_proj.out_channels
    return model


def interleaved_latency(models: dict[str, nn.Module], x: torch.Tensor, repeats: int,
                        warmup: int = 2) -> dict[str, float]:
    """Median seconds per forward; every repeat times each model once, in rotating order."""
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for m in models.values():
            m.eval()
            for _ in range(warmup):
                m(x)
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for n in order:
                t0 = time.perf_counter()
                models[n](x)
                times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def speed_part(tp: Any, quick: bool, repeats: int) -> list[dict[str, Any]]:
    tv = import_torchvision()
    from torchvision.models.vision_transformer import VisionTransformer

    size = 32 if quick else 64
    vit_size = 32 if quick else 64
    cases = [
        ("resnet18", lambda: tv.models.resnet18(), size, ["fc"]),
        ("mobilenet_v2", lambda: tv.models.mobilenet_v2(), size, ["classifier.1"]),
        ("vit_tiny", lambda: VisionTransformer(image_size=vit_size, patch_size=8, num_layers=6,
                                                num_heads=3, hidden_dim=192, mlp_dim=768),
         vit_size, ["heads.head"]),
    ]
    if quick:
        cases = cases[:1] + [cases[2]]
    rows = []
    for name, factory, res, ignored in cases:
        torch.manual_seed(0)
        model = factory().eval()
        x1 = torch.randn(1, 3, res, res)
        t0 = time.perf_counter()
        pk, rep = prune(model, x1, ratio=0.5, criterion="l2")
        t_pk = time.perf_counter() - t0
        t0 = time.perf_counter()
        tpm = tp_prune(model, x1, 0.5, ignored, tp).eval()
        t_tp = time.perf_counter() - t0
        macs = {k: count_macs(m, x1) for k, m in (("orig", model), ("pk", pk), ("tp", tpm))}
        pk_eq, _ = prune(model, x1, target_macs=int(macs["tp"]), criterion="l2", round_to=8)
        macs["pk_eq"] = count_macs(pk_eq, x1)
        models = {"orig": model, "pk": pk, "pk_eq": pk_eq, "tp": tpm}
        lat1 = interleaved_latency(models, x1, repeats * 2)
        x32 = torch.randn(32, 3, res, res)
        lat32 = interleaved_latency(models, x32, repeats)
        for key, label in (("pk", "prunekit"), ("pk_eq", "prunekit <=TP MACs, round_to=8"),
                           ("tp", "Torch-Pruning")):
            mr = macs["orig"] / macs[key]
            rows.append({
                "model": f"{name} ({res}px)", "tool": label,
                "macs_M": macs[key] / 1e6, "macs_x": mr,
                "params_M": count_params(models[key]) / 1e6,
                "params_x": count_params(model) / count_params(models[key]),
                "lat1_ms": lat1[key] * 1e3, "lat1_x": lat1["orig"] / lat1[key],
                "lat32_ms": lat32[key] * 1e3, "lat32_x": lat32["orig"] / lat32[key],
                "lat32_over_macs": (lat32["orig"] / lat32[key]) / mr,
                "prune_s": t_pk if key == "pk" else (t_tp if key == "tp" else None),
                "orig_lat1_ms": lat1["orig"] * 1e3, "orig_lat32_ms": lat32["orig"] * 1e3,
            })
        print(f"  {name}: done", file=sys.stderr)
    return rows


def accuracy_part(tp: Any, quick: bool) -> list[dict[str, Any]]:
    from prunekit.data import load_dataset
    from prunekit.nn.distill import finetune
    from prunekit.nn.models import DigitsCNN, MnistCNN
    from prunekit.nn.training import evaluate_accuracy, train_classifier

    cases = [("digits", DigitsCNN, ["classifier.3"], (1, 1, 8, 8))]
    if not quick:
        cases.append(("mnist", MnistCNN, ["classifier.3"], (1, 1, 28, 28)))
    epochs, ft = (2, 1) if quick else (10, 3)
    rows = []
    for ds_name, cls, ignored, shape in cases:
        ds = load_dataset(ds_name, seed=0)
        torch.manual_seed(0)
        model = cls()
        train, _, test = ds.loaders(64, images=True, seed=0)
        train_classifier(model, train, epochs=epochs, lr=1e-3)
        model.eval()
        x = torch.randn(*shape)
        acc0 = evaluate_accuracy(model, test)
        pk, _ = prune(model, x, ratio=0.5, criterion="l2")
        tpm = tp_prune(model, x, 0.5, ignored, tp)
        results = {}
        for key, m, teacher in (("prunekit", pk, None), ("Torch-Pruning", tpm, None),
                                ("prunekit + KD", copy.deepcopy(pk), model)):
            acc_p = evaluate_accuracy(m, test)
            torch.manual_seed(1)
            train_ft, _, _ = ds.loaders(64, images=True, seed=1)
            finetune(m, train_ft, epochs=ft, lr=1e-3, teacher=teacher)
            results[key] = (acc_p, evaluate_accuracy(m.eval(), test), m)
        for key, (acc_p, acc_f, m) in results.items():
            rows.append({"data": ds_name, "model": cls.__name__, "tool": key,
                         "macs_x": count_macs(model, x) / count_macs(m, x),
                         "params_x": count_params(model) / count_params(m),
                         "acc_dense": acc0, "acc_pruned": acc_p, "acc_finetuned": acc_f,
                         "finetune_epochs": ft})
        print(f"  {ds_name}: done", file=sys.stderr)
    return rows


def transformer_part(quick: bool) -> list[dict[str, Any]]:
    """Part 3: prune_transformer on the pretrained MiniLM (skipped without the extra)."""
    try:
        from prunekit.metrics import measure_latency_pair
        from prunekit.nn.distill import distill_hidden_states
        from prunekit.nn.oneshot.corpus import builtin_sentences, stdlib_paragraphs, stdlib_text
        from prunekit.nn.oneshot.minilm import embed_sentences, embedding_agreement, load_minilm
        from prunekit.nn.structured.transformers import prune_transformer

        model, tok = load_minilm()
    except PrunekitError as exc:
        print(f"  MiniLM part skipped: {exc}", file=sys.stderr)
        return []
    sents = builtin_sentences()
    dense = embed_sentences(model, tok, sents)
    calib = [s.strip() for s in stdlib_text().split(". ") if len(s.split()) > 5][:32]
    data = [dict(tok(calib[i:i + 16], padding=True, truncation=True, max_length=64,
                     return_tensors="pt")) for i in range(0, len(calib), 16)]
    batch = 8 if quick else 32
    enc = tok((sents * 2)[:batch], padding="max_length", truncation=True, max_length=128,
              return_tensors="pt")
    x = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    x1 = {k: v[:1] for k, v in x.items()}
    rows: list[dict[str, Any]] = []
    lat: tuple[float, float] | None = None
    for crit in ("l2", "l1", "taylor", "random"):
        t0 = time.perf_counter()
        slim, rep = prune_transformer(model, head_ratio=0.5, ffn_ratio=0.5, criterion=crit,
                                      data=data if crit == "taylor" else None,
                                      example_inputs=x1)
        t_prune = time.perf_counter() - t0
        agree = embedding_agreement(dense, embed_sentences(slim, tok, sents))
        if lat is None:  # every criterion gives the same shapes: time once
            la, lb = measure_latency_pair(model, slim, x, warmup=1, repeats=2 if quick else 5)
            lat = (la.median_s, lb.median_s)
        rows.append({
            "model": "all-MiniLM-L6-v2", "criterion": crit, "head_ratio": 0.5, "ffn_ratio": 0.5,
            "heads": f"{rep.heads_before}->{rep.heads_after}",
            "ffn": f"{rep.neurons_before}->{rep.neurons_after}",
            "params_M": rep.params_after / 1e6, "params_x": rep.params_before / rep.params_after,
            "macs_M": (rep.macs_after or 0) / 1e6,
            "macs_x": (rep.macs_before or 0) / max(rep.macs_after or 1, 1),
            "lat_batch": batch, "dense_lat_ms": lat[0] * 1e3, "lat_ms": lat[1] * 1e3,
            "lat_x": lat[0] / lat[1], "prune_s": t_prune, **agree,
        })
        if crit == "l2":
            l2_slim = slim
    # recovery: embedding distillation of the l2 model from the dense one, on docstring paragraphs
    steps, bs, max_len = (4, 8, 32) if quick else (80, 16, 64)
    paras = stdlib_paragraphs(steps * bs, seed=0)
    train = [dict(tok(paras[i:i + bs], padding=True, truncation=True, max_length=max_len,
                      return_tensors="pt")) for i in range(0, len(paras), bs)]
    t0 = time.perf_counter()
    losses = distill_hidden_states(l2_slim, model, train, steps=steps, lr=5e-4, loss="cosine",
                                   dropout=False)
    t_distil = time.perf_counter() - t0
    agree = embedding_agreement(dense, embed_sentences(l2_slim, tok, sents))
    rows.append({**rows[0], "criterion": "l2 + distillation", **agree, "distil_s": t_distil,
                 "distil_steps": steps, "distil_batch": bs, "distil_max_length": max_len,
                 "distil_loss_first": losses[0], "distil_loss_last": losses[-1],
                 "distil_texts": len(paras)})
    print("  MiniLM: done", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 by default: on a busy shared machine two OpenMP threads "
                         "stall each other and timings become noise; use 2+ on a quiet machine)")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tp = optional_import("torch_pruning", "bench")
    repeats = args.repeats or (3 if args.quick else 15)
    t0 = time.perf_counter()
    speed = speed_part(tp, args.quick, repeats)
    acc = accuracy_part(tp, args.quick)
    hf = transformer_part(args.quick)
    wall = time.perf_counter() - t0

    lines = [
        f"Structured pruning, ratio 0.5 (L2 group magnitude), torch {torch.__version__}, "
        f"Torch-Pruning {tp.__version__}, {args.threads} threads, median of {repeats} (batch 32) "
        f"/ {2 * repeats} (batch 1) interleaved runs",
        "",
    ]
    speed_cols = [("MACs (M)", "macs_M", ".1f"), ("MACs x", "macs_x", ".2f"),
                  ("params x", "params_x", ".2f"), ("b1 ms", "lat1_ms", ".2f"),
                  ("b1 x", "lat1_x", ".2f"), ("b32 ms", "lat32_ms", ".1f"),
                  ("b32 x", "lat32_x", ".2f"), ("b32 x / MACs x", "lat32_over_macs", ".2f")]
    lines.append(markdown_table(
        [{"model": r["model"], "tool": r["tool"],
          **{title: format(r[key], fmt) for title, key, fmt in speed_cols}} for r in speed],
        right=[title for title, _, _ in speed_cols],
    ))
    lines += ["", "Unpruned latency (ms): " + ", ".join(
        sorted({f"{r['model']}: b1 {r['orig_lat1_ms']:.2f}, b32 {r['orig_lat32_ms']:.1f}"
                for r in speed}))]
    acc_cols = [("MACs x", "macs_x", ".2f"), ("params x", "params_x", ".2f"),
                ("acc dense", "acc_dense", ".4f"), ("acc pruned", "acc_pruned", ".4f"),
                ("acc fine-tuned", "acc_finetuned", ".4f")]
    lines += ["", markdown_table(
        [{"data": r["data"], "model": r["model"], "tool": r["tool"],
          **{title: format(r[key], fmt) for title, key, fmt in acc_cols}} for r in acc],
        right=[title for title, _, _ in acc_cols],
    )]
    lines.append(f"\nFine-tuning: {acc[0]['finetune_epochs']} epochs, Adam lr 1e-3, same data "
                 f"order for every tool.")
    if hf:
        hf_cols = [("params (M)", "params_M", ".2f"), ("params x", "params_x", ".2f"),
                   ("MACs x", "macs_x", ".2f"), ("latency ms", "lat_ms", ".0f"),
                   ("latency x", "lat_x", ".2f"), ("emb. cosine", "mean_cosine", ".3f"),
                   ("NN agree", "nn_agreement", ".2f")]
        lines += ["", f"Hugging Face MiniLM (pretrained), prune_transformer head_ratio=0.5 "
                  f"ffn_ratio=0.5, no fine-tuning; latency: batch {hf[0]['lat_batch']} x 128 "
                  f"tokens, dense {hf[0]['dense_lat_ms']:.0f} ms; MACs per 128-token sequence",
                  "", markdown_table(
                      [{"criterion": r["criterion"], "heads": r["heads"], "FFN": r["ffn"],
                        **{t: format(r[k], f) for t, k, f in hf_cols},
                        "distil s": format(r["distil_s"], ".0f") if "distil_s" in r else "-"}
                       for r in hf],
                      right=[t for t, _, _ in hf_cols] + ["distil s"])]
        d = hf[-1]
        lines.append(
            f"\nl2 + distillation: distill_hidden_states from the dense model, "
            f"{d['distil_steps']} AdamW steps (lr 5e-4, warm-up 10 %, linear decay, cosine loss "
            f"on mean-pooled embeddings, no dropout), batch {d['distil_batch']} x "
            f"<= {d['distil_max_length']} tokens of {d['distil_texts']} stdlib docstring "
            f"paragraphs (train loss {d['distil_loss_first']:.3f} -> "
            f"{d['distil_loss_last']:.3f}); evaluated on the built-in sentences, which it never "
            f"saw; {d['distil_s']:.0f} s on {torch.get_num_threads()} thread(s)."
        )
    lines.append(f"\nWall time {wall:.0f} s.")
    print("\n".join(lines))
    out = RESULTS.with_name("structured_quick.json") if args.quick else RESULTS
    atomic_write_json(out, {
        "quick": args.quick, "threads": args.threads, "repeats": repeats,
        "torch": torch.__version__, "torch_pruning": tp.__version__,
        "python": platform.python_version(), "speed": speed, "accuracy": acc,
        "transformer": hf,
        "wall_s": wall,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
