"""A small GPT-2-style causal LM trained in seconds on local text, to measure perplexity.

Character-level tokenizer (vocabulary from the training text), transformers'
``GPT2LMHeadModel`` configured tiny (Radford et al. 2019 architecture), AdamW training on
random windows, and perplexity over non-overlapping windows of held-out text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from prunekit._progress import ProgressBar
from prunekit._validation import check_positive_int
from prunekit.nn.oneshot._hf import import_transformers


@dataclass(frozen=True)
class CharTokenizer:
    """Characters ↔ ids; unknown characters map to id 0 (``"\\0"``, reserved)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Vocabulary: ``"\\0"`` then the sorted distinct characters of ``text``."""
        return cls("\0" + "".join(sorted(set(text) - {"\0"})))

    @property
    def vocab_size(self) -> int:
        """Number of ids."""
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Text → 1-D ``long`` tensor of ids."""
        index = {c: i for i, c in enumerate(self.chars)}
        return torch.tensor([index.get(c, 0) for c in text], dtype=torch.long)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Ids → text."""
        return "".join(self.chars[int(i)] for i in ids)


def build_tiny_gpt2(
    vocab_size: int, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4,
    n_positions: int = 128, seed: int = 0,
) -> nn.Module:
    """A freshly initialised ``GPT2LMHeadModel`` of the given (small) size, eager attention."""
    transformers = import_transformers()
    config = transformers.GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
        n_head=n_head, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    return model


def random_windows(ids: torch.Tensor, n: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """``n`` random windows of ``seq_len`` tokens from a 1-D id tensor, shape ``(n, seq_len)``."""
    if ids.numel() <= seq_len:
        raise ValueError(f"text of {ids.numel()} tokens is too short for seq_len={seq_len}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - seq_len, (n,), generator=g)
    return torch.stack([ids[s : s + seq_len] for s in starts.tolist()])


def train_lm(
    model: nn.Module, ids: torch.Tensor, *, steps: int = 300, seq_len: int = 64,
    batch_size: int = 16, lr: float = 3e-3, seed: int = 0, progress: bool = False,
) -> list[float]:
    """Train a causal LM on random windows of ``ids`` with AdamW + cosine decay; return losses."""
    steps = check_positive_int("steps", steps)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)

    def factor(step: int) -> float:  # linear warm-up, then cosine decay to 10 %
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    losses = []
    with ProgressBar(steps, "training tiny LM", enabled=progress) as bar:
        for _ in range(steps):
            starts = torch.randint(0, ids.numel() - seq_len - 1, (batch_size,), generator=g)
            batch = torch.stack([ids[s : s + seq_len] for s in starts.tolist()])
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.advance()
    model.eval()
    return losses


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor, *, seq_len: int = 64, batch_size: int = 32
               ) -> float:
    """Perplexity ``exp(mean NLL)`` over non-overlapping ``seq_len`` windows of ``ids``."""
    model.eval()
    n = (ids.numel() - 1) // seq_len
    windows = ids[: n * seq_len].reshape(n, seq_len)
    total, count = 0.0, 0
    for i in range(0, n, batch_size):
        batch = windows[i : i + batch_size]
        logits = model(input_ids=batch).logits[:, :-1]
        nll = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
        )
        total += float(nll)
        count += batch[:, 1:].numel()
    return math.exp(total / max(count, 1))
