"""Weight-importance criteria behind one interface: higher score = more important = kept.

Element-score functions (pure or data-driven) are importable on their own — the structured
pruner reduces them over groups:

* :func:`magnitude_scores` — ``|w|`` (L1) or ``w^2`` (L2) (Han et al. 2015).
* :func:`random_scores` — seeded uniform noise (the sanity baseline; Liu et al. 2019, "Rethinking
  the value of network pruning").
* :func:`taylor_scores` — first-order Taylor ``|w * g|`` accumulated over batches (Molchanov et
  al. 2017, "Pruning Convolutional Neural Networks for Resource Efficient Inference"; 2019).
* :func:`fisher_diagonal` / :func:`obd_scores` — Optimal Brain Damage saliency
  ``0.5 * F_ii * w_i^2`` with the diagonal of the empirical Fisher as the Hessian (LeCun, Denker
  & Solla 1990).
* :func:`woodfisher_inverse` / :func:`obs_scores` — Optimal Brain Surgeon saliency
  ``w_q^2 / (2 [F^-1]_qq)`` with a block-diagonal inverse empirical Fisher (Hassibi & Stork 1993;
  WoodFisher, Singh & Alistarh 2020), plus :func:`obs_update`, the optimal compensating update
  of the surviving weights (``dw = -F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q``, the multi-weight form of
  Kurtic et al. 2022, oBERT).
* :func:`movement_scores` — ``-sum_t w * g`` (Sanh, Wolf & Rush 2020, "Movement Pruning"),
  accumulated during training by the :class:`~prunekit.nn.Pruner` or over a data set.

A *criterion* is a callable ``criterion(model, params, data, loss_fn) -> {name: scores}`` where
``params`` maps parameter names to the parameters to score; get one with
:func:`get_criterion` (registry :data:`CRITERIA`, extend with :func:`register_criterion`).
Data-driven criteria take a DataLoader of ``(inputs, targets)`` and a loss (default
cross-entropy), and run the model in eval mode (batch norm statistics frozen).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._validation import check_choice, check_positive_int
from prunekit.errors import InvalidParameterError, ShapeMismatchError

__all__ = [
    "Criterion",
    "CRITERIA",
    "register_criterion",
    "get_criterion",
    "magnitude_scores",
    "random_scores",
    "taylor_scores",
    "fisher_diagonal",
    "obd_scores",
    "per_sample_gradients",
    "woodfisher_inverse",
    "obs_scores",
    "obs_update",
    "movement_scores",
    "Magnitude",
    "RandomCriterion",
    "Taylor",
    "OBD",
    "OBS",
    "Movement",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scores = dict[str, torch.Tensor]


# ------------------------------------------------------------------ element-score functions
def magnitude_scores(weight: torch.Tensor, p: int = 1) -> torch.Tensor:
    """``|w|`` for ``p=1`` or ``w^2`` for ``p=2`` (Han et al. 2015)."""
    check_choice("p", p, (1, 2))
    w = weight.detach()
    return w.abs() if p == 1 else w * w


def random_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform random scores, reproducible from ``seed`` (independent of the global RNG)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.rand(weight.shape, generator=gen).to(weight.device)


def _batches(
    data: Iterable[Any], max_batches: int | None, device: torch.device | None = None
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, targets)`` of ``data`` (moved to ``device``: the model's, so a CPU DataLoader
    feeds a GPU model); raises if ``data`` is missing, malformed or empty."""
    if data is None:
        raise InvalidParameterError(
            "this criterion needs data: pass data=<DataLoader of (inputs, targets)> (and loss_fn)"
        )
    if isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise InvalidParameterError(
            f"data must be an iterable of (inputs, targets) batches (a DataLoader), got "
            f"{type(data).__name__}"
        )
    if max_batches is not None:
        check_positive_int("max_batches", max_batches)
    n = 0
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        if (
            not isinstance(batch, list | tuple)
            or len(batch) < 2
            or not isinstance(batch[0], torch.Tensor)
            or not isinstance(batch[1], torch.Tensor)
        ):
            raise InvalidParameterError(
                f"data must yield (inputs, targets) tensor batches; batch {i} is "
                f"{type(batch).__name__}"
            )
        if len(batch[0]) == 0:
            raise InvalidParameterError(f"data: batch {i} is empty (0 samples)")
        n += 1
        if device is not None:
            yield batch[0].to(device), batch[1].to(device)
        else:
            yield batch[0], batch[1]
    if n == 0:
        raise InvalidParameterError(
            "data= yielded no batches: a data-driven criterion needs at least one (inputs, "
            "targets) batch (an empty DataLoader would give all-zero scores)"
        )


