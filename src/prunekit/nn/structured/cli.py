"""``prunekit nn structured``: remove channels/heads, fine-tune with distillation, report gains."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import typer

from prunekit._cli_common import (
    SEED_MAX,
    apply_state_dict,
    check_distinct_outputs,
    check_number,
    check_option_choice,
    check_output_file,
    load_state_dict_file,
    write_outputs,
)
from prunekit._validation import check_choice
from prunekit.errors import InvalidParameterError

MODELS = ("digits-cnn", "mnist-cnn", "lenet", "resnet18", "mobilenet_v2", "vit-tiny")
SHOWCASE = ("digits-cnn", "mnist-cnn", "lenet")
MAX_EPOCHS = 1000
structured_app = typer.Typer(
    help="Structural pruning: physically remove channels, neurons and attention heads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def build_model(name: str, n_classes: int = 10, image_size: int = 64) -> tuple[Any, Any]:
    """A model from :data:`MODELS` and a matching example input (batch 1)."""
    import torch

    check_choice("model", name, MODELS)
    from prunekit.nn import models

    if name == "digits-cnn":
        return models.DigitsCNN(n_classes=n_classes), torch.randn(1, 1, 8, 8)
    if name == "mnist-cnn":
        return models.MnistCNN(n_classes=n_classes), torch.randn(1, 1, 28, 28)
    if name == "lenet":
        return models.LeNet300100(n_classes=n_classes), torch.randn(1, 784)
    from prunekit._compat import import_torchvision

    tv = import_torchvision()
    x = torch.randn(1, 3, image_size, image_size)
    if name == "resnet18":
        return tv.models.resnet18(num_classes=n_classes), x
    if name == "mobilenet_v2":
        return tv.models.mobilenet_v2(num_classes=n_classes), x
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=image_size, patch_size=max(image_size // 8, 1),
                             num_layers=4, num_heads=4, hidden_dim=128, mlp_dim=512,
                             num_classes=n_classes), x


def register(nn_app: typer.Typer) -> None:
    """Add ``prunekit nn structured ...`` to ``nn_app``."""
    nn_app.add_typer(structured_app, name="structured")


@structured_app.command("prune")
def prune_cmd(
    model: str = typer.Option(
        "digits-cnn", help=f"Architecture: {', '.join(MODELS)}, or your own "
        "'package.module:factory' (a function returning an nn.Module; needs --input-shape)."),
    dataset: str | None = typer.Option(
        None, "--data", "--dataset",
        help="Bundled data set for training, accuracy and fine-tuning: digits or mnist "
        "(default: the showcase model's own; none for other models, which skips accuracy and "
        "fine-tuning)."),
    checkpoint: Path | None = typer.Option(None, help="state_dict (.pt or .safetensors) to load "
                                           "instead of training the showcase model first "
                                           "(torch files are read with weights_only=True)."),
    input_shape: str | None = typer.Option(
        None, help="Example input shape for --model package.module:factory, e.g. 1,3,32,32."),
    ratio: float | None = typer.Option(None, help="Fraction of units removed per group."),
    target_macs: float | None = typer.Option(None, help="MACs goal: fraction (<1) or count."),
    target_params: float | None = typer.Option(None, help="Parameter goal: fraction or count."),
    target_latency: float | None = typer.Option(
        None, help="Latency goal: fraction of the original."
    ),
    criterion: str = typer.Option("l2", help="l1, l2, bn_scale, fpgm, taylor, random."),
    allocation: str = typer.Option("uniform", help="uniform or global."),
    attention: str = typer.Option("heads", help="Attention units: heads (whole heads) or "
                                  "head_dim (every head loses the same head_dim offsets)."),
    round_to: int | None = typer.Option(None, min=1, max=4096,
                                        help="Kept widths a multiple of this."),
    ignore: list[str] = typer.Option([], help="Module names to keep unchanged (repeatable)."),
    train_epochs: int = typer.Option(10, min=0, max=MAX_EPOCHS,
                                     help="Epochs to train the showcase model first."),
    finetune_epochs: int = typer.Option(3, min=0, max=MAX_EPOCHS,
                                        help="Fine-tuning epochs after pruning."),
    distill: bool = typer.Option(True, help="Distil from the unpruned model while fine-tuning."),
    lr: float = typer.Option(1e-3, help="Learning rate (training and fine-tuning)."),
    image_size: int = typer.Option(64, min=16, max=1024,
                                   help="Input size for the torchvision models."),
    out: Path | None = typer.Option(None, help="Write the pruned state_dict here (.pt)."),
    plan: Path | None = typer.Option(None, help="Write the pruning plan here (.json)."),
    report: Path | None = typer.Option(None, help="Write a report (.md, .html or .json)."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Prune a model structurally, fine-tune it, and print MACs/params/bytes/latency/accuracy."""
    import torch

    from prunekit.metrics import measure_latency
    from prunekit.nn.distill import finetune
    from prunekit.nn.structured import prune
    from prunekit.nn.training import evaluate_accuracy, train_classifier

    user = ":" in model
    dataset = _check_prune_options(model, dataset, ratio, target_macs, target_params,
                                   target_latency, criterion, allocation, lr, input_shape)
    check_option_choice("--attention", attention, ("heads", "head_dim"))
    outputs = {"--out": out, "--plan": plan, "--report": report}
    for option, path in outputs.items():
        if path is not None:
            check_output_file(option, path)
    check_distinct_outputs(outputs)
    state = None if checkpoint is None else load_state_dict_file("--checkpoint", checkpoint)
    torch.manual_seed(seed)
    if user:
        net, x = load_user_model(model, input_shape or "")
        loaders = _loaders(dataset, x, seed) if dataset else None
    else:
        net, x, loaders = _model_and_data(model, dataset, image_size, seed)
    _check_ignore(net, ignore)
    if loaders is None:
        typer.echo("note: no --data: accuracy and fine-tuning are skipped (pass --data digits "
                   "or --data mnist for a model with matching inputs)", err=True)
    elif finetune_epochs == 0:
        typer.echo("note: --finetune-epochs 0: fine-tuning is skipped", err=True)
    if state is not None:
        apply_state_dict("--checkpoint", checkpoint, net, state, f"--model {model}")
    elif loaders is not None and train_epochs > 0:
        train_classifier(net, loaders[0], epochs=train_epochs, lr=lr, progress=not quiet,
                         description="training")
    elif user:
        typer.echo("note: no --checkpoint and no training: pruning the factory's initial "
                   "weights", err=True)
    net.eval()
    acc0 = evaluate_accuracy(net, loaders[2]) if loaders else None
    if ratio is None and target_macs is None and target_params is None and target_latency is None:
        ratio = 0.5
    from prunekit._progress import ProgressBar

    with ProgressBar(3, "pruning", enabled=not quiet) as bar:
        slim, rep = prune(net, x, ratio=ratio, target_macs=target_macs,
                          target_params=target_params, target_latency=target_latency,
                          criterion=criterion, allocation=allocation, round_to=round_to,
                          ignored_layers=ignore, data=loaders[0] if loaders else None,
                          seed=seed, attention=attention)
        bar.advance(description="evaluating")
        acc1 = evaluate_accuracy(slim, loaders[2]) if loaders else None
        bar.advance(description="measuring latency")
        batch = x.expand(32, *x.shape[1:]).contiguous()
        rep.latency_before_s = measure_latency(net, batch, repeats=10).median_s
        rep.latency_after_s = measure_latency(slim, batch, repeats=10).median_s
        bar.advance()
    acc2 = None
    if loaders and finetune_epochs > 0:
        finetune(slim, loaders[0], epochs=finetune_epochs, lr=lr,
                 teacher=copy.deepcopy(net) if distill else None, progress=not quiet)
        acc2 = evaluate_accuracy(slim.eval(), loaders[2])
    text = rep.to_markdown().replace("latency (ms)", "latency, batch 32 (ms)")
    if acc0 is not None:
        text += (f"\n\nTest accuracy: {acc0:.4f} before, {acc1:.4f} right after pruning"
                 + (f", {acc2:.4f} after {finetune_epochs} fine-tuning epochs"
                    f"{' with distillation' if distill else ''}" if acc2 is not None else ""))
    else:
        text += "\n\nTest accuracy: not measured (no --data); fine-tuning skipped."
    typer.echo(text)
    accuracy = {"accuracy_before": acc0, "accuracy_pruned": acc1, "accuracy_finetuned": acc2}
    _write_prune_outputs(out, plan, report, slim, rep, text, {**accuracy, "model": model})
    from prunekit._cli_common import echo_written

    echo_written(None, [p for p in (out, plan, report) if p is not None])


