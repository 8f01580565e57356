"""``prunekit nn sensitivity``: train a showcase network briefly, print its sensitivity curves.

Each layer (``--kind weights``: unstructured sparsity) or dependency group (``--kind groups``:
structural removal) is pruned alone at every ``--grid`` ratio and the metric measured on the
validation split: accuracy by default, the mean loss with ``--proxy loss``, or the predicted
loss change of a second-order Taylor expansion with ``--proxy taylor`` (weights only, one pass).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import typer

from prunekit._cli_common import (
    SEED_MAX,
    check_number,
    check_option_choice,
    check_output_dir,
    echo_written,
    write_outputs,
)
from prunekit.errors import InvalidParameterError

MODELS = ("digits-cnn", "mnist-cnn", "lenet")
KINDS = ("weights", "groups")
PROXIES = ("loss", "taylor")
OUTPUT_FILES = ("sensitivity.json", "sensitivity.png", "sensitivity.html")
MAX_EPOCHS = 1000
MAX_GRID = 50


def parse_grid(text: str) -> list[float]:
    """``"0.25,0.5,0.75"`` -> sorted distinct fractions strictly between 0 and 1."""
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts:
        raise InvalidParameterError(f"--grid={text!r} names nothing; give comma-separated "
                                    "fractions strictly between 0 and 1, e.g. 0.25,0.5,0.75")
    values: set[float] = set()
    for part in parts:
        try:
            v = float(part)
        except ValueError:
            raise InvalidParameterError(f"--grid: {part!r} is not a number; give comma-separated "
                                        "fractions strictly between 0 and 1") from None
        check_number("--grid", v, 0.0, 1.0, low_open=True, high_open=True)
        values.add(v)
    if len(values) > MAX_GRID:
        raise InvalidParameterError(f"--grid holds {len(values)} ratios; at most {MAX_GRID}")
    return sorted(values)


def _model_and_loaders(model: str, seed: int) -> tuple[Any, Any, Any]:
    """The untrained showcase network, an example input and its data set's loaders."""
    import torch

    from prunekit.data import load_dataset
    from prunekit.nn import models

    torch.manual_seed(seed)
    ds = load_dataset("digits" if model == "digits-cnn" else "mnist", seed=seed)
    if model == "digits-cnn":
        net, x = models.DigitsCNN(n_classes=ds.n_classes), torch.randn(1, 1, 8, 8)
    elif model == "mnist-cnn":
        net, x = models.MnistCNN(n_classes=ds.n_classes), torch.randn(1, 1, 28, 28)
    else:
        net = models.LeNet300100(in_features=ds.n_features, n_classes=ds.n_classes)
        x = torch.randn(1, ds.n_features)
    train, val, _test = ds.loaders(64, images=model != "lenet", seed=seed)
    return net, x, (train, val)


def run_sensitivity(*, model: str, kind: str, grid: list[float], epochs: int,
                    proxy: str | None, max_batches: int | None, seed: int) -> tuple[Any, dict]:
    """Train ``model`` for ``epochs`` and compute its sensitivity; ``(result, info)``."""
    import time

    from prunekit._evaluation import Accuracy
    from prunekit.nn.sensitivity import group_sensitivity, layer_sensitivity
    from prunekit.nn.training import evaluate_accuracy, train_classifier

    net, x, (train, val) = _model_and_loaders(model, seed)
    t0 = time.perf_counter()
    if epochs:
        train_classifier(net, train, epochs=epochs, lr=1e-3)
    train_s = time.perf_counter() - t0
    net.eval()
    eval_fn = Accuracy(val) if proxy is None else None
    data = val if proxy is not None else None
    if kind == "weights":
        res = layer_sensitivity(net, eval_fn, grid=grid, data=data, max_batches=max_batches,
                                method="taylor" if proxy == "taylor" else "full",
                                example_inputs=x)
    else:
        res = group_sensitivity(net, x, eval_fn, grid=grid, data=data, max_batches=max_batches,
                                seed=seed)
    info = {"model": model, "kind": kind, "epochs": epochs, "train_s": round(train_s, 3),
            "val_accuracy": round(evaluate_accuracy(net, val), 4),
            "metric": {None: "validation accuracy", "loss": "validation loss (mean)",
                       "taylor": "predicted loss change (Taylor)"}[proxy]}
    return res, info


