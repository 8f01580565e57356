"""``prunekit nn sparsity`` (train, prune, fine-tune, report) and ``prunekit nn compact-info``.

The experiment runner :func:`run_sparsity_experiment` is shared with
``benchmarks/nn_sparsity.py``: one showcase model on its bundled data set, trained dense, then
pruned with a chosen criterion / pattern / schedule and fine-tuned with the masks kept.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from prunekit._cli_common import (
    SEED_MAX,
    check_input_file,
    check_number,
    check_option_choice,
    check_output_dir,
    echo_written,
    one_line,
    write_outputs,
)
from prunekit._validation import check_choice, check_sparsity
from prunekit.errors import InvalidParameterError

SHOWCASES = {"lenet": ("mnist", False), "cnn": ("digits", True)}
METHODS = ("oneshot", "iterative", "agp", "linear", "cubic", "constant", "imp")
OUTPUT_FILES = ("model.safetensors", "report.md", "report.json", "report.html")
MAX_EPOCHS = 1000


@dataclass
class Showcase:
    """A showcase model, its data loaders and (after :func:`train_dense`) its dense weights."""

    name: str
    dataset: str
    train: Any
    val: Any
    test: Any
    make_model: Callable[[], Any]
    init_state: dict[str, Any] = field(default_factory=dict)
    dense_state: dict[str, Any] = field(default_factory=dict)
    dense_accuracy: float = float("nan")
    dense_seconds: float = 0.0
    dense_epochs: int = 0


def load_showcase(name: str, *, batch_size: int = 128, seed: int = 0) -> Showcase:
    """``lenet`` (LeNet-300-100 on MNIST-5k) or ``cnn`` (DigitsCNN on 8x8 digits)."""
    import torch

    from prunekit.data import load_dataset
    from prunekit.nn.models import DigitsCNN, LeNet300100

    check_choice("model", name, tuple(SHOWCASES))
    dataset, images = SHOWCASES[name]
    data = load_dataset(dataset, seed=seed)
    train, val, test = data.loaders(batch_size, images=images, seed=seed)

    def make_model() -> Any:
        torch.manual_seed(seed)
        if name == "lenet":
            return LeNet300100(in_features=data.n_features, n_classes=data.n_classes)
        return DigitsCNN(n_classes=data.n_classes)

    return Showcase(name, dataset, train, val, test, make_model)


def train_dense(show: Showcase, epochs: int, *, lr: float = 1e-3, progress: bool = False) -> None:
    """Train the showcase's dense model once and keep its initial and trained weights."""
    from prunekit.nn.training import evaluate_accuracy, train_classifier

    model = show.make_model()
    show.init_state = copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    train_classifier(
        model, show.train, epochs=epochs, lr=lr, progress=progress, description="dense training"
    )
    show.dense_seconds = time.perf_counter() - t0
    show.dense_state = copy.deepcopy(model.state_dict())
    show.dense_accuracy = evaluate_accuracy(model, show.test)
    show.dense_epochs = epochs


def compact_ratio(model: Any, *, int8: bool = False) -> tuple[int, float]:
    """(compact file bytes, ratio to the dense float32 state-dict bytes) of ``model``."""
    from prunekit.nn.io import dense_state_dict_bytes, save_compact

    with tempfile.TemporaryDirectory() as tmp:
        path = save_compact(model, Path(tmp) / "model.safetensors", int8=int8)
        size = path.stat().st_size
    return size, size / dense_state_dict_bytes(model)