def _check_prune_options(model: str, dataset: str | None, ratio: float | None,
                         target_macs: float | None, target_params: float | None,
                         target_latency: float | None, criterion: str, allocation: str,
                         lr: float, input_shape: str | None = None) -> str | None:
    """Every option of ``prune`` checkable without a model, before any work; the data set."""
    from prunekit.nn.structured.importance import CRITERIA

    if ":" in model:
        parse_factory(model)
        if input_shape is None:
            raise InvalidParameterError(
                f"--model {model} needs --input-shape (the example input, e.g. 1,3,32,32)")
        parse_shape(input_shape)
    else:
        check_option_choice("--model", model, MODELS)
        if input_shape is not None:
            raise InvalidParameterError(
                "--input-shape is for --model package.module:factory; the built-in models "
                "know their input (use --image-size for the torchvision ones)")
    if dataset is not None:
        check_option_choice("--data", dataset, ("digits", "mnist"))
    if model in SHOWCASE:
        want = {"digits-cnn": "digits", "mnist-cnn": "mnist"}.get(model)
        dataset = dataset or want or "digits"
        if want is not None and dataset != want:
            raise InvalidParameterError(f"--model {model} needs --data {want}")
    check_number("--ratio", ratio, 0.0, 1.0, low_open=True, high_open=True)
    check_number("--target-macs", target_macs, 0.0, None, low_open=True)
    check_number("--target-params", target_params, 0.0, None, low_open=True)
    check_number("--target-latency", target_latency, 0.0, 1.0, low_open=True, high_open=True)
    check_option_choice("--criterion", criterion, CRITERIA)
    check_option_choice("--allocation", allocation, ("uniform", "global"))
    check_number("--lr", lr, 0.0, 10.0, low_open=True)
    return dataset


