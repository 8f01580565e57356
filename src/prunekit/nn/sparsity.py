"""Masks that stay applied: the :class:`Pruner` and the one-call :func:`prune_model`.

Design (after torch.ao.pruning / torchao: ``prepare`` -> ``step`` -> ``finalize``), with none of
``torch.nn.utils.prune``'s costs: no forward pre-hooks, no ``weight_orig`` copies, no extra
buffers. Masks live in a dict on the pruner; the model keeps its plain parameters, its
``state_dict`` keys, and stays deep-copyable and picklable at every moment. Pruned weights are
zeroed in place after every optimizer step (and their gradients / optimizer moments zeroed), so
zeros never come back — not even with Adam's momentum.

Gradual magnitude pruning with a polynomial schedule is Zhu & Gupta 2017; the optimizer-step
masking follows Han et al. 2015 ("Learning both Weights and Connections").
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit._validation import (
    check_choice,
    check_fraction,
    check_positive_int,
    check_sparsity,
)
from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError
from prunekit.nn import _distributed as _dist
from prunekit.nn.importance import CRITERIA, get_criterion
from prunekit.nn.patterns import Pattern, global_masks, mask_from_scores, parse_pattern
from prunekit.nn.schedules import SCHEDULES, OneShot, Schedule, make_schedule

__all__ = [
    "SparsityConfig",
    "LayerSparsity",
    "SparsityReport",
    "Pruner",
    "prune_model",
    "model_sparsity",
    "PRUNABLE_TYPES",
]

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SCOPES = ("global", "layer")
NORMALIZATIONS = ("none", "l2", "mean")


def _is_mask(v: Any) -> bool:
    """A bool tensor, or a real tensor holding only 0 and 1."""
    if not isinstance(v, torch.Tensor) or v.is_complex():
        return False
    return v.dtype == torch.bool or bool(((v == 0) | (v == 1)).all())


def _names_arg(name: str, value: Any) -> tuple[str, ...]:
    """``include``/``exclude``: one pattern or an iterable of patterns (module type names or
    globs on module names)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable) or not all(isinstance(v, str) and v for v in value):
        raise InvalidParameterError(
            f"{name} must be a list of module type names ('Linear') or name globs "
            f"('features.*'), got {value!r}"
        )
    return tuple(value)