def run_sparsity_experiment(
    show: Showcase,
    *,
    sparsity: float,
    criterion: str = "magnitude",
    pattern: str = "unstructured",
    method: str = "agp",
    scope: str = "global",
    finetune_epochs: int = 3,
    rounds: int = 3,
    lr: float = 1e-3,
    prune_first_last: bool = False,
    int8: bool = False,
    criterion_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Prune the dense showcase model with ``method`` and fine-tune; return a result row.

    ``oneshot``: prune once, then fine-tune ``finetune_epochs`` with the masks kept.
    ``agp`` / ``linear`` / ``cubic`` / ``constant`` / ``iterative``: prune during the
    fine-tuning epochs on that schedule (ramp over the first 75 % of the steps).
    ``imp``: lottery-ticket IMP from the dense model's initialisation, ``rounds`` rounds of
    ``dense_epochs`` each plus the final run (the costliest; its time says so).
    """
    import torch

    from prunekit.nn.lottery import lottery_ticket
    from prunekit.nn.schedules import OneShot, make_schedule
    from prunekit.nn.sparsity import Pruner
    from prunekit.nn.training import evaluate_accuracy, make_optimizer, train_classifier

    check_choice("method", method, METHODS)
    sparsity = check_sparsity(sparsity)
    if not show.dense_state:
        raise InvalidParameterError("train the dense model first (train_dense)")
    model = show.make_model()
    t0 = time.perf_counter()
    acc_oneshot = float("nan")
    if method == "imp":
        if criterion != "magnitude":
            raise InvalidParameterError(
                "method='imp' prunes by magnitude; use criterion='magnitude'"
            )
        model.load_state_dict(show.init_state)

        def train_fn(m: Any, on_step: Callable[[int], None]) -> None:
            train_classifier(m, show.train, epochs=show.dense_epochs, lr=lr, on_step=on_step)

        result = lottery_ticket(
            model,
            train_fn,
            sparsity,
            rounds=rounds,
            rewind="init",
            pattern=pattern,
            scope=scope,
            prune_first_last=prune_first_last,
        )
        report = result.report
    else:
        model.load_state_dict(show.dense_state)
        steps_per_epoch = len(show.train)
        total = max(1, steps_per_epoch * finetune_epochs)
        schedule = (
            OneShot(sparsity)
            if method == "oneshot"
            else make_schedule(method, sparsity, total_steps=total, rounds=rounds)
        )
        opt = make_optimizer(model, "adam", lr)
        pruner = Pruner(
            model,
            sparsity=sparsity,
            criterion=criterion,
            pattern=pattern,
            scope=scope,
            schedule=schedule,
            prune_first_last=prune_first_last,
            data=show.train,
            optimizer=opt,
            criterion_options=criterion_options,
        )
        pruner.prepare()
        if method == "oneshot":
            acc_oneshot = evaluate_accuracy(model, show.test)
        if finetune_epochs:
            train_classifier(
                model,
                show.train,
                epochs=finetune_epochs,
                optimizer=opt,
                on_step=lambda _s: pruner.step(),
                progress=progress,
                description=f"{method} {criterion} {sparsity:.0%}",
            )
        pruner.finalize()
        report = pruner.report()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc = evaluate_accuracy(model, show.test)
    size, ratio = compact_ratio(model, int8=int8)
    return {
        "model": show.name,
        "method": method,
        "criterion": criterion,
        "pattern": str(pattern),
        "target_sparsity": sparsity,
        "sparsity": report.sparsity,
        "dense_accuracy": show.dense_accuracy,
        "oneshot_accuracy": acc_oneshot,
        "accuracy": acc,
        "delta_accuracy": acc - show.dense_accuracy,
        "file_bytes": size,
        "file_ratio": ratio,
        "seconds": seconds,
        "report": report,
        "model_obj": model,
    }


def _fmt(v: float, pct: bool = False) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return f"{v:.2%}" if pct else f"{v:.3f}"


def register(nn_app: typer.Typer) -> None:
    """Add ``sparsity`` and ``compact-info`` to ``prunekit nn``."""

    @nn_app.command("sparsity")
    def sparsity_cmd(
        model: str = typer.Option(
            "lenet",
            help="Showcase: 'lenet' (LeNet-300-100, MNIST-5k) or 'cnn' (DigitsCNN, 8x8 digits).",
        ),
        sparsity: float | None = typer.Option(
            None, help="Target sparsity in 0..1 (default 0.9; an N:M pattern sets 1 - N/M)."
        ),
        criterion: str = typer.Option(
            "magnitude", help="magnitude, l2, random, taylor, obd, obs, movement."
        ),
        pattern: str = typer.Option(
            "unstructured", help="unstructured, rowwise, N:M (2:4, 4:8), block:RxC (block:1x4)."
        ),
        method: str = typer.Option(
            "agp", help="Schedule: oneshot, iterative, agp, linear, cubic, constant, imp."
        ),
        scope: str = typer.Option("global", help="global (one threshold) or layer."),
        epochs: int = typer.Option(5, min=1, max=MAX_EPOCHS, help="Dense training epochs."),
        finetune_epochs: int = typer.Option(
            3, min=0, max=MAX_EPOCHS, help="Fine-tuning epochs (pruning runs inside)."
        ),
        rounds: int = typer.Option(3, min=1, max=100, help="Rounds for iterative / imp."),
        prune_first_last: bool = typer.Option(
            False, "--prune-first-last/--keep-first-last",
            help="Prune the first and last layer too (the API default keeps them dense).",
        ),
        int8: bool = typer.Option(False, help="Store int8 values in the compact file (lossy)."),
        seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Random seed."),
        out: Path | None = typer.Option(
            None, help="Folder for model.safetensors (compact), report.md/.json/.html."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train a showcase network, prune it, fine-tune with masks kept, and report."""
        import torch

        sparsity = resolve_sparsity(sparsity, pattern)
        criterion = check_sparsity_options(model, sparsity, criterion, pattern, method, scope)
        if out is not None:
            check_output_dir("--out", out, OUTPUT_FILES)
        torch.manual_seed(seed)
        show = load_showcase(model, seed=seed)
        train_dense(show, epochs, progress=not quiet)
        row = run_sparsity_experiment(
            show,
            sparsity=sparsity,
            criterion=criterion,
            pattern=pattern,
            method=method,
            scope=scope,
            finetune_epochs=finetune_epochs,
            rounds=rounds,
            prune_first_last=prune_first_last,
            int8=int8,
            progress=not quiet,
        )
        report = row["report"]
        from prunekit.metrics import markdown_table

        cells = [{"model": model, "method": method, "criterion": criterion, "pattern": pattern,
              "sparsity": _fmt(row["sparsity"], True),
              "all params zero": _fmt(report.model_zero_fraction, True),
              "dense acc": _fmt(row["dense_accuracy"]), "pruned acc": _fmt(row["accuracy"]),
              "file": f"{row['file_bytes']:,} B, {1 / row['file_ratio']:.2f}x smaller",
              "seconds": f"{row['seconds']:.1f}"}]
        right = ("sparsity", "all params zero", "dense acc", "pruned acc", "file", "seconds")
        summary = markdown_table(cells, right=right)
        from prunekit._tables import print_table

        print_table(cells, right=right)
        note = sparsity_note(report)
        if note:
            typer.echo(note)
        typer.echo("")
        typer.echo(report.to_markdown())
        if out is not None:
            _write_outputs(Path(out), row, summary + ("\n\n" + note if note else ""), int8=int8)
            echo_written(Path(out), OUTPUT_FILES)

    @nn_app.command("compact-info")
    def compact_info_cmd(
        path: Path = typer.Argument(..., help="A file written by prunekit.nn.save_compact."),
    ) -> None:
        """Show how each tensor of a compact sparse file is stored, and the file's size.

        Reads only the file's JSON header (no torch import): fast on any file size.
        """
        check_input_file("PATH", path)
        size = path.stat().st_size
        header, rows = compact_info(path)
        from prunekit._tables import print_table

        typer.echo(f"{path}: {size:,} bytes (file_bytes={size}), format {header['format']} "
                   f"v{header['version']}, {len(rows)} tensors")
        print_table(rows, right=("elements", "stored bytes", "dense bytes", "ratio"))
        stored = sum(r["stored bytes"] for r in rows)
        dense = sum(r["dense bytes"] for r in rows)
        if dense:
            typer.echo(f"tensor data: {stored:,} of {dense:,} dense bytes "
                       f"({dense / max(stored, 1):.2f}x smaller)")
        user = header.get("user") or {}
        if user:
            typer.echo("metadata:")
            typer.echo(json.dumps({k: typed_value(v) for k, v in user.items()}, indent=2))


MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on the JSON header
_TORCH_DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8,
                      "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (8-byte little-endian length + JSON), torch-free.

    Checks the length against the file size and a 100 MiB limit; every failure is an
    :class:`InvalidParameterError` naming ``PATH``.
    """
    def bad(why: str) -> InvalidParameterError:
        return InvalidParameterError(f"PATH {str(path)!r}: not a safetensors file ({why})")

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise bad(f"{size} bytes, shorter than the 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise bad(f"header length {n:,} exceeds the file ({size:,} bytes) or 100 MiB")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"header is not JSON: {one_line(str(exc), 120)}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    return header


def compact_info(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The prunekit header of compact file ``path`` and one row per tensor (torch-free)."""
    st = read_safetensors_header(path)

    def bad(why: str) -> InvalidParameterError:
        return InvalidParameterError(f"PATH {str(path)!r}: not a valid prunekit compact file "
                                     f"({why})")

    meta = st.get("__metadata__")
    if not isinstance(meta, dict) or not isinstance(meta.get("prunekit"), str):
        raise bad("no 'prunekit' metadata")
    try:
        header = json.loads(meta["prunekit"])
    except (ValueError, RecursionError) as exc:
        raise bad(f"malformed metadata: {one_line(str(exc), 120)}") from None
    if not isinstance(header, dict) or header.get("format") != "prunekit.compact":
        raise bad("format is not 'prunekit.compact'")
    if type(header.get("version")) is not int or header["version"] < 1:
        raise bad(f"unsupported version {header.get('version')!r}")
    tensors, user = header.get("tensors"), header.get("user", {})
    if not isinstance(tensors, dict):
        raise bad("no 'tensors' table")
    if not isinstance(user, dict) or not all(isinstance(v, str) for v in user.values()):
        raise bad("'user' metadata must map str to str")
    try:
        rows = [_tensor_row(str(name), info, st) for name, info in tensors.items()]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise bad(f"malformed tensor entry: {type(exc).__name__}: {one_line(str(exc), 120)}"
                  ) from None
    return header, rows


def _tensor_row(name: str, info: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
    enc = str(info["enc"])
    if enc == "nm":
        enc += f" {int(info['n'])}:{int(info['m'])}"
    enc += " int8" if info.get("int8") else ""
    if info.get("packed"):
        enc += " (entropy-coded)"
    shape = [int(d) for d in info["shape"]]
    if any(d < 0 for d in shape) or len(shape) > 16:
        raise ValueError(f"shape {shape}")
    numel = math.prod(shape)
    stored = 0
    for key, entry in st.items():
        if key == name or key.startswith(name + "::"):
            lo, hi = entry["data_offsets"]
            stored += int(hi) - int(lo)
    dense = numel * _TORCH_DTYPE_BYTES.get(str(info["dtype"]).removeprefix("torch."), 4)
    return {"tensor": name, "shape": "x".join(map(str, shape)) or "scalar",
            "dtype": str(info["dtype"]), "encoding": enc, "elements": numel,
            "stored bytes": stored, "dense bytes": dense,
            "ratio": f"{dense / stored:.2f}x smaller" if stored else "—"}


def typed_value(text: str) -> Any:
    """A metadata string as the JSON value it spells (``"0.9"`` -> 0.9, ``"true"`` -> True)."""
    if text in ("True", "False"):
        return text == "True"
    if text in ("nan", "inf", "-inf"):
        return float(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if isinstance(value, int | float | bool | list | dict) or value is None else text


def resolve_sparsity(sparsity: float | None, pattern: str) -> float:
    """``--sparsity`` or its default: 0.9, or ``1 - N/M`` for an N:M pattern.

    An N:M pattern fixes the sparsity, so an explicit different ``--sparsity`` is an error
    rather than being silently replaced.
    """
    from prunekit.nn.patterns import parse_pattern

    try:
        pat = parse_pattern(pattern)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"--{exc}") from None
    if pat.kind != "nm":
        return 0.9 if sparsity is None else sparsity
    fixed = 1.0 - pat.n / pat.m
    if sparsity is not None and not math.isclose(sparsity, fixed, abs_tol=1e-9):
        raise InvalidParameterError(
            f"--sparsity {sparsity:g} conflicts with --pattern {pattern}: an N:M pattern keeps "
            f"{pat.n} of every {pat.m} weights, i.e. sparsity {fixed:g}; leave --sparsity out "
            "or use --pattern unstructured / block:RxC for another sparsity")
    return fixed


def sparsity_note(report: Any) -> str:
    """One line when the whole model's zero fraction is far below the target, saying why."""
    overall, target = float(report.model_zero_fraction), float(report.target_sparsity)
    if not target or overall >= target - 0.02:
        return ""
    kept = [k for k, why in report.skipped.items() if "first" in why or "last" in why]
    why = (f"the first/last layers ({', '.join(kept)}) are kept dense (pass --prune-first-last"
           " to prune them)") if kept else (
        f"{len(report.skipped)} parameter tensors are not pruned (biases, norms, skipped layers)")
    return (f"note: {overall:.1%} of all parameters are zero, below the {target:.0%} target "
            f"(reached on the pruned layers: {report.sparsity:.1%}), because {why}")


def check_sparsity_options(
    model: str, sparsity: float, criterion: str, pattern: str, method: str, scope: str
) -> str:
    """Validate ``prunekit nn sparsity`` options before any training; returns the criterion."""
    from prunekit.nn.importance import CRITERIA
    from prunekit.nn.patterns import parse_pattern

    check_option_choice("--model", model, tuple(SHOWCASES))
    check_number("--sparsity", sparsity, 0.0, 1.0, high_open=True)
    key = criterion.strip().lower()
    check_option_choice("--criterion", key, sorted(CRITERIA))
    try:
        parse_pattern(pattern)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"--{exc}") from None
    check_option_choice("--method", method, METHODS)
    check_option_choice("--scope", scope, ("global", "layer"))
    if method == "imp" and key != "magnitude":
        raise InvalidParameterError(
            f"--method imp prunes by magnitude; use --criterion magnitude (got {criterion!r})"
        )
    return key


def _write_outputs(out: Path, row: dict[str, Any], summary: str, *, int8: bool) -> None:
    """model.safetensors, report.md, report.json and report.html, written together."""
    from prunekit._io import atomic_write_json
    from prunekit.nn.io import save_compact
    from prunekit.report import Report
    from prunekit.report import plots as rplots

    report = row["report"]
    meta = {k: str(v) for k, v in row.items() if k not in ("report", "model_obj")}
    md = "# prunekit nn sparsity\n\n" + summary + "\n\n" + report.to_markdown() + "\n"
    data = {k: v for k, v in row.items() if k not in ("report", "model_obj")}
    data["layers"] = report.to_dict()
    rep = Report("prunekit nn sparsity")
    rep.add_text(summary)
    rep.add_text(report.to_markdown())
    rep.add_figure(rplots.layer_sparsity(report.layer_sparsity), "Layer sparsity")
    write_outputs({
        out / "model.safetensors": lambda tmp: save_compact(
            row["model_obj"], tmp, int8=int8, metadata=meta),
        out / "report.md": md,
        out / "report.json": lambda tmp: atomic_write_json(tmp, data),
        out / "report.html": rep.to_html(),
    })