def _forward_loss(
    model: nn.Module, loss_fn: LossFn, xb: torch.Tensor, yb: torch.Tensor
) -> torch.Tensor:
    """``loss_fn(model(xb), yb)`` as a scalar; a failure names the data, not a deep traceback."""
    try:
        loss = loss_fn(model(xb), yb)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise ShapeMismatchError(
            f"data=: the model or loss_fn failed on a batch of inputs {tuple(xb.shape)} and "
            f"targets {tuple(yb.shape)}: {exc}"
        ) from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise InvalidParameterError("loss_fn must return a scalar tensor")
    return loss.reshape(())


@contextlib.contextmanager
def _grads_enabled(tensors: Iterable[torch.Tensor]) -> Iterator[None]:
    """Let frozen parameters (``requires_grad=False``) be differentiated; restore afterwards."""
    frozen = [t for t in tensors if isinstance(t, nn.Parameter) and not t.requires_grad]
    for t in frozen:
        t.requires_grad_(True)
    try:
        yield
    finally:
        for t in frozen:
            t.requires_grad_(False)


def _loss(loss_fn: LossFn | None) -> LossFn:
    if loss_fn is None:
        return nn.functional.cross_entropy
    if not callable(loss_fn):
        raise InvalidParameterError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    return loss_fn


def _device_of(model: nn.Module, tensors: list[torch.Tensor]) -> torch.device | None:
    """Where the model computes: its scored parameters' device (else its first parameter's)."""
    for t in tensors:
        return t.device
    p = next(iter(model.parameters()), None)
    return None if p is None else p.device


def _named(model: nn.Module, params: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    if params is None:
        return dict(model.named_parameters())
    return dict(params)


def taylor_scores(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    max_batches: int | None = None,
) -> Scores:
    """First-order Taylor importance ``sum_batches |w * dL/dw|`` (Molchanov et al. 2017)."""
    return _grad_accumulate(model, data, loss_fn, params, max_batches, mode="taylor")


def movement_scores(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    max_batches: int | None = None,
) -> Scores:
    """Movement score ``-sum_batches w * dL/dw`` (Sanh et al. 2020): weights moving away from 0.

    During training the :class:`~prunekit.nn.Pruner` accumulates it step by step instead.
    """
    return _grad_accumulate(model, data, loss_fn, params, max_batches, mode="movement")


def _grad_accumulate(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None,
    params: Mapping[str, torch.Tensor] | None,
    max_batches: int | None,
    mode: str,
) -> Scores:
    loss_fn = _loss(loss_fn)
    named = _named(model, params)
    scores = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in named.items()}
    tensors = list(named.values())
    with eval_mode(model), _grads_enabled(tensors), torch.enable_grad():
        for xb, yb in _batches(data, max_batches, _device_of(model, tensors)):
            loss = _forward_loss(model, loss_fn, xb, yb)
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            for (k, p), g in zip(named.items(), grads, strict=True):
                if g is None:
                    continue
                wg = (p.detach() * g).float()
                scores[k] += wg.abs() if mode == "taylor" else -wg
    return scores


