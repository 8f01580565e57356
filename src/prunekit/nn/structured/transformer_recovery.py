"""Calibration-only structured pruning of transformers: no labels, no training loop.

Three steps, each measurable on its own (``benchmarks/budget.py --parts recovery``):

* **Output-aware importance** (``criterion="fisher"``): Kwon et al., "A Fast Post-Training
  Pruning Framework for Transformers" (NeurIPS 2022) score a head / neuron by the diagonal
  Fisher information of a mask variable on it, ``sum_x (dL/dm_i)^2``. Without labels the loss is
  the model's own output distribution: a Gaussian on the output states probed by random
  directions ``r`` (``E_r[(r^T J_i)^2] = ||J_i||^2``, Hutchinson), or, for models returning
  ``logits``, the categorical likelihood of labels sampled from the model itself (the true
  Fisher). ``(1/2) F_ii`` is the second-order output change of removing unit ``i`` alone, so
  heads and neurons of every layer share one scale. ``"activation"``: the output-weight norm x
  calibration activation energy (Wanda-style); ``"l1"``/``"l2"``: weights only.
* **Global allocation** (``target_macs``): units of all layers compete for one MACs budget,
  removed greedily by importance per MAC (a head's cost counts its q/k/v/o weights and the
  ``2 * seq_len * head_dim`` attention-score MACs per token; a neuron its FFN weights); the
  reached count is checked with the FLOP counter and corrected. ``rounds > 1`` re-scores the
  survivors between removals (the removed units masked), catching interactions the diagonal
  misses.
* **Layer-wise reconstruction** of each output projection (attention output / FFN second
  layer), in forward order on the pruned model's own inputs, so that the residual-stream sum the
  projection feeds (the input of the next normalisation layer: the pre-LayerNorm block output
  of post-LN models, the residual stream of pre-LN ones) matches the dense model's on the
  calibration tokens (padding excluded). ``"scales"``: Kwon's mask tuning, one least-squares
  scale per kept head / neuron plus the bias, which absorbs the removed units' mean
  contribution (FLAP, An et al., AAAI 2024); ``"bias"``: that bias compensation alone;
  ``"weights"``: a ridge least-squares refit of the whole projection (He et al. 2017).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._validation import check_choice, check_fraction, check_positive_int, check_real
from prunekit.errors import InvalidParameterError
from prunekit.metrics import count_macs

from .handlers import get_owner
from .transformers import (
    GQA_MODES,
    PLAN_FORMAT,
    Site,
    TransformerPruneReport,
    _call,
    _choose,
    _ignored_names,
    _is_conv1d,
    _is_linear,
    _main,
    _output_projections,
    activation_scores,
    apply_transformer_plan,
    find_sites,
    finish_pruning,
    site_scores,
)

CRITERIA = ("fisher", "activation", "l1", "l2")
RECONSTRUCTIONS = ("weights", "scales", "bias", "none")
# default ridge per reconstruction, relative to the mean input energy (measured on MiniLM:
# benchmarks/budget.py; a weaker ridge on the full refit fits the calibration domain better and
# generalises worse out of it)
RIDGE = {"weights": 1.0, "scales": 1e-2, "bias": 0.0, "none": 0.0}
# the full refit's ridge grows when calibration tokens are few for the projection's inputs:
# max(RIDGE["weights"], RIDGE_PER_FEATURE * inputs / tokens) (MiniLM: 1 was best with 256
# paragraphs, ~14k tokens; 10 with 22 sentences, ~360 tokens)
RIDGE_PER_FEATURE = 3.0

# ----------------------------------------------------------------------------- inputs


def _row_mask(batch: Any, rows: int) -> torch.Tensor | None:
    """Real-token rows of a tokenizer batch flattened to ``rows`` (None: keep every row)."""
    if isinstance(batch, dict) and isinstance(batch.get("attention_mask"), torch.Tensor):
        m = batch["attention_mask"].reshape(-1).bool()
        if len(m) == rows:
            return m
    return None


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


# ----------------------------------------------------------------------------- projections


@dataclass
class _Proj:
    """An output projection reading a site's units: ``per_unit`` input features each."""

    site: str
    name: str
    n_units: int
    per_unit: int