def parse_factory(spec: str) -> tuple[str, str]:
    """``package.module:factory`` -> (module, attribute); the error shows the expected form."""
    import re

    module, _, attr = spec.partition(":")
    ident = r"[A-Za-z_][A-Za-z0-9_]*"
    if not re.fullmatch(rf"{ident}(\.{ident})*", module) or not re.fullmatch(
            rf"{ident}(\.{ident})*", attr):
        raise InvalidParameterError(
            f"--model {spec!r}: expected a built-in name ({', '.join(MODELS)}) or "
            "'package.module:factory' (an importable module and a function in it)")
    return module, attr


def parse_shape(text: str) -> tuple[int, ...]:
    """``1,3,32,32`` (or ``1x3x32x32``) -> a tuple of positive ints (batch first)."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or len(shape) > 6 or any(d < 1 or d > 65536 for d in shape) or (
            _prod(shape) > 2**26):
        raise InvalidParameterError(
            f"--input-shape {text!r}: give 1 to 6 positive sizes, batch first, e.g. 1,3,32,32 "
            "(at most 2**26 elements)")
    return shape


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def load_user_model(spec: str, input_shape: str) -> tuple[Any, Any]:
    """Import ``package.module:factory`` (from the current folder too), call it, check it."""
    import importlib
    import os
    import sys

    import torch

    module, attr = parse_factory(spec)
    shape = parse_shape(input_shape)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise InvalidParameterError(f"--model {spec!r}: cannot import {module!r} ({exc})"
                                    ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidParameterError(f"--model {spec!r}: {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    net = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(net, torch.nn.Module):
        raise InvalidParameterError(
            f"--model {spec!r}: the factory returned a {type(net).__name__}, not a "
            "torch.nn.Module")
    x = torch.randn(*shape)
    try:
        with torch.no_grad():
            net.eval()(x)
    except Exception as exc:  # noqa: BLE001 - the user's model rejecting the example input
        raise InvalidParameterError(
            f"--input-shape {input_shape}: the model cannot run on an input of shape "
            f"{tuple(shape)} ({type(exc).__name__}: {str(exc)[:200]})") from None
    return net, x


def _loaders(dataset: str, x: Any, seed: int) -> Any:
    """Bundled data loaders shaped like the example input ``x`` (flat or image batches)."""
    from prunekit.data import load_dataset

    ds = load_dataset(dataset, seed=seed)
    images = x.dim() > 2
    side = {"digits": 8, "mnist": 28}[dataset]
    want = (1, side, side) if images else (ds.n_features,)
    if tuple(x.shape[1:]) != want:
        raise InvalidParameterError(
            f"--data {dataset} gives inputs of shape {want} per sample, but --input-shape is "
            f"{tuple(x.shape)}; use --input-shape 1,{','.join(map(str, want))}")
    return ds.loaders(64, images=images, seed=seed)


def _model_and_data(model: str, dataset: str, image_size: int, seed: int
                    ) -> tuple[Any, Any, Any]:
    """The network, an example input and (showcase models) the train/val/test loaders."""
    import torch

    net, x = build_model(model, image_size=image_size)
    if model not in SHOWCASE:
        return net, x, None
    from prunekit.data import load_dataset

    ds = load_dataset(dataset, seed=seed)
    if model == "lenet":
        from prunekit.nn.models import LeNet300100

        net, x = LeNet300100(in_features=ds.n_features), torch.randn(1, ds.n_features)
    return net, x, ds.loaders(64, images=model != "lenet", seed=seed)


def _check_ignore(net: Any, ignore: list[str]) -> None:
    names = {n for n, _ in net.named_modules() if n}
    for name in ignore:
        if name not in names:
            shown = ", ".join(sorted(names)[:12]) + (" ..." if len(names) > 12 else "")
            raise InvalidParameterError(
                f"--ignore {name!r} is not a module of the model; modules: {shown}")


def _write_prune_outputs(out: Path | None, plan: Path | None, report: Path | None, slim: Any,
                         rep: Any, text: str, extra: dict[str, Any]) -> None:
    """The pruned state_dict, the plan and the report, written together at the end."""
    import torch

    from prunekit._io import atomic_write_json
    from prunekit.nn.structured import save_plan

    files: dict[Path, Any] = {}
    if out is not None:
        files[out] = lambda tmp: torch.save(slim.state_dict(), tmp)
    if plan is not None:
        files[plan] = lambda tmp: save_plan(rep.plan, tmp)
    if report is not None:
        if report.suffix == ".json":
            files[report] = lambda tmp: atomic_write_json(tmp, {**rep.to_dict(), **extra})
        elif report.suffix == ".html":

            files[report] = _html_report(rep, text, extra)
        else:
            files[report] = text + "\n"
    write_outputs(files)


def _html_report(rep: Any, text: str, extra: dict[str, Any]) -> str:
    """The HTML report: the tables, bars of params/MACs/bytes/latency and per-layer widths."""
    from prunekit.report import Report, plots

    r = Report(f"Structured pruning of {extra['model']}")
    r.add_text(text)
    lat = [rep.latency_before_s, rep.latency_after_s]
    rows = [{"name": name, "n_params": p, "macs": m, "size_bytes": b,
             "latency_ms": None if t is None else t * 1e3}
            for name, p, m, b, t in zip(("before", "after"), (rep.params_before, rep.params_after),
                                        (rep.macs_before, rep.macs_after),
                                        (rep.bytes_before, rep.bytes_after), lat, strict=True)]
    cols = ["n_params", "macs", "size_bytes"] + (["latency_ms"] if None not in lat else [])
    r.add_figure(plots.size_latency(rows, columns=cols, title="Before and after pruning"),
                 "Parameters, MACs, size and latency (batch 32)")
    acc = [(k, extra.get(k)) for k in ("accuracy_before", "accuracy_pruned",
                                       "accuracy_finetuned")]
    if rep.macs_before and any(v is not None for _, v in acc):
        macs = {"accuracy_before": rep.macs_before, "accuracy_pruned": rep.macs_after,
                "accuracy_finetuned": rep.macs_after}
        label = {"accuracy_before": "unpruned", "accuracy_pruned": "pruned",
                 "accuracy_finetuned": "pruned + fine-tuned"}
        r.add_tradeoff("Accuracy vs. MACs", {label[k]: [(macs[k] / 1e6, v)] for k, v in acc
                                             if v is not None},
                       xlabel="MMACs", metric="test accuracy")
    widths = {f"{layer} ({role})": after / max(before, 1)
              for layer, roles in rep.layers.items() for role, (before, after) in roles.items()}
    if widths:
        r.add_figure(plots.layer_sparsity({k: 1 - v for k, v in list(widths.items())[:60]},
                                          title="Fraction of units removed per layer",
                                          xlabel="fraction of units removed"),
                     "Units removed per layer")
    return r.to_html()


@structured_app.command("groups")
def groups_cmd(
    model: str = typer.Option("resnet18", help=f"Architecture: {', '.join(MODELS)}."),
    image_size: int = typer.Option(64, min=16, max=1024,
                                   help="Input size for the torchvision models."),
    ignore: list[str] = typer.Option([], help="Module names to keep unchanged (repeatable)."),
) -> None:
    """List the groups of coupled channels that structured pruning removes together."""
    from prunekit.nn.structured import dependency_groups

    check_option_choice("--model", model, MODELS)
    net, x = build_model(model, image_size=image_size)
    _check_ignore(net, ignore)
    graph = dependency_groups(net.eval(), x, ignore)
    from prunekit._tables import print_table

    rows = [{"group": g.id, "units": g.n_units, "layers": ", ".join(sorted({n for n, _ in g.uses}))}
            for g in graph.groups]
    print_table(rows)
    typer.echo(f"\n{graph.frozen_units} units are fixed (inputs, outputs, untracked ops).")
    for note in graph.notes:
        typer.echo(f"- {note}")