def per_sample_gradients(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    max_samples: int = 256,
    chunk: int = 32,
) -> Iterable[dict[str, torch.Tensor]]:
    """Yield chunks of per-sample gradients ``{name: [n, *shape]}`` (``torch.func``, eval mode).

    Stops after ``max_samples`` samples. Used by the empirical-Fisher criteria.
    """
    from torch.func import functional_call, grad, vmap

    loss_fn = _loss(loss_fn)
    named = _named(model, params)
    name_of = {id(p): n for n, p in model.named_parameters()}
    wanted = {name_of.get(id(p), k): k for k, p in named.items()}
    all_params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def one(sel: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        full = {**all_params, **sel}
        out = functional_call(model, (full, buffers), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    sel0 = {n: all_params[n] for n in wanted}
    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    seen = 0
    with eval_mode(model):
        for xb, yb in _batches(data, None, _device_of(model, list(named.values()))):
            for start in range(0, len(xb), chunk):
                if seen >= max_samples:
                    return
                x = xb[start : start + min(chunk, max_samples - seen)]
                y = yb[start : start + len(x)]
                try:
                    g = per_sample(sel0, x, y)
                except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                    raise ShapeMismatchError(
                        f"data=: per-sample gradients failed on inputs {tuple(x.shape)} and "
                        f"targets {tuple(y.shape)}: {exc}"
                    ) from exc
                seen += len(x)
                yield {wanted[n]: v for n, v in g.items()}


def fisher_diagonal(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    max_samples: int = 256,
) -> Scores:
    """Diagonal of the empirical Fisher ``F_ii = mean_n g_{n,i}^2`` from per-sample gradients."""
    return _fisher_diagonal_n(model, data, loss_fn, params, max_samples=max_samples)[0]


def _fisher_diagonal_n(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    max_samples: int = 256,
) -> tuple[Scores, int]:
    """:func:`fisher_diagonal` and the number of samples it averaged over."""
    named = _named(model, params)
    fisher = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in named.items()}
    n = 0
    for g in per_sample_gradients(model, data, loss_fn, named, max_samples=max_samples):
        for k, v in g.items():
            fisher[k] += (v.float() ** 2).sum(0)
        n += next(iter(g.values())).shape[0]
    if n == 0:
        raise InvalidParameterError("data= yielded no samples")
    return {k: v / n for k, v in fisher.items()}, n


def obd_scores(weight: torch.Tensor, fisher_diag: torch.Tensor) -> torch.Tensor:
    """Optimal Brain Damage saliency ``0.5 * F_ii * w_i^2`` (LeCun et al. 1990)."""
    w = weight.detach().float()
    return 0.5 * fisher_diag.float() * w * w


def _blocks(t: torch.Tensor, block: int) -> torch.Tensor:
    flat = t.reshape(-1)
    pad = (-flat.numel()) % block
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.reshape(-1, block)


def woodfisher_inverse(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    block_size: int = 64,
    max_samples: int = 256,
    damp: float = 1e-3,
) -> dict[str, torch.Tensor]:
    """Block-diagonal inverse empirical Fisher per parameter: ``{name: [n_blocks, B, B]}``.

    Each parameter is flattened and cut into blocks of ``block_size`` consecutive weights;
    ``F_b = mean_n g_n g_n^T + lambda I`` with ``lambda = damp * mean(diag F_b)`` (plus a tiny
    floor) and is inverted exactly (WoodFisher, Singh & Alistarh 2020, block-diagonal variant).
    """
    check_positive_int("block_size", block_size)
    named = _named(model, params)
    acc: dict[str, torch.Tensor] = {}
    n = 0
    for g in per_sample_gradients(model, data, loss_fn, named, max_samples=max_samples):
        for k, v in g.items():
            gb = torch.stack([_blocks(s.float(), block_size) for s in v])  # [n, nb, B]
            outer = torch.einsum("nkb,nkc->kbc", gb, gb)
            acc[k] = acc[k] + outer if k in acc else outer
        n += next(iter(g.values())).shape[0]
    if n == 0:
        raise InvalidParameterError("data= yielded no samples")
    out = {}
    for k, f in acc.items():
        f = f / n
        diag_mean = torch.diagonal(f, dim1=-2, dim2=-1).mean(-1)
        lam = damp * diag_mean + 1e-8
        eye = torch.eye(block_size, dtype=torch.float64, device=f.device)
        out[k] = torch.linalg.inv(f.double() + lam.double()[:, None, None] * eye).float()
    return out


def obs_scores(weight: torch.Tensor, fisher_inv_blocks: torch.Tensor) -> torch.Tensor:
    """OBS saliency ``w_q^2 / (2 [F^-1]_qq)`` (Hassibi & Stork 1993) from inverse-Fisher blocks."""
    block = fisher_inv_blocks.shape[-1]
    w = _blocks(weight.detach().float(), block)
    d = torch.diagonal(fisher_inv_blocks, dim1=-2, dim2=-1).clamp_min(1e-12)
    s = (w * w) / (2.0 * d)
    return s.reshape(-1)[: weight.numel()].reshape(weight.shape)


@torch.no_grad()
def obs_update(
    weight: torch.Tensor, keep: torch.Tensor, fisher_inv_blocks: torch.Tensor
) -> torch.Tensor:
    """Optimal weight update for removing all ``~keep`` weights at once, block by block.

    ``dw = -F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q`` per block (Hassibi & Stork 1993; multi-weight
    form as in Kurtic et al. 2022). Returns the updated weight with pruned entries exactly 0.
    Solved for all blocks in one batched call: with ``P = diag(q)`` the system
    ``(P F^-1 P + I - P) z = P w`` gives ``z_Q = (F^-1[Q, Q])^-1 w_Q`` and ``z`` zero elsewhere.
    """
    block = fisher_inv_blocks.shape[-1]
    w = _blocks(weight.detach().double(), block)
    q = _blocks((~keep).to(torch.float64), block)
    finv = fisher_inv_blocks.double()
    a = q[:, :, None] * finv * q[:, None, :] + torch.diag_embed(1.0 - q)
    z = torch.linalg.solve(a, (q * w).unsqueeze(-1))
    dw = -(finv @ z).squeeze(-1)
    new = (w + dw).reshape(-1)[: weight.numel()].reshape(weight.shape)
    new = torch.where(keep, new, torch.zeros((), dtype=new.dtype))
    return new.to(weight.dtype)


# ----------------------------------------------------------------------- criterion objects
class Criterion:
    """Base criterion: ``criterion(model, params, data, loss_fn) -> {name: scores}``."""

    name = "base"
    needs_data = False
    #: how a distributed Pruner combines the ranks' scores: ``sum`` (statistics summed over
    #: batches), ``mean`` (weighted by :attr:`last_count`) or ``none`` (weights only, identical
    #: on every rank). Plain callables without the attribute are averaged.
    reduction = "mean"
    last_count = 1

    def __call__(
        self,
        model: nn.Module,
        params: Mapping[str, torch.Tensor],
        data: Iterable[Any] | None = None,
        loss_fn: LossFn | None = None,
    ) -> Scores:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({opts})"


class Magnitude(Criterion):
    """``|w|`` (``p=1``) or ``w^2`` (``p=2``); Han et al. 2015."""

    name = "magnitude"
    reduction = "none"

    def __init__(self, p: int = 1) -> None:
        self.p = check_choice("p", p, (1, 2))

    def __call__(self, model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        return {k: magnitude_scores(p, self.p) for k, p in params.items()}


class RandomCriterion(Criterion):
    """Seeded random scores (baseline)."""

    name = "random"
    reduction = "none"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._calls = 0

    def __call__(self, model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        self._calls += 1
        return {
            k: random_scores(p, self.seed + 7919 * i + 104729 * self._calls)
            for i, (k, p) in enumerate(params.items())
        }


class Taylor(Criterion):
    """First-order Taylor ``|w g|`` summed over ``max_batches`` batches (Molchanov et al. 2017)."""

    name = "taylor"
    needs_data = True
    reduction = "sum"

    def __init__(self, max_batches: int | None = 16) -> None:
        self.max_batches = max_batches

    def __call__(self, model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        return taylor_scores(model, data, loss_fn, params, max_batches=self.max_batches)


class OBD(Criterion):
    """Optimal Brain Damage with the diagonal empirical Fisher (LeCun et al. 1990)."""

    name = "obd"
    needs_data = True

    def __init__(self, max_samples: int = 256) -> None:
        self.max_samples = check_positive_int("max_samples", max_samples)

    def __call__(self, model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        fisher, self.last_count = _fisher_diagonal_n(
            model, data, loss_fn, params, max_samples=self.max_samples
        )
        return {k: obd_scores(p, fisher[k]) for k, p in params.items()}


class OBS(Criterion):
    """Optimal Brain Surgeon with a block-diagonal WoodFisher inverse (Singh & Alistarh 2020).

    After masks are chosen from its scores the pruner calls :meth:`update_weights`, which applies
    the optimal compensating update to the surviving weights of every block.
    """

    name = "obs"
    needs_data = True

    def __init__(self, block_size: int = 64, max_samples: int = 256, damp: float = 1e-3) -> None:
        self.block_size = check_positive_int("block_size", block_size)
        self.max_samples = check_positive_int("max_samples", max_samples)
        if not (isinstance(damp, int | float) and damp > 0):
            raise InvalidParameterError(f"damp must be a positive number, got {damp!r}")
        self.damp = float(damp)
        self._finv: dict[str, torch.Tensor] = {}

    def __call__(self, model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        self._finv = woodfisher_inverse(
            model,
            data,
            loss_fn,
            params,
            block_size=self.block_size,
            max_samples=self.max_samples,
            damp=self.damp,
        )
        return {k: obs_scores(p, self._finv[k]) for k, p in params.items()}

    def update_weights(
        self, params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> None:
        """Apply the OBS update in place to every parameter scored by the last call."""
        with torch.no_grad():
            for k, keep in masks.items():
                if k in self._finv and k in params:
                    params[k].copy_(obs_update(params[k], keep, self._finv[k]))
        self._finv = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_finv"] = {}
        return state


class Movement(Criterion):
    """Movement pruning ``-sum_t w_t g_t`` (Sanh et al. 2020).

    A :class:`~prunekit.nn.Pruner` calls :meth:`accumulate` after every optimizer step; without
    accumulated statistics (one-shot) the score is computed over ``max_batches`` of ``data``.
    """

    name = "movement"
    needs_data = False
    reduction = "sum"

    def __init__(self, max_batches: int | None = 16) -> None:
        self.max_batches = max_batches
        self._acc: dict[str, torch.Tensor] = {}

    def accumulate(self, params: Mapping[str, torch.Tensor]) -> None:
        """Add ``-w * grad`` of every parameter that has a gradient."""
        with torch.no_grad():
            for k, p in params.items():
                if p.grad is None:
                    continue
                wg = -(p.detach() * p.grad).float()
                self._acc[k] = self._acc[k] + wg if k in self._acc else wg

    def __call__(self, model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        if self._acc and all(k in self._acc for k in params):
            return {k: self._acc[k].clone() for k in params}
        if data is None:
            raise InvalidParameterError(
                "criterion='movement' needs training steps (Pruner.step) or data=<DataLoader>"
            )
        return movement_scores(model, data, loss_fn, params, max_batches=self.max_batches)


CRITERIA: dict[str, Callable[..., Criterion]] = {
    "magnitude": Magnitude,
    "l1": lambda **kw: Magnitude(p=1, **kw),
    "l2": lambda **kw: Magnitude(p=2, **kw),
    "random": RandomCriterion,
    "taylor": Taylor,
    "obd": OBD,
    "obs": OBS,
    "woodfisher": OBS,
    "movement": Movement,
}


def register_criterion(name: str, factory: Callable[..., Criterion]) -> None:
    """Add a criterion factory under ``name`` (``factory(**options) -> Criterion``)."""
    if not isinstance(name, str) or not name:
        raise InvalidParameterError("criterion name must be a non-empty string")
    CRITERIA[name.lower()] = factory


def get_criterion(criterion: str | Criterion | Callable[..., Scores], **options: Any) -> Any:
    """A criterion object from a name (``CRITERIA``), an instance, or a plain scoring callable."""
    if isinstance(criterion, str):
        key = criterion.strip().lower()
        check_choice("criterion", key, sorted(CRITERIA))
        try:
            return CRITERIA[key](**options)
        except TypeError as exc:
            raise InvalidParameterError(
                f"criterion={criterion!r}: bad options {options}: {exc}"
            ) from exc
    if callable(criterion):
        if options:
            raise InvalidParameterError("criterion options only apply to criteria given by name")
        return criterion
    raise InvalidParameterError(
        f"criterion must be a name ({', '.join(sorted(CRITERIA))}) or a callable, got {criterion!r}"
    )
