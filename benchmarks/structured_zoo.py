"""Structured pruning over a zoo of torchvision and timm models: prunekit vs Torch-Pruning.

Every model (random init, eval mode, 64 px unless noted) is pruned at ratio 0.5 by
``prunekit.nn.structured.prune`` (l2 group magnitude, uniform) and by Torch-Pruning's MetaPruner
(GroupMagnitudeImportance(p=2), same ratio, classifier in ``ignored_layers`` for both). For
attention models Torch-Pruning runs twice, with and without ``num_heads`` (head-aware) and its
better result is kept. Columns: ok or the exception head, MACs and parameter reduction, batch-8
speed-up (interleaved medians, original / prunekit / TP in one loop), prunekit's plan replay on a
fresh instance + ``load_state_dict``, the zero-unit test (zeroing the units a plan removes leaves
the output unchanged after pruning; plans made with LayerNorm/GroupNorm frozen, whose statistics
would count the zeros), the smallest per-layer kept fraction, and prune seconds.

Each model runs in its own subprocess with a timeout, so one hang cannot stall the run.

``--attention head_dim`` prunes attention along head_dim (all heads kept) instead of whole heads.

Usage: python benchmarks/structured_zoo.py [--quick] [--models a,b,c] [--timeout 150]
       [--attention heads|head_dim]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "structured_zoo.json"

# name -> (source, constructor name, kwargs, image size)
TV = [
    "resnet18", "resnet50", "resnext50_32x4d",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5",
    "shufflenet_v2_x0_5", "squeezenet1_0",
    "densenet121", "googlenet", "efficientnet_b0",
    "regnet_y_400mf", "convnext_tiny", "vgg11_bn", "alexnet",
    "vit_b_16", "swin_t", "swin_v2_t",
]
TV_SEG = ["fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
TIMM = [
    "resnet50d", "seresnext26d_32x4d", "convnext_atto", "convnextv2_atto",
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "deit3_small_patch16_224",
    "efficientnet_lite0", "efficientnet_b0", "tf_efficientnetv2_b0", "regnetz_b16",
    "regnety_002", "mobilevit_xxs", "mobilevitv2_050", "maxvit_nano_rw_256",
    "mobilenetv3_large_100", "mobilenetv4_conv_small", "ghostnet_100",
    "levit_128s", "swin_tiny_patch4_window7_224", "dla34",
    "rexnet_100", "lcnet_050", "mixnet_s", "repvgg_a0", "mobileone_s0",
    "poolformer_s12", "edgenext_xx_small", "resmlp_12_224", "mixer_s16_224", "pit_ti_224",
    "efficientformer_l1", "nf_resnet26", "coatnet_nano_rw_224", "hgnetv2_b0",
    "fastvit_t8", "repvit_m0_9",
]
QUICK = ["tv:resnet18", "tv:densenet121", "tv:vit_b_16", "timm:convnext_atto",
         "timm:efficientnet_lite0", "timm:deit_tiny_patch16_224"]
SIZE = 64
TOOL_LIMIT_S = 60  # per tool and model


def all_models() -> list[str]:
    return [f"tv:{n}" for n in TV] + [f"tvseg:{n}" for n in TV_SEG] + [f"timm:{n}" for n in TIMM]


# ----------------------------------------------------------------------------- one model


def build(spec: str) -> tuple[Any, Any, int]:
    """A fresh random-init model (seeded), an input batch of 1, and the number of classes."""
    import torch

    from prunekit._compat import import_torchvision

    tv = import_torchvision()
    src, name = spec.split(":", 1)
    torch.manual_seed(0)
    if src == "tv":
        kw: dict[str, Any] = {"num_classes": 100}
        if name.startswith("vit_"):
            kw["image_size"] = SIZE
        if name == "googlenet":
            kw.update(aux_logits=False, init_weights=True)
        model = getattr(tv.models, name)(**kw)
        n_cls = 100
    elif src == "tvseg":
        model = getattr(tv.models.segmentation, name)(num_classes=21, weights_backbone=None)
        n_cls = 21
    else:
        import timm

        kw = {"num_classes": 100}
        try:
            model = timm.create_model(name, pretrained=False, img_size=SIZE, **kw)
        except TypeError:
            model = timm.create_model(name, pretrained=False, **kw)
        n_cls = 100
    return model.eval(), torch.randn(1, 3, SIZE, SIZE), n_cls


def classifier_layers(model: Any, n_cls: int) -> list[Any]:
    """Layers producing the class dimension (Torch-Pruning users list them in ignored_layers)."""
    from torch import nn

    out = []
    for m in model.modules():
        if (isinstance(m, nn.Linear) and m.out_features == n_cls) or (
                isinstance(m, nn.Conv2d) and m.out_channels == n_cls):
            out.append(m)
    return out


def _attention_heads(model: Any) -> dict[Any, int]:
    from torch import nn

    heads = {}
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            heads[m] = m.num_heads
        elif hasattr(m, "qkv") and isinstance(m.qkv, nn.Linear) and hasattr(
                m, "num_heads"):
            heads[m.qkv] = m.num_heads
    return heads


def tp_prune(model: Any, x: Any, ignored: list[Any], heads: bool) -> Any:
    import torch_pruning as tp
    from torch import nn

    kw: dict[str, Any] = {}
    if heads:
        kw["num_heads"] = _attention_heads(model)
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=0.5, ignored_layers=ignored, **kw)
    pruner.step()
    if heads:
        for m in model.modules():
            if hasattr(m, "qkv") and isinstance(m.qkv, nn.Linear) and hasattr(
                    m, "num_heads") and m.qkv in pruner.num_heads:
                m.num_heads = pruner.num_heads[m.qkv]
                m.head_dim = m.qkv.out_features // (3 * m.num_heads)
                if hasattr(m, "attn_dim"):
                    m.attn_dim = m.qkv.out_features // 3
    if hasattr(model, "hidden_dim") and hasattr(model, "conv_proj"):  # torchvision ViT
        model.hidden_dim = model.conv_proj.out_channels
    return model


class _Deadline:
    """Raise TimeoutError in this (main) thread after ``seconds`` (one tool's time limit)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def fire(*_a: Any) -> None:
            raise TimeoutError(f"over {self.seconds}s")

        signal.signal(signal.SIGALRM, fire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc: Any) -> None:
        signal.alarm(0)


def _shapes(out: Any) -> Any:
    return [tuple(t.shape) for t in _flat(out)]


def _flat(out: Any) -> list[Any]:
    from prunekit.nn.structured.checks import _flat as flat

    return flat(out)


def _err(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}"[:90]


def latency(models: dict[str, Any], x: Any, repeats: int = 5) -> dict[str, float]:
    import torch

    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for m in models.values():
            m(x)
        for r in range(repeats):
            for n in names[r % len(names):] + names[: r % len(names)]:
                t0 = time.perf_counter()
                models[n](x)
                times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def run_one(spec: str) -> dict[str, Any]:
    import torch
    from torch import nn

    from prunekit.metrics import count_macs
    from prunekit.nn.structured import apply_plan, count_params, prune
    from prunekit.nn.structured.checks import removed_units_error
    from prunekit.nn.structured.graph import analyze

    torch.set_num_threads(1)
    model, x, n_cls = build(spec)
    ignored = classifier_layers(model, n_cls)
    res: dict[str, Any] = {"model": spec}
    macs0, params0 = count_macs(model, x), count_params(model)
    with torch.no_grad():
        ref_shape = _shapes(model(x))
    res["macs_G"] = macs0 / 1e9
    models = {"orig": model}
    # prunekit
    try:
        t0 = time.perf_counter()
        with _Deadline(TOOL_LIMIT_S):
            pk, rep = prune(model, x, ratio=0.5, ignored_layers=ignored)
        res["pk_s"] = time.perf_counter() - t0
        pk.eval()
        with torch.no_grad():
            if _shapes(pk(x)) != ref_shape:
                raise RuntimeError("output shape changed")
        res["pk_ok"] = "ok"
        res["pk_macs_x"] = macs0 / max(count_macs(pk, x), 1)
        res["pk_params_x"] = params0 / max(count_params(pk), 1)
        res["pk_min_kept"] = rep.min_kept_fraction
        models["pk"] = pk
        try:
            fresh, _, _ = build(spec)
            fresh = apply_plan(fresh, rep.plan)
            fresh.load_state_dict(pk.state_dict())
            with torch.no_grad():
                same = all(torch.allclose(a, b, atol=1e-5) for a, b in
                           zip(_flat(fresh.eval()(x)), _flat(pk(x)), strict=True))
            res["pk_replay"] = "ok" if same else "differs"
        except Exception as exc:  # noqa: BLE001
            res["pk_replay"] = _err(exc)
        try:
            # normalisations whose statistics run over the pruned dimension count zeros
            stats = [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm))
                     or any(k in type(m).__name__ for k in ("LayerNorm", "GroupNorm", "StdConv"))]
            # modules the analysis found taking a statistic over channels (GRN, F.normalize)
            stats += [model.get_submodule(s) for s in
                      analyze(model, x, ignored_layers=ignored).statistics if s]
            plan = rep.plan
            if stats:
                _, rep2 = prune(model, x, ratio=0.5, ignored_layers=ignored,
                                frozen_layers=stats)
                plan = rep2.plan
            e = removed_units_error(model, x, plan)
            res["pk_zero"] = f"{e:.0e}" if e > 1e-4 else "ok"
        except Exception as exc:  # noqa: BLE001
            res["pk_zero"] = _err(exc)
    except Exception as exc:  # noqa: BLE001
        res["pk_ok"] = _err(exc)
    # Torch-Pruning, with and without head handling when the model has attention
    variants = [False, True] if _attention_heads(model) else [False]
    best: dict[str, Any] | None = None
    errors = []
    for heads in variants:
        try:
            mcopy = copy.deepcopy(model)
            t0 = time.perf_counter()
            with _Deadline(TOOL_LIMIT_S):
                tpm = tp_prune(mcopy, x, classifier_layers(mcopy, n_cls), heads).eval()
            secs = time.perf_counter() - t0
            with torch.no_grad():
                if _shapes(tpm(x)) != ref_shape:
                    raise RuntimeError("output shape changed")
            cand = {"tp_ok": "ok", "tp_s": secs,
                    "tp_macs_x": macs0 / max(count_macs(tpm, x), 1),
                    "tp_params_x": params0 / max(count_params(tpm), 1),
                    "tp_heads": heads, "_model": tpm}
            if best is None or cand["tp_macs_x"] > best["tp_macs_x"]:
                best = cand
        except Exception as exc:  # noqa: BLE001
            errors.append(_err(exc))
    if best is None:
        res["tp_ok"] = errors[-1] if errors else "failed"
    else:
        models["tp"] = best.pop("_model")
        res.update(best)
    xb = torch.randn(8, 3, SIZE, SIZE)
    try:
        lat = latency(models, xb)
        for k in ("pk", "tp"):
            if k in lat:
                res[f"{k}_speedup"] = lat["orig"] / lat[k]
    except Exception as exc:  # noqa: BLE001
        res["latency_error"] = _err(exc)
    return res


