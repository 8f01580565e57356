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
    model: str = typer.Option("digits-cnn", help=f"Architecture: {', '.join(MODELS)}."),
    dataset: str = typer.Option("digits", help="digits or mnist (for the showcase CNNs)."),
    checkpoint: Path | None = typer.Option(None, help="state_dict (.pt or .safetensors) to load "
                                           "instead of training the showcase model first."),
    ratio: float | None = typer.Option(None, help="Fraction of units removed per group."),
    target_macs: float | None = typer.Option(None, help="MACs goal: fraction (<1) or count."),
    target_params: float | None = typer.Option(None, help="Parameter goal: fraction or count."),
    target_latency: float | None = typer.Option(
        None, help="Latency goal: fraction of the original."
    ),
    criterion: str = typer.Option("l2", help="l1, l2, bn_scale, fpgm, taylor, random."),
    allocation: str = typer.Option("uniform", help="uniform or global."),
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

    _check_prune_options(model, dataset, ratio, target_macs, target_params, target_latency,
                         criterion, allocation, lr)
    outputs = {"--out": out, "--plan": plan, "--report": report}
    for option, path in outputs.items():
        if path is not None:
            check_output_file(option, path)
    check_distinct_outputs(outputs)
    state = None if checkpoint is None else load_state_dict_file("--checkpoint", checkpoint)
    torch.manual_seed(seed)
    net, x, loaders = _model_and_data(model, dataset, image_size, seed)
    _check_ignore(net, ignore)
    if state is not None:
        apply_state_dict("--checkpoint", checkpoint, net, state, f"--model {model}")
    elif loaders is not None:
        train_classifier(net, loaders[0], epochs=train_epochs, lr=lr, progress=not quiet,
                         description="training")
    net.eval()
    acc0 = evaluate_accuracy(net, loaders[2]) if loaders else None
    if ratio is None and target_macs is None and target_params is None and target_latency is None:
        ratio = 0.5
    slim, rep = prune(net, x, ratio=ratio, target_macs=target_macs, target_params=target_params,
                      target_latency=target_latency, criterion=criterion, allocation=allocation,
                      round_to=round_to, ignored_layers=ignore,
                      data=loaders[0] if loaders else None, seed=seed)
    acc1 = evaluate_accuracy(slim, loaders[2]) if loaders else None
    acc2 = None
    if loaders and finetune_epochs > 0:
        finetune(slim, loaders[0], epochs=finetune_epochs, lr=lr,
                 teacher=copy.deepcopy(net) if distill else None, progress=not quiet)
        acc2 = evaluate_accuracy(slim.eval(), loaders[2])
    batch = x.expand(32, *x.shape[1:]).contiguous()
    rep.latency_before_s = measure_latency(net, batch, repeats=10).median_s
    rep.latency_after_s = measure_latency(slim, batch, repeats=10).median_s
    text = rep.to_markdown().replace("latency (ms)", "latency, batch 32 (ms)")
    if acc0 is not None:
        text += (f"\n\nTest accuracy: {acc0:.4f} before, {acc1:.4f} right after pruning"
                 + (f", {acc2:.4f} after {finetune_epochs} fine-tuning epochs"
                    f"{' with distillation' if distill else ''}" if acc2 is not None else ""))
    typer.echo(text)
    accuracy = {"accuracy_before": acc0, "accuracy_pruned": acc1, "accuracy_finetuned": acc2}
    _write_prune_outputs(out, plan, report, slim, rep, text, {**accuracy, "model": model})


def _check_prune_options(model: str, dataset: str, ratio: float | None,
                         target_macs: float | None, target_params: float | None,
                         target_latency: float | None, criterion: str, allocation: str,
                         lr: float) -> None:
    """Every option of ``prune`` that can be checked without a model, before any work."""
    from prunekit.nn.structured.importance import CRITERIA

    check_option_choice("--model", model, MODELS)
    if model in SHOWCASE:
        check_option_choice("--dataset", dataset, ("digits", "mnist"))
        want = {"digits-cnn": "digits", "mnist-cnn": "mnist"}.get(model)
        if want is not None and dataset != want:
            raise InvalidParameterError(f"--model {model} needs --dataset {want}")
    check_number("--ratio", ratio, 0.0, 1.0, low_open=True, high_open=True)
    check_number("--target-macs", target_macs, 0.0, None, low_open=True)
    check_number("--target-params", target_params, 0.0, None, low_open=True)
    check_number("--target-latency", target_latency, 0.0, 1.0, low_open=True, high_open=True)
    check_option_choice("--criterion", criterion, CRITERIA)
    check_option_choice("--allocation", allocation, ("uniform", "global"))
    check_number("--lr", lr, 0.0, 10.0, low_open=True)


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
            from prunekit.report import Report

            r = Report(f"Structured pruning of {extra['model']}")
            r.add_text(text)
            files[report] = r.to_html()
        else:
            files[report] = text + "\n"
    write_outputs(files)


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
    from prunekit.metrics import markdown_table

    rows = [{"group": g.id, "units": g.n_units, "layers": ", ".join(sorted({n for n, _ in g.uses}))}
            for g in graph.groups]
    typer.echo(markdown_table(rows, right=("group", "units")))
    typer.echo(f"\n{graph.frozen_units} units are fixed (inputs, outputs, untracked ops).")
    for note in graph.notes:
        typer.echo(f"- {note}")
