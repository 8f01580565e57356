"""``prunekit export``: a (pruned) model to a verified ONNX file, optionally int8 / sparse-timed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from prunekit._validation import check_choice
from prunekit.errors import InvalidParameterError

BUILTIN = ("digits-cnn", "mnist-cnn", "lenet", "resnet18", "mobilenet_v2", "vit-tiny", "minilm")
_DATASETS = {"digits-cnn": "digits", "mnist-cnn": "mnist", "lenet": "mnist"}


def register(app: typer.Typer) -> None:
    """Add ``prunekit export`` to ``app``."""
    app.command("export")(export_cmd)


def _shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise InvalidParameterError(f"--input-shape must look like 1,3,64,64, got {text!r}")
    return shape


def load_model(name: str, checkpoint: Path | None, input_shape: tuple[int, ...] | None,
               image_size: int, *, trust_pickle: bool = False) -> tuple[Any, Any]:
    """``(model, example_inputs)`` for a built-in architecture or a saved model file.

    A whole pickled model (a torch module saved with ``torch.save(model)``, a joblib file) can
    run arbitrary code when loaded, so it is loaded only with ``trust_pickle=True``.
    """
    import torch

    path = Path(name)
    if name in BUILTIN:
        if name == "minilm":
            from prunekit.nn.oneshot.minilm import load_minilm

            model, tok = load_minilm()
            ex = tok(["a first example sentence", "and a second, longer example sentence"],
                     padding=True, return_tensors="pt")
            return model, dict(ex)
        from prunekit.nn.structured.cli import build_model

        model, x = build_model(name, image_size=image_size)
        if checkpoint is not None:
            model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        return model.eval(), (torch.randn(*input_shape) if input_shape else x)
    if not path.is_file():
        raise InvalidParameterError(
            f"MODEL={name!r} is neither a built-in ({', '.join(BUILTIN)}) nor an existing file"
        )
    if input_shape is None:
        raise InvalidParameterError("a model file needs --input-shape (e.g. 1,3,64,64 or 100,30)")
    if not trust_pickle:
        raise InvalidParameterError(
            f"MODEL={name!r} is a pickled model file, and loading a pickle can run any code it "
            "holds; pass --trust-pickle if you trust where it came from (or use a built-in "
            "architecture with --checkpoint, a state_dict loaded with weights_only=True)"
        )
    if path.suffix in (".joblib", ".pkl"):
        import joblib
        import numpy as np

        return joblib.load(path), np.random.default_rng(0).normal(size=input_shape)
    model = torch.load(path, map_location="cpu", weights_only=False)  # a trusted full module
    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(f"{path} holds a {type(model).__name__}, not an nn.Module "
                                    f"(save the whole module with torch.save(model, path))")
    return model.eval(), torch.randn(*input_shape)


def _calibration(name: str, example: Any, n: int) -> tuple[Any, Any, str]:
    """Calibration and evaluation batches: the bundled data set for showcase CNNs, else random."""
    import torch

    if name in _DATASETS:
        from prunekit.data import load_dataset

        ds = load_dataset(_DATASETS[name])
        _, val, test = ds.loaders(32, images=name != "lenet")
        return val, test, f"calibrated on the {_DATASETS[name]} validation split"
    if isinstance(example, dict):
        return [example] * n, [example], "calibrated on the example inputs only"
    gen = torch.Generator().manual_seed(0)
    shape = tuple(example.shape)
    batches = [torch.randn(*shape, generator=gen) for _ in range(n)]
    return batches, batches[:2], ("calibrated on random normal inputs; use "
                                  "prunekit.deploy.quantization with real data for accuracy")


def export_cmd(
    model: str = typer.Argument(..., help=f"Built-in ({', '.join(BUILTIN)}) or a file: a whole "
                                "torch module (.pt, trusted files only) or a scikit-learn model "
                                "(.joblib/.pkl)."),
    format: str = typer.Option("onnx", "--format", help="Output format: onnx."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file (MODEL.onnx)."),
    quantize: str | None = typer.Option(None, "--quantize", help="int8: dynamic or static."),
    sparse_inference: bool = typer.Option(False, "--sparse-inference", help="Measure CSR kernels "
                                          "per layer (to_sparse_inference) and report gains."),
    sparsity: float | None = typer.Option(None, help="Magnitude-prune this fraction of weights "
                                          "(unstructured) before export."),
    checkpoint: Path | None = typer.Option(None, help="state_dict (.pt) for a built-in model."),
    input_shape: str | None = typer.Option(None, help="Example input shape, e.g. 8,3,64,64."),
    image_size: int = typer.Option(64, help="Image size of the torchvision models."),
    calibration_batches: int = typer.Option(8, help="Batches for --quantize static."),
    exporter: str = typer.Option("auto", help="auto, dynamo or torchscript."),
    opset: int | None = typer.Option(None, help="ONNX opset (exporter default if unset)."),
    report: Path | None = typer.Option(None, help="Also write the reports to this Markdown file."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow loading a pickled "
                                      "model file (.pt whole module, .joblib, .pkl): it can run "
                                      "code; only for files you trust."),
) -> None:
    """Export a model to ONNX, verify it in onnxruntime, optionally quantize to int8."""
    from prunekit._cli_common import check_distinct_outputs, check_output_file
    from prunekit._io import atomic_write_text
    from prunekit.deploy.onnx_export import export_onnx
    from prunekit.deploy.quantization import quantize as run_quantize

    check_choice("--format", format, ("onnx",))
    if quantize is not None:
        check_choice("--quantize", quantize, ("dynamic", "static"))
    out = output or Path(f"{Path(model).stem}.onnx")
    outputs = {"--output": out, "--report": report}  # checked before any work
    if quantize is not None:
        outputs["--output (int8)"] = out.with_name(f"{out.stem}.int8.onnx")
    for option, path in outputs.items():
        if path is not None:
            check_output_file(option, path)
    check_distinct_outputs(outputs)
    m, example = load_model(model, checkpoint, _shape(input_shape), image_size,
                            trust_pickle=trust_pickle)
    parts = []
    if sparsity is not None:
        from prunekit.nn import prune_model

        if not hasattr(m, "named_parameters"):
            raise InvalidParameterError("--sparsity applies to torch models only")
        parts.append(prune_model(m, sparsity, prune_first_last=True).to_markdown())
    if sparse_inference:
        if not hasattr(m, "named_parameters"):
            raise InvalidParameterError("--sparse-inference applies to torch models only")
        from prunekit.deploy.sparse import to_sparse_inference

        _, sp = to_sparse_inference(m, example)
        sp.notes.append("the ONNX file keeps dense weights (onnxruntime has no CSR kernels); "
                        "use prunekit.deploy.to_sparse_inference in PyTorch to run sparse")
        parts.append(sp.to_markdown())
    parts.append(export_onnx(m, example, out, exporter=exporter, opset=opset).to_markdown())
    if quantize is not None:
        calib, evals, note = _calibration(model, example, calibration_batches)
        q_out = out.with_name(f"{out.stem}.int8.onnx")
        q = run_quantize(out, q_out, quantize, calibration=calib if quantize == "static" else None,
                         eval_data=evals, max_calibration_batches=calibration_batches)
        if quantize == "static":
            q.notes.append(note)
        parts.append(q.to_markdown())
    text = "\n\n".join(parts)
    typer.echo(text)
    if report is not None:
        atomic_write_text(report, text + "\n")
