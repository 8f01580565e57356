"""Hugging Face structural pruning: MiniLM quality/speed and every supported layout.

Part 1 (pretrained, the bundled all-MiniLM-L6-v2): ``prune_transformer`` with ``criterion="l2"``
at head_ratio = ffn_ratio = 0.25 and 0.5. Parameters, MACs (one 128-token sequence), batch-8 x
128-token CPU latency (median of interleaved dense/pruned runs), and the agreement of sentence
embeddings with the dense model on the built-in sentences (mean cosine, nearest-neighbour
agreement), before and after a short recovery by ``distill_hidden_states`` (cosine loss on
mean-pooled embeddings, trained on stdlib docstring paragraphs only, so evaluation is on text it
never saw); also ``criterion="activation"`` at the same ratio (calibrated on a few of those
paragraph batches, no recovery). Then the ``save_pruned_pretrained`` /
``load_pruned_pretrained`` round trip: bytes on disk and max |difference| of the reloaded
model's embeddings.

Part 2 (tiny random configs, offline): every layout ``prune_transformer`` recognises by
structure (Llama GQA in both modes, Mistral, Qwen2, Qwen3, DistilBERT, T5, gated T5, OPT,
GPT-NeoX, BART, ViT, CLIP vision). The weights of the heads/neurons to be removed are zeroed
first, so the pruned output must equal the dense one (max |diff| column, eager and SDPA
attention); then the save/load round trip, and whether the rewritten config lets plain
``from_pretrained`` load it.

Usage: OMP_NUM_THREADS=1 python benchmarks/structured_hf.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from prunekit._io import atomic_write_json
from prunekit.errors import PrunekitError
from prunekit.metrics import markdown_table, measure_latency_pair

RESULTS = Path(__file__).parent / "results" / "structured_hf.json"
V = 50


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ----------------------------------------------------------------------------- part 1


def minilm_part(quick: bool, repeats: int) -> list[dict[str, Any]]:
    try:
        from prunekit.nn.distill import distill_hidden_states
        from prunekit.nn.oneshot.corpus import builtin_sentences, stdlib_paragraphs
        from prunekit.nn.oneshot.minilm import (
            embed_sentences,
            embedding_agreement,
            load_minilm,
            minilm_path,
        )
        from prunekit.nn.structured import (
            load_pruned_pretrained,
            prune_transformer,
            save_pruned_pretrained,
        )

        model, tok = load_minilm()
    except PrunekitError as exc:
        print(f"  MiniLM part skipped: {exc}", file=sys.stderr)
        return []
    sents = builtin_sentences()
    dense = embed_sentences(model, tok, sents)
    enc = tok((sents * 2)[:8], padding="max_length", truncation=True, max_length=128,
              return_tensors="pt")
    x = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    x1 = {k: v[:1] for k, v in x.items()}
    steps, bs, max_len = (4, 8, 32) if quick else (80, 16, 64)
    paras = stdlib_paragraphs(steps * bs, seed=0)
    train = [dict(tok(paras[i:i + bs], padding=True, truncation=True, max_length=max_len,
                      return_tensors="pt")) for i in range(0, len(paras), bs)]
    dense_bytes = (minilm_path() / "model.safetensors").stat().st_size
    rows = []
    for ratio in (0.25, 0.5):
        t0 = time.perf_counter()
        slim, rep = prune_transformer(model, head_ratio=ratio, ffn_ratio=ratio, criterion="l2",
                                      example_inputs=x1)
        t_prune = time.perf_counter() - t0
        before = embedding_agreement(dense, embed_sentences(slim, tok, sents))
        t0 = time.perf_counter()
        act, _ = prune_transformer(model, head_ratio=ratio, ffn_ratio=ratio,
                                   criterion="activation", data=train[:4], example_inputs=x1)
        t_act = time.perf_counter() - t0
        by_act = embedding_agreement(dense, embed_sentences(act, tok, sents))
        la, lb = measure_latency_pair(model, slim, x, warmup=1, repeats=repeats)
        rec = copy.deepcopy(slim)
        t0 = time.perf_counter()
        losses = distill_hidden_states(rec, model, train, steps=steps, lr=5e-4, loss="cosine",
                                       dropout=False)
        t_distil = time.perf_counter() - t0
        after = embedding_agreement(dense, embed_sentences(rec, tok, sents))
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            path = save_pruned_pretrained(rec, Path(d) / "m", tokenizer=tok, report=rep)
            t_save = time.perf_counter() - t0
            t0 = time.perf_counter()
            back = load_pruned_pretrained(path)
            t_load = time.perf_counter() - t0
            saved = (path / "model.safetensors").stat().st_size
            diff = float((embed_sentences(back, tok, sents)
                          - embed_sentences(rec, tok, sents)).abs().max())
        rows.append({
            "ratio": ratio, "heads": f"{rep.heads_before}->{rep.heads_after}",
            "ffn": f"{rep.neurons_before}->{rep.neurons_after}",
            "params_M": rep.params_after / 1e6, "params_x": rep.params_before / rep.params_after,
            "macs_x": (rep.macs_before or 0) / max(rep.macs_after or 1, 1),
            "dense_lat_ms": la.median_s * 1e3, "lat_ms": lb.median_s * 1e3,
            "lat_x": la.median_s / lb.median_s, "prune_s": t_prune,
            "cos_before": before["mean_cosine"], "nn_before": before["nn_agreement"],
            "cos_after": after["mean_cosine"], "nn_after": after["nn_agreement"],
            "cos_activation": by_act["mean_cosine"], "nn_activation": by_act["nn_agreement"],
            "prune_activation_s": t_act, "activation_batches": len(train[:4]),
            "distil_s": t_distil, "distil_steps": steps, "distil_batch": bs,
            "distil_max_length": max_len, "distil_loss_first": losses[0],
            "distil_loss_last": losses[-1], "save_s": t_save, "load_s": t_load,
            "weights_bytes": saved, "dense_weights_bytes": dense_bytes,
            "roundtrip_max_abs": diff,
        })
        print(f"  MiniLM ratio {ratio}: done", file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------- part 2


def _configs(tr: Any) -> dict[str, tuple[Any, str]]:
    dec = {"vocab_size": V, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
           "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    t5 = {"vocab_size": V, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
          "num_decoder_layers": 2, "num_heads": 4, "dropout_rate": 0.0,
          "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}
    vis = {"image_size": 16, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 64}
    return {
        "llama (GQA, groups)": (tr.LlamaConfig(**dec), "groups"),
        "llama (GQA, heads)": (tr.LlamaConfig(**dec), "heads"),
        "mistral (GQA)": (tr.MistralConfig(**dec), "groups"),
        "qwen2 (GQA, bias)": (tr.Qwen2Config(**dec), "heads"),
        "qwen3 (q_norm)": (tr.Qwen3Config(**dec, head_dim=8), "groups"),
        "distilbert": (tr.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4,
                                           hidden_dim=64, max_position_embeddings=64), "auto"),
        "t5": (tr.T5Config(**t5), "auto"),
        "t5 (gated)": (tr.T5Config(**t5, feed_forward_proj="gated-gelu"), "auto"),
        "opt": (tr.OPTConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                             num_attention_heads=4, max_position_embeddings=64,
                             word_embed_proj_dim=32), "auto"),
        "gpt-neox": (tr.GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, intermediate_size=64,
                                      max_position_embeddings=64), "auto"),
        "bart": (tr.BartConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
                               encoder_attention_heads=4, decoder_attention_heads=4,
                               encoder_ffn_dim=64, decoder_ffn_dim=64,
                               max_position_embeddings=64), "auto"),
        "vit": (tr.ViTConfig(**vis), "auto"),
        "clip vision": (tr.CLIPVisionConfig(**vis), "auto"),
    }


def _inputs(model: Any) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if hasattr(model.config, "image_size"):  # vision encoder
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}
    ids = torch.randint(3, V, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    if model.config.is_encoder_decoder:
        x["decoder_input_ids"] = torch.randint(3, V, (2, 5), generator=g)
    return x


def _zero(model: Any, gqa: str) -> float:
    """Zero the weights of what l1 pruning at (returned head_ratio, ffn_ratio 0.25) removes."""
    from prunekit.nn.structured.transformers import _positions, find_sites

    ratio = 0.25
    with torch.no_grad():
        for site in find_sites(model):
            gs = site.group_size
            if site.kind == "neurons":
                units, groups = list(range(10, 10 + site.n_units // 4)), []
            elif gs == 1:
                units, groups = [1], []
            elif gqa == "groups":
                units, groups, ratio = list(range(gs, 2 * gs)), [1], 0.5
            else:
                units, groups, ratio = [g * gs + 1 for g in range(site.n_groups)], [], 0.5
            for cut in site.cuts:
                idx, n = (units, site.n_units) if cut.space == "units" else (groups, site.n_groups)
                if idx:
                    owner, attr = cut.param.rsplit(".", 1)
                    t = getattr(model.get_submodule(owner), attr)
                    t.index_fill_(cut.dim, _positions(idx, n, cut.size or site.unit_size,
                                                      cut.chunks), 0)
    return ratio


def _main_out(model: Any, x: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**x).last_hidden_state


def layouts_part() -> list[dict[str, Any]]:
    from prunekit.nn.oneshot._hf import import_transformers
    from prunekit.nn.structured import (
        load_pruned_pretrained,
        prune_transformer,
        save_pruned_pretrained,
    )
    from prunekit.nn.structured.hf_io import PRUNED_FILE

    tr = import_transformers()
    rows = []
    for name, (cfg, gqa) in _configs(tr).items():
        diffs = {}
        for attn in ("eager", "sdpa"):
            torch.manual_seed(0)
            m = tr.AutoModel.from_config(copy.deepcopy(cfg), attn_implementation=attn).eval()
            ratio = _zero(m, gqa)
            x = _inputs(m)
            t0 = time.perf_counter()
            p, rep = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l1",
                                       gqa=gqa, example_inputs=x)
            t_prune = time.perf_counter() - t0
            diffs[attn] = float((_main_out(p, x) - _main_out(m, x)).abs().max())
        with tempfile.TemporaryDirectory() as d:
            path = save_pruned_pretrained(p, Path(d) / "m", report=rep)
            back = load_pruned_pretrained(path)
            rt = float((_main_out(back, x) - _main_out(p, x)).abs().max())
            plain = json.loads((path / PRUNED_FILE).read_text())["config_pruned"]
        modes = sorted({r["mode"] for r in rep.layers if "mode" in r})
        rows.append({
            "layout": name, "sites": len(rep.layers),
            "heads": f"{rep.heads_before}->{rep.heads_after}",
            "ffn": f"{rep.neurons_before}->{rep.neurons_after}",
            "gqa_mode": ",".join(modes) or "-",
            "params_x": rep.params_before / rep.params_after,
            "max_diff_eager": diffs["eager"], "max_diff_sdpa": diffs["sdpa"],
            "roundtrip_max_abs": rt, "plain_from_pretrained": plain, "prune_ms": t_prune * 1e3,
        })
    print("  layouts: done", file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 15)
    t0 = time.perf_counter()
    minilm = minilm_part(args.quick, repeats)
    layouts = layouts_part()
    wall = time.perf_counter() - t0

    lines = [f"Hugging Face structural pruning (prune_transformer), torch {torch.__version__}, "
             f"{args.threads} thread(s), latency median of {repeats} interleaved runs", ""]
    if minilm:
        cols = [("params (M)", "params_M", ".2f"), ("params x", "params_x", ".2f"),
                ("MACs x", "macs_x", ".2f"), ("b8 ms", "lat_ms", ".0f"), ("b8 x", "lat_x", ".2f"),
                ("cos pruned", "cos_before", ".3f"), ("NN pruned", "nn_before", ".2f"),
                ("cos distilled", "cos_after", ".3f"), ("NN distilled", "nn_after", ".2f"),
                ("cos activation", "cos_activation", ".3f"),
                ("NN activation", "nn_activation", ".2f"),
                ("prune s", "prune_s", ".1f"), ("distil s", "distil_s", ".0f"),
                ("MB saved", "weights_bytes", None), ("reload max|d|", "roundtrip_max_abs", ".1e")]
        table = []
        for r in minilm:
            row = {"ratio": f"{r['ratio']:.2f}", "heads": r["heads"], "FFN": r["ffn"]}
            for t, k, f in cols:
                row[t] = f"{r[k] / 1e6:.1f}" if f is None else format(r[k], f)
            table.append(row)
        d = minilm[0]
        lines += [f"all-MiniLM-L6-v2, criterion l2, head_ratio = ffn_ratio = ratio; latency batch "
                  f"8 x 128 tokens (dense {d['dense_lat_ms']:.0f} ms); MACs per 128-token "
                  f"sequence; cos / NN: embedding agreement with the dense model on the built-in "
                  f"sentences", "", markdown_table(table, right=[t for t, _, _ in cols]),
                  "", f"Recovery: distill_hidden_states, {d['distil_steps']} AdamW steps (lr "
                  f"5e-4, cosine loss on mean-pooled embeddings, no dropout), batch "
                  f"{d['distil_batch']} x <= {d['distil_max_length']} tokens of stdlib docstring "
                  f"paragraphs. Dense weights {d['dense_weights_bytes'] / 1e6:.1f} MB; 'MB "
                  f"saved' / 'reload' are save_pruned_pretrained + load_pruned_pretrained of the "
                  f"distilled model. 'activation': the same ratio with criterion='activation' "
                  f"(calibrated on {d['activation_batches']} of those batches), no distillation.",
                  ""]
    lcols = [("params x", "params_x", ".2f"), ("max|d| eager", "max_diff_eager", ".1e"),
             ("max|d| sdpa", "max_diff_sdpa", ".1e"), ("reload max|d|", "roundtrip_max_abs", ".1e"),
             ("prune ms", "prune_ms", ".0f")]
    lines += ["Layouts (tiny random configs, zeroed units removed: max|d| must be ~0)", "",
              markdown_table([{"layout": r["layout"], "sites": r["sites"], "heads": r["heads"],
                               "FFN": r["ffn"], "GQA mode": r["gqa_mode"],
                               **{t: format(r[k], f) for t, k, f in lcols},
                               "plain from_pretrained": "yes" if r["plain_from_pretrained"]
                               else "no (load_pruned_pretrained)"} for r in layouts],
                             right=[t for t, _, _ in lcols] + ["sites"])]
    lines.append(f"\nWall time {wall:.0f} s.")
    print("\n".join(lines))
    out = RESULTS.with_name("structured_hf_quick.json") if args.quick else RESULTS
    atomic_write_json(out, {"quick": args.quick, "threads": args.threads, "repeats": repeats,
                            "torch": torch.__version__, "python": platform.python_version(),
                            "minilm": minilm, "layouts": layouts, "wall_s": wall})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
