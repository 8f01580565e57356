"""Lottery-ticket iterative magnitude pruning (IMP) with weight rewinding.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis": train, prune the smallest-magnitude
``p`` % of the surviving weights, reset the survivors to their initial values, repeat.
Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis": rewind to the weights of an early iteration ``k`` instead of to initialisation,
which finds tickets in deeper networks.

The training itself is the caller's: ``train_fn(model, on_step)`` trains ``model`` for one round
and must call ``on_step(step)`` after every optimizer step (the signature of
:func:`prunekit.nn.training.train_classifier`'s ``on_step``). It runs ``rounds + 1`` times.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit._validation import check_positive_int, check_sparsity
from prunekit.errors import InvalidParameterError
from prunekit.nn.sparsity import Pruner, SparsityReport

__all__ = ["lottery_ticket", "LotteryResult", "LotteryRound"]

TrainFn = Callable[[nn.Module, Callable[[int], None]], Any]


@dataclass(frozen=True)
class LotteryRound:
    """One training run of IMP: the sparsity it trained at and ``evaluate``'s result (if any)."""

    round: int
    sparsity: float
    metric: float | None
    seconds: float


@dataclass
class LotteryResult:
    """The trained winning ticket (``model``), its masks and the per-round history."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    report: SparsityReport
    rewind: str | int
    history: list[LotteryRound] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rewind": self.rewind,
            "history": [vars(r) for r in self.history],
            "report": self.report.to_dict(),
        }


def lottery_ticket(
    model: nn.Module,
    train_fn: TrainFn,
    sparsity: float,
    *,
    rounds: int = 3,
    rewind: str | int = "init",
    pattern: str = "unstructured",
    scope: str | Mapping[str, float] = "global",
    prune_first_last: bool = False,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    device: torch.device | str | None = None,
    inplace: bool = True,
) -> LotteryResult:
    """Find and train a lottery ticket of ``sparsity`` by iterative magnitude pruning.

    Each of ``rounds`` rounds trains, then prunes to ``1 - (1 - sparsity)^(r / rounds)`` (the same
    fraction of the survivors each round) and rewinds the survivors to the weights saved at
    ``rewind``: ``"init"`` (the weights ``model`` came in with) or an integer optimizer step
    ``k`` of the first training run (late rewinding). A final training run trains the ticket.
    ``model`` is modified in place and returned in the result (``inplace=False``: a deep copy is
    trained and pruned, ``model`` stays untouched); ``evaluate(model)`` (optional)
    is recorded after every training run. ``device`` (default: the model's): the model is
    moved there first (masks and rewind weights follow it).
    """
    from prunekit._inplace import working_model

    model = working_model(model, inplace)
    sparsity = check_sparsity(sparsity)
    rounds = check_positive_int("rounds", rounds)
    is_step = isinstance(rewind, int) and not isinstance(rewind, bool) and rewind >= 0
    if not (rewind == "init" or is_step):
        raise InvalidParameterError(
            f"rewind must be 'init' or an integer step >= 0, got {rewind!r}"
        )
    if not callable(train_fn):
        raise InvalidParameterError("train_fn must be callable: train_fn(model, on_step)")
    if evaluate is not None and not callable(evaluate):
        raise InvalidParameterError("evaluate must be callable: evaluate(model) -> float")

    pruner = Pruner(
        model,
        device=device,
        sparsity=sparsity,
        criterion="magnitude",
        pattern=pattern,
        scope=scope,
        prune_first_last=prune_first_last,
        include=include,
        exclude=exclude,
    )
    _ = pruner.targets  # resolve the layers to prune (raises early on a bad config)
    rewind_state: dict[str, torch.Tensor] | None = (
        copy.deepcopy(model.state_dict()) if rewind == "init" or rewind == 0 else None
    )
    history: list[LotteryRound] = []

    def make_on_step(capture: bool) -> Callable[[int], None]:
        def on_step(step: int) -> None:
            nonlocal rewind_state
            pruner.apply_masks()
            if capture and rewind_state is None and step == rewind:
                rewind_state = copy.deepcopy(model.state_dict())

        return on_step

    for r in range(rounds + 1):
        t0 = time.perf_counter()
        train_fn(model, make_on_step(capture=r == 0))
        pruner.apply_masks()
        metric = float(evaluate(model)) if evaluate is not None else None
        history.append(LotteryRound(r, pruner.current_sparsity, metric, time.perf_counter() - t0))
        if r == rounds:
            break
        if rewind_state is None:
            raise InvalidParameterError(
                f"rewind={rewind} is past the end of the first training run; use a smaller step"
            )
        target = 1.0 - (1.0 - sparsity) ** ((r + 1) / rounds)
        pruner.update_masks(target)
        # rewind every parameter and buffer, then re-apply the masks
        model.load_state_dict(rewind_state)
        pruner.apply_masks()
    return LotteryResult(
        model=model,
        masks={k: v.clone() for k, v in pruner.masks.items()},
        report=pruner.report(),
        rewind=rewind,
        history=history,
    )