# ----------------------------------------------------------------------------- driver


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def table(rows: list[dict[str, Any]]) -> str:
    from prunekit.metrics import markdown_table

    out = []
    for r in rows:
        out.append({
            "model": r["model"],
            "GMACs": _fmt(r.get("macs_G"), ".3f"),
            "pk": r.get("pk_ok", "-"),
            "pk MACs x": _fmt(r.get("pk_macs_x")),
            "pk params x": _fmt(r.get("pk_params_x")),
            "pk b8 x": _fmt(r.get("pk_speedup")),
            "replay": r.get("pk_replay", "-"),
            "zero-unit": r.get("pk_zero", "-"),
            "min kept": _fmt(r.get("pk_min_kept")),
            "pk s": _fmt(r.get("pk_s")),
            "TP": r.get("tp_ok", "-"),
            "TP MACs x": _fmt(r.get("tp_macs_x")),
            "TP params x": _fmt(r.get("tp_params_x")),
            "TP b8 x": _fmt(r.get("tp_speedup")),
            "TP s": _fmt(r.get("tp_s")),
        })
    return markdown_table(out)


def _pk_good(r: dict[str, Any]) -> bool:
    """Pruned, output shape kept, plan replays, zero-unit test passes."""
    return r.get("pk_ok") == "ok" and r.get("pk_replay") == "ok" and r.get("pk_zero") == "ok"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a handful of models")
    ap.add_argument("--models", default=None, help="comma-separated specs (tv:name, timm:name)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per model")
    ap.add_argument("--jobs", type=int, default=1,
                    help="models run at once (each single-threaded; latency is then noisier)")
    ap.add_argument("--update", action="store_true",
                    help="with --models: replace those rows in the saved results, print all")
    ap.add_argument("--attention", default="heads", choices=["heads", "head_dim"],
                    help="prunekit's attention units (graph.attention_units)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        from prunekit.nn.structured.graph import attention_units

        with attention_units(args.attention):
            res = run_one(args.one)
        print("RESULT " + json.dumps(res))
        return 0
    if args.models:
        specs = [s if ":" in s else f"tv:{s}" for s in args.models.split(",") if s]
    else:
        specs = QUICK if args.quick else all_models()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t_all = time.perf_counter()
    partial = RESULTS.with_name("structured_zoo_partial.jsonl")

    def one(spec: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            p = subprocess.run([sys.executable, __file__, "--one", spec, "--attention",
                                args.attention], capture_output=True,
                               text=True, timeout=args.timeout, env=env, check=False)
            lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if lines:
                row = json.loads(lines[-1][7:])
            else:
                tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
                row = {"model": spec, "pk_ok": f"crashed: {tail[:80]}", "tp_ok": "-"}
        except subprocess.TimeoutExpired:
            row = {"model": spec, "pk_ok": f"timeout {args.timeout:.0f}s", "tp_ok": "-"}
        print(f"{spec}: pk={row.get('pk_ok')} tp={row.get('tp_ok')} "
              f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
        with open(partial, "a", encoding="utf-8") as fh:  # survives an interrupted run
            fh.write(json.dumps(row) + "\n")
        return row

    from concurrent.futures import ThreadPoolExecutor

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        rows = list(pool.map(one, specs))
    out = RESULTS.with_name("structured_zoo_quick.json") if args.quick else RESULTS
    if args.attention != "heads":
        out = out.with_name(f"{out.stem}_{args.attention}.json")
    if args.update and out.exists():  # rerun some models, keep the other rows of the last run
        new = {r["model"]: r for r in rows}
        old = json.loads(out.read_text())["rows"]
        rows = [new.pop(r["model"], r) for r in old] + list(new.values())
    built = [r for r in rows if "build" not in str(r.get("pk_ok", ""))]
    m = len(built)
    n_pk = sum(1 for r in built if _pk_good(r))
    n_tp = sum(1 for r in built if r.get("tp_ok") == "ok")
    print(table(rows))
    print()
    both = [r for r in built if _pk_good(r) and r.get("tp_ok") == "ok"]
    if both:
        ratio = statistics.median(r["pk_s"] / r["tp_s"] for r in both)
        print(f"median prune time prunekit / Torch-Pruning: {ratio:.2f}x over {len(both)} models")
    print(f"prunekit {n_pk}/{m}, Torch-Pruning {n_tp}/{m} "
          f"(total {time.perf_counter() - t_all:.0f}s)")
    from prunekit._io import atomic_write_json

    if not args.models or args.update:
        atomic_write_json(out, {"rows": rows, "prunekit_ok": n_pk, "tp_ok": n_tp, "total": m})
    return 0


if __name__ == "__main__":
    sys.exit(main())