def table_rows(res: Any) -> list[dict[str, Any]]:
    """One row per layer/group: the metric at each grid ratio."""
    head = "layer" if res.kind == "weights" else "group"
    return [{head: name, **{f"{g:g}": float(v) for g, v in zip(res.grid, res.metrics[name],
                                                                strict=True)}}
            for name in res.names]


def _outputs(out: Path, res: Any, info: dict[str, Any]) -> dict[Path, Any]:
    from prunekit.report import Report

    fig = res.plot(title=f"Sensitivity of {info['model']} ({info['metric']})")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    rep = Report(f"Sensitivity: {info['model']} ({res.kind})")
    rep.add_text(f"{info['model']} trained {info['epochs']} epochs (validation accuracy "
                 f"{info['val_accuracy']}); metric: {info['metric']}.\n\n" + res.to_markdown())
    rep.add_figure(fig, "Sensitivity curves")
    from prunekit._io import atomic_write_json

    payload = {"info": info, "sensitivity": res.to_dict()}
    return {out / "sensitivity.json": lambda tmp: atomic_write_json(tmp, payload),
            out / "sensitivity.png": buf.getvalue(),
            out / "sensitivity.html": rep.to_html()}


def register(nn_app: typer.Typer) -> None:
    """Add ``prunekit nn sensitivity`` to ``nn_app``."""

    @nn_app.command("sensitivity")
    def sensitivity(
        model: str = typer.Option("digits-cnn", help=f"Showcase: {', '.join(MODELS)}."),
        kind: str = typer.Option(
            "weights", help="weights: each layer's unstructured sparsity; groups: removing "
            "units (channels, neurons) of each dependency group."),
        grid: str = typer.Option("0.25,0.5,0.75", help="Comma-separated ratios in (0, 1)."),
        epochs: int = typer.Option(
            2, min=0, max=MAX_EPOCHS, help="Training epochs on the bundled data set first."),
        proxy: str | None = typer.Option(
            None, help="Cheaper metric: loss (mean validation loss) or taylor (predicted loss "
            "change, --kind weights). Default: validation accuracy."),
        max_batches: int | None = typer.Option(
            None, min=1, help="Validation batches to evaluate on (default: all)."),
        seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed for data and training."),
        out: Path = typer.Option(Path("prunekit-sensitivity"),
                                 help="Folder for sensitivity.json/.png/.html."),
    ) -> None:
        """Train a showcase briefly and measure how each layer/group tolerates pruning."""
        check_option_choice("--model", model, MODELS)
        check_option_choice("--kind", kind, KINDS)
        if proxy is not None:
            check_option_choice("--proxy", proxy, PROXIES)
        if proxy == "taylor" and kind != "weights":
            raise InvalidParameterError("--proxy taylor predicts the loss change of "
                                        "unstructured sparsity; use it with --kind weights "
                                        "(or --proxy loss for groups)")
        ratios = parse_grid(grid)
        check_output_dir("--out", out, OUTPUT_FILES)
        from prunekit._tables import print_table

        res, info = run_sensitivity(model=model, kind=kind, grid=ratios, epochs=epochs,
                                    proxy=proxy, max_batches=max_batches, seed=seed)
        dense = "0 = no change" if proxy == "taylor" else f"dense {res.baseline:.4g}"
        print(f"{model}: {info['metric']} with each {'layer' if kind == 'weights' else 'group'}"
              f" pruned alone ({dense})", flush=True)
        print_table(table_rows(res))
        write_outputs(_outputs(out, res, info))
        echo_written(out, OUTPUT_FILES)
