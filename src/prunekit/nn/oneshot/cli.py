"""``prunekit nn oneshot`` (alias ``prunekit llm``): one-shot pruning of a transformers model."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import typer

from prunekit._cli_common import (
    check_distinct_outputs,
    check_input_file,
    check_number,
    check_option_choice,
    check_output_file,
    one_line,
    write_outputs,
)
from prunekit._io import atomic_write_json
from prunekit.errors import InvalidParameterError

HELP = (
    "One-shot calibration pruning (Wanda, SparseGPT, magnitude) of a transformers model: "
    "a model folder, or the bundled MiniLM sentence model by default. Prints the evaluation "
    "(embedding similarity and retrieval agreement for encoders, perplexity for causal LMs)."
)


def _load(model_dir: Path | None) -> tuple[Any, Any, bool]:
    from prunekit.nn.oneshot._hf import import_transformers
    from prunekit.nn.oneshot.minilm import load_minilm

    if model_dir is None:
        model, tok = load_minilm()
        return model, tok, False
    if not model_dir.is_dir() or not (model_dir / "config.json").exists():
        raise InvalidParameterError(
            f"--model {model_dir} is not a transformers model folder (no config.json)"
        )
    transformers = import_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        archs = " ".join(getattr(config, "architectures", None) or [])
        causal = "CausalLM" in archs or "LMHead" in archs
        cls = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
        model = cls.from_pretrained(str(model_dir), local_files_only=True).eval()
        tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to load a user's folder is bad input
        raise InvalidParameterError(
            f"--model {str(model_dir)!r}: cannot load it with transformers "
            f"({type(exc).__name__}: {one_line(str(exc), 300)})"
        ) from None
    if causal and tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, causal


def _check_model_dir(model_dir: Path) -> None:
    """A folder holding a readable ``config.json`` (checked before importing transformers)."""
    import json

    config = model_dir / "config.json"
    if not model_dir.is_dir() or not config.is_file():
        raise InvalidParameterError(
            f"--model {str(model_dir)!r} is not a transformers model folder (no config.json)"
        )
    try:
        parsed = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(
            f"--model {str(model_dir)!r}: config.json is not valid JSON ({exc})"
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidParameterError(f"--model {str(model_dir)!r}: config.json is not an object")


def _texts(calibration: Path | None) -> tuple[str, list[str]]:
    from prunekit.nn.oneshot.corpus import stdlib_paragraphs

    if calibration is None:
        paras = stdlib_paragraphs(10_000, seed=0)
        return "\n\n".join(paras), paras
    check_input_file("--calibration", calibration)
    text = calibration.read_text(encoding="utf-8", errors="replace")
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    if len(paras) < 4:
        paras = [line.strip() for line in text.splitlines() if line.strip()]
    if not paras:
        raise InvalidParameterError(f"--calibration {calibration} is empty")
    return text, paras


def run_oneshot(
    model_dir: Path | None = typer.Option(
        None, "--model", "-m", help="transformers model folder (default: the bundled MiniLM)"
    ),
    calibration: Path | None = typer.Option(
        None, "--calibration", "-c",
        help="calibration text file (default: a built-in corpus of Python docstrings)",
    ),
    method: str = typer.Option("wanda", help="wanda | sparsegpt | magnitude"),
    sparsity: float | None = typer.Option(
        None, help="fraction of weights removed per layer (default 0.5; an N:M pattern sets "
        "its own)"
    ),
    pattern: str = typer.Option("unstructured", help="unstructured | 2:4 | 4:8 | N:M"),
    n_samples: int = typer.Option(64, min=1, max=100_000, help="number of calibration samples"),
    max_length: int = typer.Option(128, min=2, max=65_536, help="tokens per calibration sample"),
    batch_size: int = typer.Option(8, min=1, max=4096, help="calibration batch size"),
    owl: bool = typer.Option(False, "--owl", help="OWL non-uniform block sparsity"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="write the pruned model here (compact safetensors)"
    ),
    json_path: Path | None = typer.Option(None, "--json", help="write the report as JSON"),
    report_path: Path | None = typer.Option(
        None, "--report",
        help="write an HTML report (per-layer sparsity, quality, time, memory)"),
    threads: int = typer.Option(
        0, min=0, max=1024,
        help="torch CPU threads (0: torch's default; 1 is fastest on a busy machine)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Prune a transformers model in one shot and print how close it stays to the dense one."""
    import torch

    from prunekit.nn.oneshot.core import METHODS, oneshot
    from prunekit.nn.oneshot.corpus import builtin_sentences
    from prunekit.nn.oneshot.export import save_pruned
    from prunekit.nn.oneshot.minilm import embed_sentences, embedding_agreement
    from prunekit.nn.oneshot.tiny_lm import random_windows
    from prunekit.nn.patterns import parse_pattern

    check_option_choice("--method", method, METHODS)
    check_number("--sparsity", sparsity, 0.0, 1.0, high_open=True)
    try:
        pat = parse_pattern(pattern)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"--{exc}") from None
    if pat.kind == "nm":  # before loading the model: N:M fixes the sparsity
        fixed = 1.0 - pat.n / pat.m
        if sparsity is not None and abs(sparsity - fixed) > 1e-9:
            raise InvalidParameterError(
                f"--sparsity {sparsity:g} conflicts with --pattern {pattern}: an N:M pattern "
                f"keeps {pat.n} of every {pat.m} weights, i.e. sparsity {fixed:g}; leave "
                "--sparsity out or use --pattern unstructured")
        if owl:
            raise InvalidParameterError("--owl needs --pattern unstructured (N:M is fixed)")
    if model_dir is not None:
        _check_model_dir(model_dir)
    if calibration is not None:
        check_input_file("--calibration", calibration)
    for option, path in (("--output", output), ("--json", json_path),
                         ("--report", report_path)):
        if path is not None:
            check_output_file(option, path)
    check_distinct_outputs({"--output": output, "--json": json_path, "--report": report_path})
    if threads:
        torch.set_num_threads(threads)
    if quiet:
        from prunekit.nn.oneshot._hf import import_transformers

        import_transformers().utils.logging.disable_progress_bar()
    model, tok, causal = _load(model_dir)
    text, paras = _texts(calibration)
    dense = copy.deepcopy(model)
    rows: list[dict[str, Any]] = []
    if causal:
        ids = torch.tensor(tok(text)["input_ids"], dtype=torch.long)
        split = int(ids.numel() * 0.9)
        calib: Any = random_windows(ids[:split], n_samples, min(max_length, split - 1), seed=0)
        held_out = ids[split:][: 64 * max_length]
    else:
        calib = paras[:n_samples]
    report = oneshot(
        model, calib, method, sparsity, pattern, tokenizer=tok, max_length=max_length,
        batch_size=batch_size, owl=owl, progress=not quiet,
    )
    t0 = time.perf_counter()
    if causal:
        from prunekit.nn.oneshot.tiny_lm import perplexity

        seq = min(max_length, max(2, held_out.numel() // 4))
        rows.append({"metric": "perplexity (held-out 10%)",
                     "dense": perplexity(dense, held_out, seq_len=seq),
                     "pruned": perplexity(model, held_out, seq_len=seq)})
    else:
        sents = builtin_sentences()
        agree = embedding_agreement(
            embed_sentences(dense, tok, sents), embed_sentences(model, tok, sents), k=5
        )
        rows += [
            {"metric": "mean cosine to dense embeddings", "dense": 1.0,
             "pruned": agree["mean_cosine"]},
            {"metric": "nearest-neighbour agreement", "dense": 1.0,
             "pruned": agree["nn_agreement"]},
            {"metric": "top-5 neighbour overlap", "dense": 1.0, "pruned": agree["topk_overlap"]},
        ]
    eval_s = time.perf_counter() - t0
    typer.echo(
        f"one-shot {report.method}, pattern {report.pattern}: sparsity {report.sparsity:.4f} over "
        f"{len(report.layers)} layers ({len(report.skipped)} skipped), "
        f"{report.n_calibration_samples} calibration samples, {report.time_s:.1f} s, "
        f"peak memory +{report.peak_memory_bytes / 2**20:.1f} MiB"
    )
    typer.echo("")
    from prunekit._tables import print_table

    print_table(rows)
    files: dict[Path, Any] = {}
    if output is not None:
        files[output] = lambda tmp: save_pruned(model, tmp, report)
    if json_path is not None:
        summary = {"report": report.to_dict(), "evaluation": rows, "eval_s": eval_s}
        files[json_path] = lambda tmp: atomic_write_json(tmp, summary)
    if report_path is not None:
        files[report_path] = html_report(report, rows, eval_s, str(model_dir or "bundled MiniLM"))
    write_outputs(files)
    from prunekit._cli_common import echo_written

    echo_written(None, [p for p in (output, json_path, report_path) if p is not None])


def html_report(report: Any, rows: list[dict[str, Any]], eval_s: float, model: str) -> str:
    """The ``prunekit llm --report`` page: summary, quality, per-layer sparsity, time, memory."""
    from prunekit.report import Report, plots

    rep = Report(f"One-shot pruning of {model}",
                 subtitle=f"{report.method}, pattern {report.pattern}")
    rep.add_table([
        {"quantity": "sparsity over pruned layers", "value": f"{report.sparsity:.2%}"},
        {"quantity": "target sparsity", "value": f"{report.target_sparsity:.2%}"},
        {"quantity": "layers pruned / skipped",
         "value": f"{len(report.layers)} / {len(report.skipped)}"},
        {"quantity": "calibration samples / tokens",
         "value": f"{report.n_calibration_samples:,} / {report.n_calibration_tokens:,}"},
        {"quantity": "pruning time (s)", "value": f"{report.time_s:.2f}"},
        {"quantity": "evaluation time (s)", "value": f"{eval_s:.2f}"},
        {"quantity": "peak memory above start (MiB)",
         "value": f"{report.peak_memory_bytes / 2**20:,.1f}"},
    ], "Summary")
    rep.add_table(rows, "Quality of the pruned model (held-out)")
    if report.layers:
        rep.add_figure(plots.layer_sparsity({lay.name: lay.sparsity for lay in report.layers},
                                            title="Sparsity per layer"), "Sparsity per layer")
        rep.add_table([{"layer": lay.name, "block": lay.block,
                        "shape": "x".join(map(str, lay.shape)), "sparsity": lay.sparsity,
                        "seconds": lay.time_s, "loss": lay.loss} for lay in report.layers],
                      "Layers")
    if report.skipped:
        rep.add_table([{"skipped": n, "reason": r} for n, r in report.skipped], "Skipped")
    return rep.to_html()


def register(nn_app: typer.Typer) -> None:
    """Add ``prunekit nn oneshot``."""
    nn_app.command("oneshot", help=HELP)(run_oneshot)


def register_root(app: typer.Typer) -> None:
    """Add ``prunekit llm``, an alias of ``prunekit nn oneshot``."""
    app.command("llm", help=HELP + " Alias of 'prunekit nn oneshot'.")(run_oneshot)