def _options_arg(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidParameterError(
            f"criterion_options must be a dict of keyword options, got {value!r}"
        )
    return dict(value)


def _normalize(scores: torch.Tensor, how: str) -> torch.Tensor:
    """Scale one layer's scores before a global ranking (Molchanov et al. 2019 use ``l2``)."""
    if how == "none":
        return scores
    finite = scores[torch.isfinite(scores)]
    if finite.numel() == 0:
        return scores
    denom = finite.norm() if how == "l2" else finite.abs().mean()
    return scores / denom if denom > 0 else scores


@dataclass(frozen=True)
class SparsityConfig:
    """Everything that defines a sparsity run; reads the same from Python, a recipe or the CLI.

    ``scope`` is ``"global"`` (one threshold over all layers, each within
    ``[min_sparsity, max_sparsity]``), ``"layer"`` (every layer at ``sparsity``) or a dict
    ``{layer name or glob: sparsity}``. ``include`` / ``exclude`` take module type names
    (``"Linear"``, ``"Conv2d"``) or globs on module names (``"features.*"``). The first and
    last prunable layers are left dense unless ``prune_first_last=True`` or named in ``include``.
    ``normalize`` (``none``/``l2``/``mean``) rescales each layer's scores before a global
    ranking, so criteria whose scale differs between layers (Taylor, OBD) compare fairly.
    """

    sparsity: float = 0.5
    criterion: str = "magnitude"
    pattern: str = "unstructured"
    scope: str | Mapping[str, float] = "global"
    schedule: str | Schedule = "oneshot"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_sparsity: float = 0.0
    max_sparsity: float = 0.99
    prune_first_last: bool = False
    criterion_options: Mapping[str, Any] = field(default_factory=dict)
    total_steps: int = 0
    normalize: str = "none"

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity)
        parse_pattern(self.pattern)
        if isinstance(self.criterion, str) and not self.criterion.startswith("custom"):
            check_choice("criterion", self.criterion.strip().lower(), sorted(CRITERIA))
        if isinstance(self.schedule, str):
            check_choice("schedule", self.schedule.lower(), SCHEDULES)
        elif not isinstance(self.schedule, Schedule):
            raise InvalidParameterError(
                f"schedule must be a name ({', '.join(SCHEDULES)}) or a Schedule object"
            )
        if isinstance(self.scope, str):
            if self.scope not in SCOPES:
                raise InvalidParameterError(
                    f"scope={self.scope!r} is not supported; accepted values: 'global', 'layer', "
                    "or a dict {layer: sparsity}"
                )
        elif isinstance(self.scope, Mapping):
            for k, v in self.scope.items():
                check_sparsity(v, f"scope[{k!r}]")
        else:
            raise InvalidParameterError(
                f"scope must be 'global', 'layer' or a dict, got {self.scope!r}"
            )
        check_fraction("min_sparsity", self.min_sparsity, high_inclusive=True)
        check_fraction("max_sparsity", self.max_sparsity, high_inclusive=True)
        check_choice("normalize", self.normalize, NORMALIZATIONS)
        if self.min_sparsity > self.max_sparsity:
            raise InvalidParameterError("min_sparsity must be <= max_sparsity")
        object.__setattr__(self, "include", _names_arg("include", self.include))
        object.__setattr__(self, "exclude", _names_arg("exclude", self.exclude))
        object.__setattr__(self, "criterion_options", _options_arg(self.criterion_options))
        if not isinstance(self.prune_first_last, bool):
            raise InvalidParameterError(
                f"prune_first_last must be True or False, got {self.prune_first_last!r}"
            )
        if self.total_steps != 0:
            check_positive_int("total_steps", self.total_steps)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparsityConfig:
        """Build from a dict (recipe); misspelled keys are rejected."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidParameterError(
                f"unknown sparsity config keys {unknown}; accepted keys: {sorted(names)}"
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["include"], d["exclude"] = list(self.include), list(self.exclude)
        if isinstance(d["schedule"], Schedule):
            d["schedule"] = repr(d["schedule"])
        d["scope"] = dict(d["scope"]) if isinstance(d["scope"], Mapping) else d["scope"]
        d["criterion_options"] = dict(d["criterion_options"])
        return d


@dataclass(frozen=True)
class LayerSparsity:
    """Sparsity of one pruned weight tensor."""

    name: str
    shape: tuple[int, ...]
    numel: int
    n_zero: int

    @property
    def sparsity(self) -> float:
        return self.n_zero / self.numel if self.numel else 0.0


@dataclass
class SparsityReport:
    """What was pruned (per layer), what was skipped and why; ``masks`` holds the keep masks."""

    criterion: str
    pattern: str
    scope: str
    target_sparsity: float
    layers: dict[str, LayerSparsity]
    skipped: dict[str, str]
    model_zero_fraction: float
    notes: list[str] = field(default_factory=list)
    masks: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    model = None  # the pruned module, set by prune_model (not a field: to_dict/asdict skip it)

    @property
    def sparsity(self) -> float:
        """Achieved sparsity over the pruned layers' weights."""
        total = sum(layer.numel for layer in self.layers.values())
        return sum(layer.n_zero for layer in self.layers.values()) / total if total else 0.0

    @property
    def layer_sparsity(self) -> dict[str, float]:
        return {k: v.sparsity for k, v in self.layers.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "pattern": self.pattern,
            "scope": self.scope,
            "target_sparsity": self.target_sparsity,
            "sparsity": self.sparsity,
            "model_zero_fraction": self.model_zero_fraction,
            "layers": {
                k: {
                    "shape": list(v.shape),
                    "numel": v.numel,
                    "n_zero": v.n_zero,
                    "sparsity": v.sparsity,
                }
                for k, v in self.layers.items()
            },
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        from prunekit.metrics import markdown_table

        lines = [
            f"**Sparsity** {self.sparsity:.2%} over pruned layers "
            f"(target {self.target_sparsity:.2%}; "
            f"criterion `{self.criterion}`, pattern `{self.pattern}`, scope `{self.scope}`); "
            f"{self.model_zero_fraction:.2%} of all parameters are zero.",
        ]
        rows = [
            {"layer": v.name, "shape": "x".join(map(str, v.shape)), "weights": v.numel,
             "zeros": v.n_zero, "sparsity": f"{v.sparsity:.2%}"}
            for v in self.layers.values()
        ]
        if rows:
            lines += ["", markdown_table(rows, right=("weights", "zeros", "sparsity"))]
        if self.skipped:
            skipped = [{"skipped": k, "reason": r} for k, r in self.skipped.items()]
            lines += ["", markdown_table(skipped)]
        for note in self.notes:
            lines += ["", f"_note: {note}_"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def model_sparsity(model: nn.Module) -> float:
    """Fraction of all parameters of ``model`` that are exactly zero."""
    total = zeros = 0
    for p in model.parameters():
        total += p.numel()
        zeros += int((p.detach() == 0).sum())
    return zeros / total if total else 0.0


def _checked_scores(
    scores: Any, params: Mapping[str, torch.Tensor]
) -> Mapping[str, torch.Tensor]:
    """A criterion's output: one finite score tensor per parameter, of the parameter's size."""
    if not isinstance(scores, Mapping):
        raise InvalidParameterError(
            f"the criterion must return a dict {{param name: scores}}, got {type(scores).__name__}"
        )
    missing = [n for n in params if n not in scores]
    if missing:
        raise InvalidParameterError(f"criterion returned no scores for {missing}")
    for name, p in params.items():
        s = scores[name]
        if not isinstance(s, torch.Tensor) or s.numel() != p.numel():
            what = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ShapeMismatchError(
                f"criterion scores for layer {name!r} must be a tensor of shape "
                f"{tuple(p.shape)}, got {what}"
            )
        if s.is_complex() or not bool(torch.isfinite(s.detach().double()).all()):
            bad = int((~torch.isfinite(s.detach().double())).sum()) if not s.is_complex() else -1
            raise InvalidParameterError(
                f"criterion returned non-finite scores (NaN or inf) for layer {name!r} "
                f"({bad} of {s.numel()}); masks from them would be arbitrary. Check the "
                "criterion, the data= batches and the weights for NaN/inf"
            )
    return scores


def _scope_key_matches(key: str, module_name: str) -> bool:
    key_mod = key.removesuffix(".weight")
    return key_mod == module_name or fnmatch.fnmatchcase(module_name, key_mod)


def _matches(name: str, module: nn.Module, patterns: Iterable[str]) -> bool:
    tname = type(module).__name__
    return any(p == tname or fnmatch.fnmatchcase(name, p) or name == p for p in patterns)


class Pruner:
    """Keeps weight masks applied through training; prune once, iteratively or gradually.

    >>> pruner = Pruner(model, sparsity=0.9, schedule=agp(0.9, 0, 1000))  # doctest: +SKIP
    >>> pruner.prepare()
    >>> for xb, yb in loader:
    ...     opt.zero_grad(); loss_fn(model(xb), yb).backward()
    ...     pruner.mask_gradients()   # optional: keeps masked entries' gradients at zero
    ...     opt.step(); pruner.step()  # re-zeroes pruned weights, advances the schedule
    >>> model = pruner.finalize()     # plain model, zeros baked in

    ``schedule`` is a :class:`~prunekit.nn.schedules.Schedule`, a name
    (``oneshot``/``constant``/``agp``/``cubic``/``linear``/``polynomial``/``iterative``, needing
    ``total_steps`` for the gradual ones) or ``None`` (one-shot at ``prepare``). Data-driven
    criteria (``taylor``, ``obd``, ``obs``) take ``data`` (DataLoader of ``(x, y)``) and
    ``loss_fn``. Pass ``optimizer`` to have its momentum buffers zeroed at pruned entries.
    Once pruned, a weight stays pruned (its score is set to ``-inf`` at later updates).
    A ``Pruner`` always works on ``model`` itself, in place (the optimizer you train with holds
    its parameters); pass ``copy.deepcopy(model)`` to keep the original.

    Distributed training (DDP, Lightning ``ddp``): pass the model wrapped in
    ``DistributedDataParallel`` or not (parameter names are the inner module's). With
    ``distributed=None`` (default) the pruner synchronises whenever a ``torch.distributed``
    process group of more than one rank exists (``True`` requires one, ``False`` never
    synchronises): ``prepare`` checks that every rank holds the same model (structure and
    weights), data-driven scores are all-reduced over the ranks (so a global threshold ranks
    the statistics of every rank's data), and the masks are broadcast from rank 0, so all ranks
    hold identical masks. Every rank must call ``prepare``/``step``/``finalize`` the same number
    of times (once per optimizer step, as DDP training does), so schedules advance in lockstep.

    ``device``: ``None`` (default) leaves the model where it is; otherwise the model is moved
    there (``"cuda"``). Masks, scores and the criteria's ``data`` batches follow the model's
    device (a CPU DataLoader feeds a GPU model).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        sparsity: float | None = None,
        criterion: Any = "magnitude",
        pattern: str | Pattern = "unstructured",
        scope: str | Mapping[str, float] = "global",
        schedule: Schedule | str | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        min_sparsity: float = 0.0,
        max_sparsity: float = 0.99,
        prune_first_last: bool = False,
        data: Iterable[Any] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        total_steps: int = 0,
        normalize: str = "none",
        criterion_options: Mapping[str, Any] | None = None,
        config: SparsityConfig | None = None,
        distributed: bool | None = None,
        process_group: Any = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise UnsupportedModelError(
                f"model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if config is None:
            if sparsity is None:
                if isinstance(schedule, Schedule):
                    sparsity = schedule.final_sparsity
                elif parse_pattern(pattern).kind == "nm":
                    sparsity = parse_pattern(pattern).fixed_sparsity
                elif isinstance(scope, Mapping):
                    sparsity = max(scope.values(), default=0.0)
                else:
                    raise InvalidParameterError("sparsity is required (a number in [0, 1))")
            fixed = parse_pattern(pattern).fixed_sparsity
            if fixed is not None and check_sparsity(sparsity) != fixed:
                note = (
                    f"pattern {parse_pattern(pattern)} fixes the sparsity at {fixed:g}; "
                    f"sparsity={sparsity!r} does not apply"
                )
                warnings.warn(note, UserWarning, stacklevel=3)
                pending_notes = [note]
            else:
                pending_notes = []
            config = SparsityConfig(
                sparsity=sparsity,
                criterion=criterion
                if isinstance(criterion, str)
                else f"custom:{getattr(criterion, 'name', type(criterion).__name__)}",
                pattern=str(parse_pattern(pattern)),
                scope=scope,
                schedule=schedule if schedule is not None else "oneshot",
                include=_names_arg("include", include),
                exclude=_names_arg("exclude", exclude),
                min_sparsity=min_sparsity,
                max_sparsity=max_sparsity,
                prune_first_last=prune_first_last,
                criterion_options=_options_arg(criterion_options),
                total_steps=total_steps,
                normalize=normalize,
            )
            crit_obj = criterion
        else:
            crit_obj = config.criterion
            pending_notes = []
        self.config = config
        self._outer = model
        self.model = _dist.unwrap(model)
        if device is not None:
            from prunekit.nn.oneshot.core import check_device

            model.to(check_device(device, torch.device("cpu")))
        self.process_group = process_group
        self.distributed = _dist.resolve(distributed, process_group)
        self.pattern = parse_pattern(config.pattern)
        self.criterion = (
            get_criterion(crit_obj, **dict(config.criterion_options))
            if isinstance(crit_obj, str)
            else get_criterion(crit_obj)
        )
        self.schedule = self._build_schedule(config)
        self.data = data
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.masks: dict[str, torch.Tensor] = {}
        self.skipped: dict[str, str] = {}
        self.notes: list[str] = list(pending_notes)
        self.step_count = 0
        self.current_sparsity = 0.0
        self._targets: list[str] | None = None
        self._prepared = False
        if getattr(self.criterion, "needs_data", False):
            if data is None:
                raise InvalidParameterError(
                    f"criterion={config.criterion!r} needs data=<DataLoader of (inputs, targets)>"
                )
            if isinstance(data, Sized) and len(data) == 0:
                raise InvalidParameterError(
                    f"data= is empty; criterion={config.criterion!r} needs at least one "
                    "(inputs, targets) batch"
                )
        if loss_fn is not None and not callable(loss_fn):
            raise InvalidParameterError(f"loss_fn must be callable, got {type(loss_fn).__name__}")

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _build_schedule(config: SparsityConfig) -> Schedule:
        if isinstance(config.schedule, Schedule):
            return config.schedule
        name = str(config.schedule).lower()
        if name == "oneshot":
            return OneShot(config.sparsity)
        if not config.total_steps:
            raise InvalidParameterError(
                f"schedule={name!r} given by name needs total_steps (optimizer steps of the run), "
                "or pass a Schedule object"
            )
        return make_schedule(name, config.sparsity, total_steps=config.total_steps)

    def _resolve_targets(self) -> list[str]:
        cfg = self.config
        candidates: list[tuple[str, nn.Module]] = []
        for name, module in self.model.named_modules():
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter):
                continue
            pname = f"{name}.weight" if name else "weight"
            in_include = bool(cfg.include) and _matches(name, module, cfg.include)
            if isinstance(module, PRUNABLE_TYPES) or in_include:
                candidates.append((name, module))
            else:
                self.skipped[pname] = (
                    f"type {type(module).__name__} is not pruned (add it to include)"
                )
        if not candidates:
            raise UnsupportedModelError(
                "the model has no prunable layer (Linear/Conv1d/2d/3d, or a module with a weight "
                "named in include=)"
            )
        self._check_names(candidates)
        explicit_names = {
            n
            for n, m in candidates
            if cfg.include and any(fnmatch.fnmatchcase(n, p) or n == p for p in cfg.include)
        }
        firstlast = set()
        if candidates and not cfg.prune_first_last:
            firstlast = {candidates[0][0], candidates[-1][0]} - explicit_names
        targets = []
        for name, module in candidates:
            pname = f"{name}.weight" if name else "weight"
            if cfg.include and not _matches(name, module, cfg.include):
                self.skipped[pname] = "not matched by include"
            elif cfg.exclude and _matches(name, module, cfg.exclude):
                self.skipped[pname] = "matched by exclude"
            elif name in firstlast:
                which = "first" if name == candidates[0][0] else "last"
                self.skipped[pname] = f"{which} layer (pass prune_first_last=True to prune it)"
            elif isinstance(cfg.scope, Mapping) and self._explicit(name) is None:
                self.skipped[pname] = "not listed in the per-layer scope dict"
            elif reason := self._pattern_problem(module.weight):
                self.skipped[pname] = reason
            else:
                targets.append(pname)
        if not targets:
            raise InvalidParameterError(
                "no layer left to prune; skipped: "
                + "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
            )
        return targets

    def _check_names(self, candidates: list[tuple[str, nn.Module]]) -> None:
        """Meta tensors are refused; scope keys must name layers; include/exclude should match."""
        meta = [n or "<model>" for n, m in candidates if m.weight.is_meta]
        if meta:
            raise UnsupportedModelError(
                f"layers {meta[:5]} have weights on the meta device (no data); materialise the "
                "model (e.g. load its weights) before pruning"
            )
        cfg = self.config
        if isinstance(cfg.scope, Mapping):
            names = [n for n, _ in candidates]
            unknown = [
                k for k in cfg.scope
                if not isinstance(k, str)
                or not any(_scope_key_matches(k, n) for n in names)
            ]
            if unknown:
                raise InvalidParameterError(
                    f"scope names unknown layers {unknown[:5]}; prunable layers: {names[:20]}"
                )
        modules = list(self.model.named_modules())
        for arg in ("include", "exclude"):
            for pat in getattr(cfg, arg):
                if not any(_matches(n, m, [pat]) for n, m in modules):
                    warnings.warn(
                        f"{arg} pattern {pat!r} matches no module of the model (module type "
                        "names like 'Linear' or globs on module names like 'features.*')",
                        UserWarning,
                        stacklevel=4,
                    )

    def _explicit(self, module_name: str) -> float | None:
        assert isinstance(self.config.scope, Mapping)
        for key, value in self.config.scope.items():
            key_mod = key[: -len(".weight")] if key.endswith(".weight") else key
            if key_mod == module_name or fnmatch.fnmatchcase(module_name, key_mod):
                return float(value)
        return None

    def _pattern_problem(self, weight: torch.Tensor) -> str | None:
        if self.pattern.kind == "nm":
            size = weight[0].numel() if weight.ndim >= 2 else weight.numel()
            if weight.ndim < 2:
                return "N:M needs a weight with an input dimension"
            if size % self.pattern.m:
                return f"input size {size} not divisible by M={self.pattern.m} for {self.pattern}"
        return None

    @property
    def targets(self) -> list[str]:
        """Names of the weight parameters this pruner masks."""
        if self._targets is None:
            self._targets = self._resolve_targets()
        return list(self._targets)

    def _params(self) -> dict[str, nn.Parameter]:
        return {name: self.model.get_parameter(name) for name in self.targets}

    def prepare(self) -> Pruner:
        """Resolve the layers to prune and apply the schedule's step-0 pruning (if any)."""
        _ = self.targets
        if self.distributed:
            _dist.check_same_model(self.model, self.targets, self.process_group)
        self._prepared = True
        if self.schedule.should_prune(self.step_count):
            self.update_masks(self.schedule.sparsity_at(self.step_count))
        return self

    # ------------------------------------------------------------------ masks
    def _layer_sparsities(self, sparsity: float) -> dict[str, float]:
        cfg = self.config
        if isinstance(cfg.scope, Mapping):
            ratio = sparsity / cfg.sparsity if cfg.sparsity > 0 else 1.0
            out = {}
            for name in self.targets:
                v = self._explicit(name[: -len(".weight")])
                out[name] = min(0.999999, (v or 0.0) * ratio)
            return out
        return {name: sparsity for name in self.targets}

    @torch.no_grad()
    def update_masks(self, sparsity: float | None = None) -> dict[str, torch.Tensor]:
        """Recompute masks at ``sparsity`` (default: the config's) from fresh scores and apply."""
        sparsity = self.config.sparsity if sparsity is None else check_sparsity(sparsity)
        params = self._params()
        if sparsity <= 0 and not self.masks:
            return self.masks
        if self.distributed:
            _dist.check_lockstep(self.step_count, self.process_group)
        with torch.enable_grad():
            scores = self.criterion(self.model, params, self.data, self.loss_fn)
        scores = _checked_scores(scores, params)
        if self.distributed:
            scores = _dist.all_reduce_scores(
                scores,
                getattr(self.criterion, "reduction", "mean"),
                getattr(self.criterion, "last_count", 1),
                self.process_group,
            )
        clean: dict[str, torch.Tensor] = {}
        for name, p in params.items():
            s = scores[name].detach().to(torch.float64).reshape(p.shape).clone()
            if name in self.masks:  # once pruned, stays pruned
                s[~self.masks[name]] = -math.inf
            clean[name] = _normalize(s, self.config.normalize)
        kind = self.pattern.kind
        if kind == "nm":
            new = {n: mask_from_scores(s, None, self.pattern) for n, s in clean.items()}
        elif self.config.scope == "global" and kind in ("unstructured", "block"):
            new = global_masks(
                clean,
                sparsity,
                min_sparsity=self.config.min_sparsity,
                max_sparsity=max(self.config.max_sparsity, self.config.min_sparsity),
                pattern=self.pattern,
            )
        else:
            if self.config.scope == "global":
                note = f"scope 'global' does not apply to pattern {self.pattern}; pruned per layer"
                if note not in self.notes:
                    self.notes.append(note)
            per_layer = self._layer_sparsities(sparsity)
            new = {n: mask_from_scores(s, per_layer[n], self.pattern) for n, s in clean.items()}
        new = {n: m.to(params[n].device) for n, m in new.items()}
        if self.masks:  # never regrow
            new = {n: m & self.masks[n] for n, m in new.items()}
        if self.distributed:
            new = _dist.broadcast_masks(new, self.process_group)
        update = getattr(self.criterion, "update_weights", None)
        if callable(update):
            update(params, new)
            if self.distributed:  # a local second-order update: keep rank 0's everywhere
                _dist.broadcast_params(params, self.process_group)
        self.masks = new
        self.current_sparsity = self.pattern.fixed_sparsity if kind == "nm" else sparsity
        self.apply_masks()
        return self.masks

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the pruned weights in place (and their optimizer state, if an optimizer is set)."""
        for name, mask in self.masks.items():
            p = self.model.get_parameter(name)
            p.masked_fill_(~mask, 0)
            if self.optimizer is not None:
                state = self.optimizer.state.get(p)
                if state:
                    for value in state.values():
                        if isinstance(value, torch.Tensor) and value.shape == p.shape:
                            value.masked_fill_(~mask, 0)

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of pruned weights; call between ``backward()`` and ``opt.step()``."""
        for name, mask in self.masks.items():
            g = self.model.get_parameter(name).grad
            if g is not None:
                g.masked_fill_(~mask, 0)

    def step(self, step: int | None = None) -> bool:
        """Call after every ``optimizer.step()``: re-apply masks, advance, prune when due.

        ``step`` sets the step counter explicitly (optional). Returns True if masks changed.
        """
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise InvalidParameterError(f"step must be an integer >= 0 or None, got {step!r}")
        if not self._prepared:
            self.prepare()
        accumulate = getattr(self.criterion, "accumulate", None)
        if callable(accumulate):
            accumulate(self._params())
        self.apply_masks()
        self.step_count = self.step_count + 1 if step is None else int(step)
        if self.schedule.should_prune(self.step_count):
            target = self.schedule.sparsity_at(self.step_count)
            due = target > self.current_sparsity or not self.masks or self.pattern.kind == "nm"
            if due and target > 0:
                self.update_masks(target)
                return True
        return False

    def finalize(self, enforce_final: bool = True) -> nn.Module:
        """Reach the final sparsity if the schedule stopped short, bake zeros in, return the model.

        The model is a plain ``nn.Module`` (no hooks, no extra buffers); the masks stay in
        :attr:`masks` (e.g. for :func:`prunekit.nn.io.export_torch_prune`).
        """
        final = self.schedule.final_sparsity
        if (
            enforce_final
            and (final > self.current_sparsity + 1e-12 or not self.masks)
            and final > 0
        ):
            self.update_masks(final)
        self.apply_masks()
        return self._outer

    def report(self) -> SparsityReport:
        """A :class:`SparsityReport` of the current state."""
        layers = {}
        for name in self.targets:
            p = self.model.get_parameter(name).detach()
            layers[name] = LayerSparsity(name, tuple(p.shape), p.numel(), int((p == 0).sum()))
        scope = self.config.scope if isinstance(self.config.scope, str) else "per-layer dict"
        return SparsityReport(
            criterion=self.config.criterion,
            pattern=str(self.pattern),
            scope=scope,
            target_sparsity=self.current_sparsity,
            layers=layers,
            skipped=dict(self.skipped),
            model_zero_fraction=model_sparsity(self.model),
            notes=list(self.notes),
            masks={k: v.clone() for k, v in self.masks.items()},
        )

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Masks, step counter and current sparsity (for resuming a run)."""
        return {
            "masks": {k: v.clone() for k, v in self.masks.items()},
            "step_count": self.step_count,
            "current_sparsity": self.current_sparsity,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (masks, step counter, current sparsity)."""
        if not isinstance(state, Mapping) or not isinstance(state.get("masks"), Mapping):
            raise InvalidParameterError(
                "state must be a dict with 'masks' ({param name: bool tensor}), as returned by "
                "Pruner.state_dict()"
            )
        masks = dict(state["masks"])
        params = self._params()
        for k, v in masks.items():
            if not _is_mask(v):
                raise InvalidParameterError(f"mask {k!r} must be a bool (or 0/1) tensor")
            if k not in params or tuple(v.shape) != tuple(params[k].shape):
                raise InvalidParameterError(f"mask {k!r} does not match the model's parameters")
        step, current = state.get("step_count", 0), state.get("current_sparsity", 0.0)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidParameterError(f"step_count must be an integer >= 0, got {step!r}")
        check_fraction("current_sparsity", current, high_inclusive=True)
        self.masks = {k: v.to(torch.bool) for k, v in masks.items()}
        self.step_count = int(state.get("step_count", 0))
        self.current_sparsity = float(state.get("current_sparsity", 0.0))
        self._prepared = True
        self.apply_masks()

    def set_masks(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Adopt existing keep masks (e.g. from :func:`~prunekit.nn.io.import_torch_prune`)."""
        state = {"masks": masks, "step_count": self.step_count, "current_sparsity": 0.0}
        self.load_state_dict(state)
        total = sum(m.numel() for m in self.masks.values())
        if total:
            self.current_sparsity = sum(int((~m).sum()) for m in self.masks.values()) / total


def prune_model(
    model: nn.Module,
    sparsity: float | None = None,
    *,
    criterion: Any = "magnitude",
    pattern: str | Pattern = "unstructured",
    scope: str | Mapping[str, float] = "global",
    data: Iterable[Any] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    prune_first_last: bool = False,
    min_sparsity: float = 0.0,
    max_sparsity: float = 0.99,
    criterion_options: Mapping[str, Any] | None = None,
    normalize: str = "none",
    device: torch.device | str | None = None,
    inplace: bool = True,
) -> SparsityReport:
    """Prune ``model`` once, in place, and return a :class:`SparsityReport`.

    ``device`` (default: the model's) is where scores and masks are computed: the model is
    moved there for the call and back afterwards (report masks on the model's device).

    The zeros are baked into the plain parameters; fine-tune afterwards with a
    :class:`Pruner` (``pruner.set_masks(report.masks)``) to keep them at zero. ``sparsity``
    defaults to 0.5, or to the sparsity an N:M ``pattern`` fixes (``1 - N/M``).
    ``inplace=False`` prunes a deep copy and leaves ``model`` untouched (a copy doubles the
    memory); the pruned model is ``report.model`` either way.
    """
    from prunekit._inplace import working_model

    model = working_model(model, inplace)
    if sparsity is None and parse_pattern(pattern).kind != "nm" and not isinstance(scope, Mapping):
        sparsity = 0.5
    pruner = Pruner(
        model,
        sparsity=sparsity,
        criterion=criterion,
        pattern=pattern,
        scope=scope,
        schedule=None,
        include=include,
        exclude=exclude,
        prune_first_last=prune_first_last,
        min_sparsity=min_sparsity,
        max_sparsity=max_sparsity,
        data=data,
        loss_fn=loss_fn,
        criterion_options=criterion_options,
        normalize=normalize,
    )
    from prunekit.nn.oneshot.core import _model_device, check_device, on_device

    home = _model_device(model)
    with on_device(model, check_device(device, home)):
        pruner.prepare()
        pruner.finalize()
    pruner.masks = {k: v.to(home) for k, v in pruner.masks.items()}
    report = pruner.report()
    report.model = model
    return report