def _projections(model: nn.Module, sites: Sequence[Site]) -> list[_Proj]:
    out = []
    for s in sites:
        per = s.unit_size if s.kind == "heads" else 1
        for name, mod in _output_projections(model, s):
            width = mod.in_features if _is_linear(mod) else mod.nx
            if width % per == 0:
                out.append(_Proj(s.name, name, width // per, per))
    return out


def _weight(mod: nn.Module) -> torch.Tensor:
    """``(out, in)`` view of a Linear / transformers Conv1D weight."""
    return mod.weight if _is_linear(mod) else mod.weight.T


# ----------------------------------------------------------------------------- importance


def _unit_masks(model: nn.Module, projs: Sequence[_Proj],
                keep: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """A mask variable (ones, requiring grad) on each site's units, multiplied into the input of
    its output projections by pre-hooks; ``keep`` (0/1 per unit) masks removed units."""
    masks: dict[str, torch.Tensor] = {}
    hooks = []
    for p in projs:
        if p.site not in masks:
            masks[p.site] = torch.ones(p.n_units, dtype=torch.float32, requires_grad=True)
        m, k = masks[p.site], keep.get(p.site)

        def pre(_m: nn.Module, args: tuple[Any, ...], m: torch.Tensor = m,
                k: torch.Tensor | None = k, rep: int = p.per_unit) -> tuple[Any, ...]:
            scale = m if k is None else m * k
            x = args[0]
            return (x * scale.to(x.dtype).repeat_interleave(rep),) + tuple(args[1:])

        hooks.append(model.get_submodule(p.name).register_forward_pre_hook(pre))
    return masks, hooks


def _probe_loss(out: Any, batch: Any, gen: torch.Generator,
                output_fn: Callable[[Any, Any], torch.Tensor] | None) -> torch.Tensor:
    """A scalar whose mask gradient, squared, estimates the Fisher diagonal (see module doc)."""
    if output_fn is None:
        logits = getattr(out, "logits", None)
        if isinstance(logits, torch.Tensor):
            flat = logits.float().reshape(-1, logits.shape[-1])
            labels = torch.multinomial(flat.detach().softmax(-1), 1, generator=gen)[:, 0]
            nll = nn.functional.cross_entropy(flat, labels, reduction="none")
            mask = _row_mask(batch, len(flat))
            return (nll if mask is None else nll[mask]).sum()
        y = _main(out)
        if y is None:
            raise InvalidParameterError(
                "criterion='fisher' needs a tensor output (last_hidden_state, logits or a "
                "tensor); pass output_fn=(output, batch) -> tensor")
        y = _rows(y.float()) if y.dim() > 1 else y.float()[:, None]
        mask = _row_mask(batch, len(y))
        y = y if mask is None else y[mask]
    else:
        y = output_fn(out, batch)
        if not isinstance(y, torch.Tensor):
            raise InvalidParameterError(
                f"output_fn must return a tensor, got {type(y).__name__}")
        y = y.float()
    r = torch.randn(y.shape, generator=gen)
    return (r * y).sum()


def fisher_scores(model: nn.Module, sites: Sequence[Site], batches: Sequence[Any], *,
                  probes: int = 2, seed: int = 0, keep: dict[str, np.ndarray] | None = None,
                  output_fn: Callable[[Any, Any], torch.Tensor] | None = None
                  ) -> dict[str, np.ndarray]:
    """Per site, the empirical Fisher diagonal of its unit masks, ``sum (dL/dm_i)^2`` over the
    calibration ``batches`` and ``probes`` random probes each (see the module doc). ``keep``
    (bool per unit) masks units already removed. ``model`` is left unchanged."""
    projs = _projections(model, sites)
    kt = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (keep or {}).items()}
    masks, hooks = _unit_masks(model, projs, kt)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    acc = {k: torch.zeros(len(m), dtype=torch.float64) for k, m in masks.items()}
    gen = torch.Generator().manual_seed(seed)
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with eval_mode(model), torch.enable_grad():
            for batch in batches:
                for _ in range(probes):
                    loss = _probe_loss(_call(model, batch), batch, gen, output_fn)
                    grads = torch.autograd.grad(loss, list(masks.values()), allow_unused=True)
                    for k, g in zip(masks, grads, strict=True):
                        if g is not None:
                            acc[k] += g.detach().double().pow(2)
    finally:
        for h in hooks:
            h.remove()
        for p, f in flags:
            p.requires_grad_(f)
    return {s.name: acc[s.name].numpy() if s.name in acc else np.zeros(s.n_units)
            for s in sites}


def unit_scores(model: nn.Module, sites: Sequence[Site], batches: Sequence[Any], criterion: str,
                **fisher: Any) -> dict[str, np.ndarray]:
    """One importance per unit and site, on one scale across sites (an output-change energy
    for ``"fisher"`` and ``"activation"``; summed weight magnitudes for ``"l1"``/``"l2"``)."""
    if criterion == "fisher":
        return fisher_scores(model, sites, batches, **fisher)
    if criterion == "activation":
        acts = activation_scores(model, list(sites), batches, len(batches))
        return {k: np.asarray(v) ** 2 for k, v in acts.items()}
    return {s.name: site_scores(model, s, criterion) for s in sites}


# ----------------------------------------------------------------------------- allocation


def _param(model: nn.Module, dotted: str) -> tuple[nn.Module, torch.Tensor | None]:
    owner, attr = get_owner(model, dotted)
    t = getattr(owner, attr, None)
    return owner, t if isinstance(t, torch.Tensor) else None


def unit_costs(model: nn.Module, site: Site, seq_len: int) -> np.ndarray:
    """MACs per token of each unit of ``site``: the weight entries of Linear / Conv1D layers it
    owns (a shared key/value head's split over its query heads), plus, for an attention head,
    ``2 * seq_len * head_dim`` for its attention scores and weighted sum."""
    per = {"units": 0.0, "groups": 0.0}
    for cut in site.cuts:
        owner, t = _param(model, cut.param)
        if t is None or not cut.param.endswith(".weight") or t.dim() != 2 or not (
                _is_linear(owner) or _is_conv1d(owner)):
            continue
        n = site.n_units if cut.space == "units" else site.n_groups
        per[cut.space] += t.numel() / n
    cost = per["units"] + per["groups"] / site.group_size
    if site.kind == "heads":
        cost += 2.0 * seq_len * site.unit_size * max(len(site.members), 1)
    return np.full(site.n_units, cost)


def _candidates(site: Site, scores: np.ndarray, costs: np.ndarray
                ) -> list[tuple[float, float, list[int]]]:
    """Removable pieces of a site: whole KV groups under grouped-query attention (every kept
    group then keeps all its query heads), otherwise single heads / neurons."""
    if site.kind == "heads" and site.group_size > 1 and site.n_groups > 1:
        g = site.group_size
        return [(float(scores[i * g:(i + 1) * g].sum()), float(costs[i * g:(i + 1) * g].sum()),
                 list(range(i * g, (i + 1) * g))) for i in range(site.n_groups)]
    return [(float(s), float(c), [i]) for i, (s, c) in enumerate(zip(scores, costs, strict=True))]


def allocate(sites: Sequence[Site], scores: dict[str, np.ndarray], costs: dict[str, np.ndarray],
             remove: float, keep: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Remove pieces of all sites, least important per MAC first, until their summed cost
    reaches ``remove`` (MACs per token); every site keeps its most important piece. ``keep``:
    units already removed stay removed (their cost counts). Returns a bool keep mask per site."""
    keep = {s.name: np.ones(s.n_units, bool) if keep is None else keep[s.name].copy()
            for s in sites}
    removed = sum(float(costs[s.name][~keep[s.name]].sum()) for s in sites)
    pool = []
    for s in sites:
        cands = [c for c in _candidates(s, scores[s.name], costs[s.name])
                 if keep[s.name][c[2]].all()]
        pool += [(sc / max(co, 1e-12), s.name, co, idx) for sc, co, idx in cands]
    pool.sort(key=lambda c: c[0])  # stable: ties go in module order
    for _, name, cost, idx in pool:
        if removed >= remove:
            break
        if keep[name].sum() <= len(idx):
            continue
        keep[name][idx] = False
        removed += cost
    return keep


def _tokens(example: Any) -> tuple[int, int]:
    """(tokens, sequence length) of an example batch, padding included (what MACs count)."""
    ids = example.get("input_ids") if isinstance(example, dict) else example
    if isinstance(ids, (tuple, list)):
        ids = ids[0]
    if not isinstance(ids, torch.Tensor) and isinstance(example, dict):
        ids = next((v for v in example.values() if isinstance(v, torch.Tensor)), None)
    if not isinstance(ids, torch.Tensor) or ids.dim() == 0:
        return 1, 1
    if ids.dim() == 1:
        return int(ids.shape[0]), int(ids.shape[0])
    return int(ids.shape[0] * ids.shape[1]), int(ids.shape[1])


# ----------------------------------------------------------------------------- reconstruction


def _is_norm(m: nn.Module) -> bool:
    name = type(m).__name__.lower()
    return "norm" in name and "batch" not in name and not any(
        True for c in m.children() if any(True for _ in c.parameters()))


def next_norms(model: nn.Module, projs: Sequence[_Proj], batch: Any) -> dict[str, str | None]:
    """Per projection, the first normalisation layer that runs after it (its input is the
    residual-stream sum the projection's output joins), found on one forward pass."""
    events: list[tuple[str, str]] = []
    hooks = []
    names = {p.name for p in projs}
    for n, m in model.named_modules():
        if n in names:
            hooks.append(m.register_forward_hook(
                lambda _m, _a, _o, n=n: events.append(("proj", n))))
        elif _is_norm(m):
            hooks.append(m.register_forward_pre_hook(
                lambda _m, _a, n=n: events.append(("norm", n))))
    try:
        with torch.no_grad(), eval_mode(model):
            _call(model, batch)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, str | None] = {}
    for i, (kind, n) in enumerate(events):
        if kind == "proj" and n not in out:
            out[n] = next((m for k, m in events[i + 1:] if k == "norm"), None)
    return out


class _Stop(Exception):
    """Ends a forward pass once the wanted tensors are captured."""


def _grab(model: nn.Module, batch: Any, proj: str, norm: str | None) -> dict[str, torch.Tensor]:
    """Input ``x`` and output ``o`` of ``proj`` and the input ``s`` of ``norm`` (if any) on one
    batch; the forward pass stops there."""
    got: dict[str, torch.Tensor] = {}

    def on_proj(_m: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        got["x"], got["o"] = args[0].detach(), out.detach()
        if norm is None:
            raise _Stop

    def on_norm(_m: nn.Module, args: tuple[Any, ...]) -> None:
        if "o" in got:
            got["s"] = args[0].detach()
            raise _Stop

    hooks = [model.get_submodule(proj).register_forward_hook(on_proj)]
    if norm is not None:
        hooks.append(model.get_submodule(norm).register_forward_pre_hook(on_norm))
    try:
        with torch.no_grad(), eval_mode(model), contextlib.suppress(_Stop):
            _call(model, batch)
    finally:
        for h in hooks:
            h.remove()
    return got


@dataclass
class _Stats:
    """Weighted least-squares sums (weight ``w`` per row) and the output metric ``metric``."""

    n: float = 0.0
    rows: int = 0
    sx: torch.Tensor | None = None
    st: torch.Tensor | None = None
    xx: torch.Tensor | None = None
    xt: torch.Tensor | None = None
    metric: torch.Tensor | None = None

    def add(self, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, grams: bool) -> None:
        w = w.to(x.dtype)[:, None]
        wx = w * x  # products in the activations' precision, sums in float64
        parts = (w.double().sum(), wx.double().sum(0), (w * t).double().sum(0),
                 (wx.T @ x).double() if grams else torch.zeros(()),
                 (wx.T @ t).double() if grams else torch.zeros(()))
        if self.sx is None:
            self.n, self.sx, self.st, self.xx, self.xt = parts
        else:
            for k, v in zip(("n", "sx", "st", "xx", "xt"), parts, strict=True):
                setattr(self, k, getattr(self, k) + v)
        self.rows += len(x)

    def centred(self, bias: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x mean, target mean, X^T X, X^T T), centred when a bias is fitted too."""
        mx, mt = self.sx / self.n, self.st / self.n
        if not bias:
            return torch.zeros_like(mx), torch.zeros_like(mt), self.xx, self.xt
        n = self.n
        return mx, mt, self.xx - n * torch.outer(mx, mx), self.xt - n * torch.outer(mx, mt)


def _norm_view(norm: nn.Module | None, width: int) -> tuple[bool, torch.Tensor | None]:
    """(centres, gain) of a normalisation layer over ``width`` features: LayerNorm-like layers
    remove the per-token mean, RMSNorm-like ones do not; ``gain`` its 1-D weight, if any."""
    if norm is None:
        return False, None
    name = type(norm).__name__.lower()
    centres = isinstance(norm, nn.LayerNorm) or ("layernorm" in name and "rms" not in name
                                                 and getattr(norm, "bias", None) is not None)
    g = getattr(norm, "weight", None)
    gain = g.detach().double() if isinstance(g, torch.Tensor) and g.shape == (width,) else None
    return centres, gain


_CACHE_BYTES = 1 << 30  # dense targets kept in memory up to this size, else recomputed


def _dense_captures(dense: nn.Module, projs: Sequence[_Proj], norms: dict[str, str | None],
                    batches: Sequence[Any]) -> list[dict[str, dict[str, torch.Tensor]]] | None:
    """Per batch, per projection: the next-norm input ``s`` it joins (or its dense output ``o``
    when there is no such residual sum of its shape), from one
    dense pass per batch; None when they would take more than ``_CACHE_BYTES``."""
    width = {p.name: _weight(dense.get_submodule(p.name)).shape[0] for p in projs}
    size = sum(_tokens(b)[0] for b in batches) * sum(width.values()) * 4
    if size > _CACHE_BYTES:
        return None
    got: dict[str, dict[str, torch.Tensor]] = {}
    pending: list[str] = []

    def on_proj(_m: nn.Module, _a: Any, o: torch.Tensor, n: str) -> None:
        got[n] = {"o": o.detach()}
        pending.append(n)

    def on_norm(_m: nn.Module, args: tuple[Any, ...], z: str) -> None:
        for n in [n for n in pending if norms.get(n) == z]:
            if args[0].shape == got[n]["o"].shape:  # the residual sum: o is not needed
                got[n] = {"s": args[0].detach()}
            pending.remove(n)

    hooks = [dense.get_submodule(p.name).register_forward_hook(
        lambda m, a, o, n=p.name: on_proj(m, a, o, n)) for p in projs]
    hooks += [dense.get_submodule(z).register_forward_pre_hook(
        lambda m, a, z=z: on_norm(m, a, z)) for z in {z for z in norms.values() if z}]
    out: list[dict[str, dict[str, torch.Tensor]]] = []
    try:
        with torch.no_grad(), eval_mode(dense):
            for batch in batches:
                got, pending[:] = {}, []
                _call(dense, batch)
                out.append(got)
    finally:
        for h in hooks:
            h.remove()
    return out


def _collect(dense: nn.Module, pruned: nn.Module, proj: _Proj, norm: str | None,
             batches: Sequence[Any],
             cached: Sequence[dict[str, dict[str, torch.Tensor]]] | None = None,
             grams: bool = True) -> _Stats | None:
    """Least-squares statistics for ``proj``: its pruned inputs ``x`` and the target of its
    output, the dense residual sum minus the pruned residual (``s_d - (s_p - o_p)``). With a
    normalisation layer next, the error is measured as that layer sees it: tokens weighted by
    ``1 / sigma_t^2`` of the dense sum, features by the layer's gain, the per-token mean removed
    for LayerNorm (its first-order effect, without the rank-one term along the token itself)."""
    st = _Stats()
    centres, gain = False, None
    for i, batch in enumerate(batches):
        p = _grab(pruned, batch, proj.name, norm)
        d = cached[i].get(proj.name, {}) if cached is not None else \
            _grab(dense, batch, proj.name, norm)
        if "x" not in p or not ("o" in d or "s" in d):
            return None
        res = norm is not None and "s" in p and "s" in d and \
            p["s"].shape == p["o"].shape == d["s"].shape
        if not res and "o" not in d:
            return None
        t = d["s"] - (p["s"] - p["o"]) if res else d["o"]
        x, t = _rows(p["x"]), _rows(t)
        w = torch.ones(len(x), dtype=torch.float64)
        if res:
            centres, gain = _norm_view(dense.get_submodule(norm), t.shape[-1])
            s = _rows(d["s"]).double()
            s = s - s.mean(-1, keepdim=True) if centres else s
            w = 1.0 / s.pow(2).mean(-1).clamp_min(1e-12)
        mask = _row_mask(batch, len(x))
        if mask is not None:
            x, t, w = x[mask], t[mask], w[mask]
        if len(x):
            st.add(x, t.to(x.dtype), w, grams)
    if not st.n:
        return None
    dim = st.st.shape[0]
    m = torch.eye(dim, dtype=torch.float64)
    if centres:
        m -= 1.0 / dim
    if gain is not None:
        m = m @ torch.diag(gain.pow(2)) @ m
    st.metric = m
    return st


def _solve(mod: nn.Module, proj: _Proj, st: _Stats, how: str, ridge: float | None) -> bool:
    """Fit ``mod`` (in place) to the statistics: per-unit scales, bias or all weights."""
    has_bias = getattr(mod, "bias", None) is not None
    if how == "bias" and not has_bias:
        return False
    w0 = _weight(mod).detach().double()  # (out, in)
    if how == "bias":
        mx, mt, xx, xt = st.sx / st.n, st.st / st.n, None, None
    else:
        mx, mt, xx, xt = st.centred(has_bias)
    if how == "weights":
        if ridge is None:
            ridge = max(RIDGE["weights"], RIDGE_PER_FEATURE * w0.shape[1] / max(st.rows, 1))
        lam = ridge * float(torch.diagonal(xx).mean().clamp_min(1e-12))
        a = xx + lam * torch.eye(len(xx), dtype=xx.dtype)
        w = torch.linalg.solve(a, xt + lam * w0.T).T
    elif how == "scales":
        f = w0.shape[1]
        agg = torch.zeros(f, proj.n_units, dtype=torch.float64)
        agg[torch.arange(f), torch.arange(f) // proj.per_unit] = 1.0
        mw = st.metric @ w0
        g = agg.T @ (xx * (w0.T @ mw)) @ agg
        r = agg.T @ (mw.T * xt).sum(1)
        lam = ridge * float(torch.diagonal(g).mean().clamp_min(1e-12))
        s = torch.linalg.solve(g + lam * torch.eye(len(g), dtype=g.dtype), r + lam)
        w = w0 * (agg @ s)[None, :]
    else:
        w = w0
    if not torch.isfinite(w).all():
        return False
    with torch.no_grad():
        if how != "bias":
            _weight(mod).copy_(w.to(mod.weight.dtype))
        if has_bias:
            b = mt - w @ mx
            if torch.isfinite(b).all():
                mod.bias.copy_(b.to(mod.bias.dtype))
    return True


@torch.no_grad()
def reconstruct_transformer(dense: nn.Module, pruned: nn.Module, sites: Sequence[Site],
                            batches: Sequence[Any], *, how: str = "weights",
                            ridge: float | None = None) -> list[str]:
    """Refit, in place and in forward order, the output projections of ``pruned``'s ``sites``
    (``how``: ``"scales"``, ``"bias"`` or ``"weights"``) so that the residual sum each feeds
    matches ``dense``'s on the calibration ``batches`` (see the module doc). ``dense`` is the
    unpruned model, with the same module names. ``ridge`` (relative to the mean input energy):
    default :data:`RIDGE`, for ``"weights"`` raised when the calibration tokens are few for
    the projection's inputs (:data:`RIDGE_PER_FEATURE`). Returns the projections refitted."""
    check_choice("how", how, RECONSTRUCTIONS[:3])
    ridge = RIDGE[how] if ridge is None and how != "weights" else ridge
    projs = _projections(pruned, sites)
    norms = next_norms(dense, projs, batches[0])
    order = {n: i for i, n in enumerate(norms)}
    cached = _dense_captures(dense, [p for p in projs if p.name in norms], norms, batches)
    done = []
    for proj in sorted(projs, key=lambda p: order.get(p.name, 1 << 30)):
        if proj.name not in norms:
            continue  # never ran on the calibration inputs
        st = _collect(dense, pruned, proj, norms[proj.name], batches, cached,
                      grams=how != "bias")
        if st is not None and _solve(pruned.get_submodule(proj.name), proj, st, how, ridge):
            done.append(proj.name)
    return done


# ----------------------------------------------------------------------------- entry point


def _records(sites: Sequence[Site], keep: dict[str, np.ndarray]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records, layers = [], []
    for s in sites:
        kept = [int(i) for i in np.flatnonzero(keep[s.name])]
        records.append({"name": s.name, "kind": s.kind, "units": s.n_units, "keep": kept})
        row = {"name": s.name, "kind": s.kind, "layout": s.layout, "before": s.n_units,
               "after": len(kept)}
        if s.group_size > 1:
            row.update(mode="groups", kv_before=s.n_groups,
                       kv_after=len({i // s.group_size for i in kept}))
        layers.append(row)
    return records, layers


def _global_keep(work: nn.Module, sites: list[Site], batches: list[Any], example: Any,
                 target: float, criterion: str, rounds: int, fisher: dict[str, Any],
                 ignored: Sequence[str | nn.Module] = ()
                 ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Kept units for a MACs target, checked with the FLOP counter and corrected."""
    tokens, seq_len = _tokens(example)
    costs = {s.name: unit_costs(work, s, seq_len) for s in sites}
    total = count_macs(work, example)
    need = (1.0 - target) * total / tokens  # MACs per token to remove
    rounds = rounds if criterion == "fisher" else 1
    keep = None
    for r in range(1, rounds + 1):
        fkeep = None if keep is None else {k: v.astype(np.float32) for k, v in keep.items()}
        scores = unit_scores(work, sites, batches, criterion, keep=fkeep, **fisher) \
            if criterion == "fisher" else unit_scores(work, sites, batches, criterion)
        keep = allocate(sites, scores, costs, need * r / rounds, keep)
    plan_ignored = sorted(_ignored_names(work, ignored))

    def macs(k: dict[str, np.ndarray]) -> int:
        rec, _ = _records(sites, k)
        return count_macs(apply_transformer_plan(
            work, {"format": PLAN_FORMAT, "sites": rec, "ignored": plan_ignored}), example)

    after = macs(keep)
    per = float(tokens)  # counted MACs per estimated MAC per token, measured below
    for _ in range(12):  # the cost model is per token; the counter has the last word
        removed = sum(float(costs[s.name][~keep[s.name]].sum()) for s in sites)
        if removed > 0 and total > after:
            per = (total - after) / removed
        if after <= target * total:
            break
        new = allocate(sites, scores, costs, removed + (after - target * total) / per, keep)
        if all(np.array_equal(new[k], keep[k]) for k in keep):
            break  # nothing left to remove
        keep, after = new, macs(new)
    if after > target * total:
        raise InvalidParameterError(
            f"target_macs={target:g} is not reachable: with at least one head / neuron kept in "
            f"every layer the model keeps {after / total:.3f} of its MACs; ask for more")
    filled = refill(sites, scores, costs, keep, (target * total - after) / per)
    if filled is not keep:
        trial = macs(filled)
        if trial <= target * total:
            keep, after = filled, trial
    notes = [f"global allocation to target_macs={target:g}: {after:,} of {total:,} MACs kept "
             f"({total / max(after, 1):.3f}x) on the example ({tokens} tokens)"]
    return keep, notes


def refill(sites: Sequence[Site], scores: dict[str, np.ndarray], costs: dict[str, np.ndarray],
           keep: dict[str, np.ndarray], slack: float) -> dict[str, np.ndarray]:
    """Put removed pieces back, most important per MAC first, while their cost fits in
    ``slack`` (MACs per token): the greedy removal overshoots by up to one piece."""
    pool = []
    for s in sites:
        pool += [(sc / max(co, 1e-12), s.name, co, idx)
                 for sc, co, idx in _candidates(s, scores[s.name], costs[s.name])
                 if not keep[s.name][idx].any()]
    out = None
    for _, name, cost, idx in sorted(pool, key=lambda c: -c[0]):
        if cost <= slack:
            out = out or {k: v.copy() for k, v in keep.items()}
            out[name][idx] = True
            slack -= cost
    return keep if out is None else out


def prune_transformer_calibrated(
    model: nn.Module,
    data: Iterable[Any],
    *,
    head_ratio: float = 0.0,
    ffn_ratio: float = 0.0,
    target_macs: float | None = None,
    criterion: str = "fisher",
    reconstruction: str = "weights",
    reconstruct_weights: bool | None = None,
    max_inputs: int = 256,
    ridge: float | None = None,
    probes: int = 2,
    rounds: int = 1,
    output_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    example_inputs: Any = None,
    ignored_layers: Sequence[str | nn.Module] = (),
    gqa: str = "auto",
    seed: int = 0,
) -> tuple[nn.Module, TransformerPruneReport]:
    """Remove attention heads and FFN neurons of a transformer with unlabelled calibration
    ``data`` only (see the module doc); return ``(pruned_copy, report)``; ``model`` is left
    unchanged.

    ``data``: tokenizer outputs (dicts of tensors; ``attention_mask`` marks padding, which is
    never fitted), input-id tensors or ``(inputs, ...)`` tuples; at most ``max_inputs`` rows.
    ``target_macs``: fraction of the model's MACs (on ``example_inputs``, default the first
    calibration batch) to keep, allocated globally; else ``head_ratio`` / ``ffn_ratio`` remove
    that fraction of every layer's heads / neurons (``gqa`` as in ``prune_transformer``; the
    global allocation removes whole KV groups under grouped-query attention).
    ``criterion``: ``"fisher"`` (``probes`` random probes per batch, ``rounds`` re-scoring
    rounds, ``output_fn(output, batch) -> tensor`` the output to preserve, default the output
    states of real tokens / the model's own label distribution for ``logits``),
    ``"activation"``, ``"l1"`` or ``"l2"``.
    ``reconstruction``: ``"weights"`` (ridge least-squares refit of each output projection; the
    best measured on MiniLM), ``"scales"`` (Kwon's mask tuning), ``"bias"`` (bias compensation
    only) or ``"none"``; ``ridge`` is relative to the mean input energy: the pull towards the
    current weights, or of the scales towards 1 (default :data:`RIDGE`; for ``"weights"``
    raised when the calibration tokens are few, see :func:`reconstruct_transformer`).
    ``reconstruct_weights`` (older spelling): True means ``"weights"``, False ``"none"``.
    """
    t0 = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("criterion", criterion, CRITERIA)
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    check_choice("gqa", gqa, GQA_MODES)
    if reconstruct_weights is not None:
        if not isinstance(reconstruct_weights, bool):
            raise InvalidParameterError("reconstruct_weights must be True, False or None")
        reconstruction = "weights" if reconstruct_weights else "none"
    head_ratio = check_fraction("head_ratio", head_ratio, low=0.0, high=1.0)
    ffn_ratio = check_fraction("ffn_ratio", ffn_ratio, low=0.0, high=1.0)
    if target_macs is not None:
        target_macs = check_fraction("target_macs", target_macs, low=0.0, high=1.0,
                                     low_inclusive=False, high_inclusive=True)
        if head_ratio or ffn_ratio:
            raise InvalidParameterError(
                "pass either target_macs= (global allocation) or head_ratio=/ffn_ratio= "
                "(uniform per layer), not both")
    max_inputs = check_positive_int("max_inputs", max_inputs)
    probes = check_positive_int("probes", probes)
    rounds = check_positive_int("rounds", rounds)
    if ridge is not None:
        ridge = check_real("ridge", ridge, minimum=0.0)
    if output_fn is not None and not callable(output_fn):
        raise InvalidParameterError("output_fn must be a callable (output, batch) -> tensor")
    from .recovery import calibration_inputs  # recovery re-exports this module: import late

    batches = calibration_inputs(data, max_inputs)
    example = batches[0] if example_inputs is None else example_inputs

    work = copy.deepcopy(model)
    stacks: list[str] = []
    sites = find_sites(work, ignored_layers, stacks)
    fisher = {"probes": probes, "seed": seed, "output_fn": output_fn}
    notes: list[str] = []
    if target_macs is not None:
        keep, notes = _global_keep(work, sites, batches, example, target_macs, criterion,
                                   rounds, fisher, ignored_layers)
        records, layers = _records(sites, keep)
    else:
        scores = unit_scores(work, sites, batches, criterion, **fisher) \
            if criterion == "fisher" else unit_scores(work, sites, batches, criterion)
        records, layers = [], []
        for s in sites:
            kept, row = _choose(s, scores[s.name], head_ratio if s.kind == "heads"
                                else ffn_ratio, None, gqa)
            records.append({"name": s.name, "kind": s.kind, "units": s.n_units, "keep": kept})
            layers.append(row)
    ratios = (head_ratio, ffn_ratio) if target_macs is None else (0.0, 0.0)
    pruned, rep = finish_pruning(model, work, sites, records, layers, criterion=criterion,
                                 ratios=ratios, ignored_layers=ignored_layers, stacks=stacks,
                                 example_inputs=example)
    rep.notes += notes
    if reconstruction != "none":
        done = reconstruct_transformer(work, pruned, find_sites(work, ignored_layers),
                                       batches, how=reconstruction, ridge=ridge)
        shrunk = {r["name"] for r in rep.plan["sites"] if len(r["keep"]) < r["units"]}
        n_shrunk = sum(1 for p in _projections(work, sites) if p.site in shrunk
                       and p.name in done)
        rep.notes.append(f"least-squares reconstruction of {n_shrunk} shrunk and "
                         f"{len(done) - n_shrunk} other projections ({reconstruction}) on "
                         f"{sum(_tokens(b)[0] for b in batches)} calibration tokens")
    rep.notes.append(f"calibration time {time.perf_counter() - t0:.2f} s")
    pruned.train(model.training)
    return pruned, rep
