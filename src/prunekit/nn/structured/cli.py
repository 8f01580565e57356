"""``prunekit nn structured``: remove channels/heads, fine-tune with distillation, report gains."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import typer

from prunekit._validation import check_choice

MODELS = ("digits-cnn", "mnist-cnn", "lenet", "resnet18", "mobilenet_v2", "vit-tiny")
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
    checkpoint: Path | None = typer.Option(None, help="state_dict (.pt) to load instead of "
                                           "training the showcase model first."),
    ratio: float | None = typer.Option(None, help="Fraction of units removed per group."),
    target_macs: float | None = typer.Option(None, help="MACs goal: fraction (<1) or count."),
    target_params: float | None = typer.Option(None, help="Parameter goal: fraction or count."),
    target_latency: float | None = typer.Option(
        None, help="Latency goal: fraction of the original."
    ),
    criterion: str = typer.Option("l2", help="l1, l2, bn_scale, fpgm, taylor, random."),
    allocation: str = typer.Option("uniform", help="uniform or global."),
    round_to: int | None = typer.Option(None, help="Kept widths a multiple of this."),
    ignore: list[str] = typer.Option([], help="Module names to keep unchanged (repeatable)."),
    train_epochs: int = typer.Option(10, help="Epochs to train the showcase model first."),
    finetune_epochs: int = typer.Option(3, help="Fine-tuning epochs after pruning."),
    distill: bool = typer.Option(True, help="Distil from the unpruned model while fine-tuning."),
    lr: float = typer.Option(1e-3, help="Learning rate (training and fine-tuning)."),
    image_size: int = typer.Option(64, help="Input size for the torchvision models."),
    out: Path | None = typer.Option(None, help="Write the pruned state_dict here (.pt)."),
    plan: Path | None = typer.Option(None, help="Write the pruning plan here (.json)."),
    report: Path | None = typer.Option(None, help="Write a report (.md, .html or .json)."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Prune a model structurally, fine-tune it, and print MACs/params/bytes/latency/accuracy."""
    import torch

    from prunekit._io import atomic_path, atomic_write_json, atomic_write_text
    from prunekit.metrics import measure_latency
    from prunekit.nn.distill import finetune
    from prunekit.nn.structured import prune, save_plan
    from prunekit.nn.training import evaluate_accuracy, train_classifier

    torch.manual_seed(seed)
    showcase = model in ("digits-cnn", "mnist-cnn", "lenet")
    net, x = build_model(model, image_size=image_size)
    loaders = None
    if showcase:
        from prunekit.data import load_dataset

        check_choice("dataset", dataset, ("digits", "mnist"))
        ds = load_dataset(dataset, seed=seed)
        want = {"digits-cnn": (8, 8), "mnist-cnn": (28, 28)}.get(model)
        if want is not None and tuple(ds.image_shape[-2:]) != want:
            from prunekit.errors import InvalidParameterError

            raise InvalidParameterError(f"model {model!r} needs the "
                                        f"{'digits' if want == (8, 8) else 'mnist'} data set")
        if model == "lenet":
            net, x = build_model(model)
            from prunekit.nn.models import LeNet300100

            net = LeNet300100(in_features=ds.n_features)
            x = torch.randn(1, ds.n_features)
        loaders = ds.loaders(64, images=model != "lenet", seed=seed)
    if checkpoint is not None:
        net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
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
    if out is not None:
        with atomic_path(out) as tmp:
            torch.save(slim.state_dict(), tmp)
    if plan is not None:
        save_plan(rep.plan, plan)
    if report is not None:
        data = rep.to_dict()
        data.update({"accuracy_before": acc0, "accuracy_pruned": acc1,
                     "accuracy_finetuned": acc2, "model": model})
        if report.suffix == ".json":
            atomic_write_json(report, data)
        elif report.suffix == ".html":
            from prunekit.report import Report

            r = Report(f"Structured pruning of {model}")
            r.add_text(text)
            r.write_html(report)
        else:
            atomic_write_text(report, text + "\n")


@structured_app.command("groups")
def groups_cmd(
    model: str = typer.Option("resnet18", help=f"Architecture: {', '.join(MODELS)}."),
    image_size: int = typer.Option(64, help="Input size for the torchvision models."),
    ignore: list[str] = typer.Option([], help="Module names to keep unchanged (repeatable)."),
) -> None:
    """List the groups of coupled channels that structured pruning removes together."""
    from prunekit.nn.structured import dependency_groups

    net, x = build_model(model, image_size=image_size)
    graph = dependency_groups(net.eval(), x, ignore)
    from prunekit.metrics import markdown_table

    rows = [{"group": g.id, "units": g.n_units, "layers": ", ".join(sorted({n for n, _ in g.uses}))}
            for g in graph.groups]
    typer.echo(markdown_table(rows, right=("group", "units")))
    typer.echo(f"\n{graph.frozen_units} units are fixed (inputs, outputs, untracked ops).")
    for note in graph.notes:
        typer.echo(f"- {note}")
