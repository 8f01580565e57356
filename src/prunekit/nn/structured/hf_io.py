"""Save and reload structurally pruned Hugging Face models (:func:`prune_transformer`).

A pruned model keeps its original ``config``, whose global head counts and FFN widths no
longer describe its layers (transformers has no per-layer values for them).
:func:`save_pruned_pretrained` writes the model with ``save_pretrained`` (safetensors) plus
``prunekit_pruned.json`` beside ``config.json``: the kept units per site, as a plan that
:func:`apply_transformer_plan` replays on a model built from the config. When every layer
kept the same counts and a rewritten config rebuilds exactly the pruned shapes and attributes
(Llama family with an explicit ``head_dim``, T5 with ``d_kv``, GPT-2 FFN-only via
``n_inner``), the config itself is rewritten and plain ``from_pretrained`` works too;
otherwise plain ``from_pretrained`` fails loudly on the shape mismatch instead of loading a
wrong model.

:func:`load_pruned_pretrained` reads only JSON and safetensors (never pickle), validates the
plan (known kinds, in-range indices, sites that exist), never runs code from the directory,
and loads through transformers' own ``from_pretrained`` (checkpoint key conversions, tied
weights, shards) into a model whose constructor replays the plan.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.errors import (
    InvalidParameterError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)

from .transformers import (
    _DIM_ATTRS,
    _HEAD_ATTRS,
    _KV_ATTRS,
    _REP_ATTRS,
    _WIDTH_ATTRS,
    PLAN_FORMAT,
    TransformerPruneReport,
    apply_transformer_plan,
    find_sites,
    validate_plan,
)

PRUNED_FILE = "prunekit_pruned.json"
HF_FORMAT = "prunekit.hf-pruned/1"
_MAX_JSON_BYTES = 16 * 2**20
_CONFIG_HEADS = ("num_attention_heads", "num_heads", "n_head", "n_heads",
                 "encoder_attention_heads", "decoder_attention_heads")
_CONFIG_KV = ("num_key_value_heads", "num_kv_heads", "n_kv_heads")
_CONFIG_FFN = ("intermediate_size", "d_ff", "ffn_dim", "hidden_dim", "n_inner",
               "encoder_ffn_dim", "decoder_ffn_dim")


# ----------------------------------------------------------------------------- plan from shapes


def _fresh(model: nn.Module, config: Any) -> nn.Module:
    """An unpruned model of ``model``'s class built from ``config`` on the meta device."""
    with torch.device("meta"):
        try:
            return type(model)(copy.deepcopy(config))
        except Exception as e:  # noqa: BLE001 - any constructor failure means the same thing
            raise UnsupportedModelError(
                f"cannot rebuild {type(model).__name__} from its config ({type(e).__name__}: "
                f"{e}); save_pruned_pretrained needs a transformers model") from e


def shape_plan(model: nn.Module, ignored: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A plan that rebuilds ``model``'s pruned shapes from its (unpruned) ``config``.

    Kept counts come from the model itself, so the plan is right however the model was pruned
    (several calls, manual edits); the kept indices are canonical (the first KV groups and the
    first heads of each group), which is all a reload needs since the weights carry the values.
    """
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no .config; save_pruned_pretrained needs a "
            "transformers PreTrainedModel")
    fresh = _fresh(model, config)
    now = {(s.name, s.kind): s for s in find_sites(model, list(ignored))}
    records = []
    for s0 in find_sites(fresh, list(ignored)):
        s1 = now.get((s0.name, s0.kind))
        if s1 is None:
            raise ShapeMismatchError(f"site {s0.name!r} of the config's model is missing in the "
                                     "pruned model")
        if s1.n_units == s0.n_units:
            continue
        if s1.n_groups > s0.n_groups or s1.group_size > s0.group_size:
            raise ShapeMismatchError(
                f"{s0.name!r}: {s1.n_groups} KV groups of {s1.group_size} heads do not fit the "
                f"config's {s0.n_groups} groups of {s0.group_size}")
        keep = [g * s0.group_size + j for g in range(s1.n_groups) for j in range(s1.group_size)]
        records.append({"name": s0.name, "kind": s0.kind, "units": s0.n_units, "keep": keep})
    plan = {"format": PLAN_FORMAT, "sites": records, "ignored": list(ignored)}
    rebuilt = apply_transformer_plan(fresh, plan, inplace=True)
    _check_same_shapes(model, rebuilt, "the plan rebuilt from the config")
    return plan


def _check_same_shapes(model: nn.Module, other: nn.Module, what: str) -> None:
    a = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in other.state_dict().items()}
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if diff:
        k = diff[0]
        raise ShapeMismatchError(
            f"{what} does not reproduce the pruned model: {k} is {b.get(k)} there and "
            f"{a.get(k)} in the model ({len(diff)} tensors differ)")


# ----------------------------------------------------------------------------- config rewrite


def _width_attrs(model: nn.Module) -> dict[str, Any]:
    names = _HEAD_ATTRS + _KV_ATTRS + _REP_ATTRS + _WIDTH_ATTRS + _DIM_ATTRS + ("scaling",)
    out = {}
    for mname, m in model.named_modules():
        for a in names:
            v = m.__dict__.get(a)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{mname}.{a}"] = v
    return out


def _uniform(sites: Any, kind: str, attr: str) -> int | None:
    vals = {getattr(s, attr) for s in sites if s.kind == kind}
    return vals.pop() if len(vals) == 1 else None


def pruned_config(model: nn.Module, ignored: list[str] | tuple[str, ...] = ()) -> Any | None:
    """A copy of ``model.config`` whose global sizes rebuild ``model`` exactly, or ``None``.

    Tried only when every site of a kind kept the same count; accepted only if a model built
    from it has the same tensor shapes and the same per-module head counts, head dims and
    softmax scales as ``model`` (so plain ``from_pretrained`` builds the right model).
    """
    config = model.config
    now = find_sites(model, list(ignored))
    before = find_sites(_fresh(model, config), list(ignored))
    cand = copy.deepcopy(config)
    changed = False
    for kind, attr, keys in (("heads", "n_units", _CONFIG_HEADS),
                             ("heads", "n_groups", _CONFIG_KV),
                             ("neurons", "n_units", _CONFIG_FFN)):
        old, new = _uniform(before, kind, attr), _uniform(now, kind, attr)
        if old is None or new is None or old == new:
            continue
        for key in keys:
            v = getattr(cand, key, None)
            if v == old or (key == "n_inner" and v is None and "n_embd" in cand.to_dict()):
                changed = _set(cand, key, new) or changed
    heads_now = [s for s in now if s.kind == "heads"]
    if heads_now and len({s.unit_size for s in heads_now}) == 1:
        # many decoders read getattr(config, "head_dim", hidden // heads): pin it (checked below)
        _set(cand, "head_dim", heads_now[0].unit_size)
    if not changed:
        return None
    try:
        rebuilt = _fresh(model, cand)
        _check_same_shapes(model, rebuilt, "config")
    except (ShapeMismatchError, UnsupportedModelError, ValueError):
        return None
    return cand if _width_attrs(rebuilt) == _width_attrs(model) else None


def _set(config: Any, key: str, value: int) -> bool:
    try:  # some configs derive a value through a read-only property (Falcon's head_dim)
        setattr(config, key, value)
    except (AttributeError, TypeError, ValueError):
        return False
    return getattr(config, key, None) == value


# ----------------------------------------------------------------------------- save


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` onto ``target`` (an old save there is replaced)."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise InvalidParameterError(f"directory {str(target)!r} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (
            (target / "config.json").exists() or (target / PRUNED_FILE).exists()):
        raise InvalidParameterError(
            f"directory {str(target)!r} is not empty and holds no saved model; refusing to "
            "replace it (pass an empty or new directory)")


def save_pruned_pretrained(model: nn.Module, directory: str | os.PathLike[str],
                           tokenizer: Any = None,
                           report: TransformerPruneReport | None = None, *,
                           ignored_layers: list[str] | tuple[str, ...] = ()) -> Path:
    """Save a structurally pruned transformers model so that :func:`load_pruned_pretrained`
    (and, when the config can express it, plain ``from_pretrained``) rebuilds it.

    Writes ``save_pretrained`` output (safetensors), ``tokenizer`` when given, and
    ``prunekit_pruned.json`` (the rebuild plan, the per-layer sizes and, with ``report``, its
    summary) into ``directory`` atomically: everything goes to a temporary folder beside it,
    renamed into place at the end (a previous save there is replaced). ``ignored_layers``:
    module names whose layout is not recognised and that were left unpruned (taken from
    ``report`` when given). Returns the path.
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "save_pretrained"):
        raise InvalidParameterError(
            f"model must be a transformers PreTrainedModel, got {type(model).__name__}")
    if report is not None and not isinstance(report, TransformerPruneReport):
        raise InvalidParameterError(
            f"report must be a TransformerPruneReport, got {type(report).__name__}")
    target = Path(directory).expanduser().absolute()
    _check_target(target)
    ignored = sorted(set(report.plan.get("ignored", []) if report is not None else [])
                     | {str(n) for n in ignored_layers})
    plan = shape_plan(model, ignored)
    cand = pruned_config(model, ignored) if plan["sites"] else None
    meta: dict[str, Any] = {
        "format": HF_FORMAT, "architecture": type(model).__name__, "plan": plan,
        "config_pruned": cand is not None,
        "sizes": [{"name": r["name"], "kind": r["kind"], "before": r["units"],
                   "after": len(r["keep"])} for r in plan["sites"]],
    }
    if report is not None:
        meta["report"] = {k: v for k, v in report.to_dict().items() if k != "plan"}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        if cand is not None:
            cand.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        text = json.dumps(meta, indent=1, default=str) + "\n"
        (tmp / PRUNED_FILE).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# ----------------------------------------------------------------------------- load


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InvalidParameterError(f"{what} {str(path)!r} does not exist")
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise InvalidParameterError(f"{what} {str(path)!r} is larger than 16 MiB")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidParameterError(f"{what} {str(path)!r} is not valid JSON: {e}") from e


def _validate_meta(meta: Any, path: Path) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != HF_FORMAT:
        raise InvalidParameterError(f"{str(path)!r} is not a prunekit pruned-model file "
                                    f"(format {HF_FORMAT!r})")
    if not isinstance(meta.get("architecture"), str) or not meta["architecture"].isidentifier():
        raise InvalidParameterError(f"{str(path)!r}: 'architecture' must be a class name")
    if not isinstance(meta.get("config_pruned"), bool):
        raise InvalidParameterError(f"{str(path)!r}: 'config_pruned' must be true or false")
    validate_plan(meta.get("plan"))
    return meta


def _model_class(name: str, model_class: Any) -> Any:
    from prunekit.nn.oneshot._hf import import_transformers

    tr = import_transformers()
    cls = model_class if model_class is not None else getattr(tr, name, None)
    if not (isinstance(cls, type) and issubclass(cls, tr.PreTrainedModel)):
        raise UnsupportedModelError(
            f"architecture {name!r} is not a transformers model class; pass model_class= "
            "(custom code is never loaded from the directory)")
    return cls, tr


def _pruning_subclass(cls: type, plan: dict[str, Any]) -> type:
    """A subclass of ``cls`` whose constructor shrinks the new model as ``plan`` says, so that
    transformers' own ``from_pretrained`` (checkpoint key conversions, tied weights, shards)
    loads the pruned weights into the right shapes."""

    def __init__(self: nn.Module, config: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, config, *args, **kwargs)
        apply_transformer_plan(self, plan, inplace=True)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


def load_pruned_pretrained(directory: str | os.PathLike[str], *, model_class: Any = None,
                           tokenizer: bool = False) -> Any:
    """Rebuild a model saved by :func:`save_pruned_pretrained`: build its class from
    ``config.json`` (no remote code), replay the pruning plan (unless the config was rewritten
    to the pruned sizes), and load the safetensors weights. Returns the model in eval mode, or
    ``(model, tokenizer_or_None)`` with ``tokenizer=True``. ``model_class`` overrides the
    recorded transformers class (e.g. to load the base model of a ``...ForCausalLM``)."""
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise InvalidParameterError(f"directory {str(folder)!r} does not exist")
    meta = _validate_meta(_read_json(folder / PRUNED_FILE, "pruned-model file"),
                          folder / PRUNED_FILE)
    cls, tr = _model_class(meta["architecture"], model_class)
    if not (folder / "model.safetensors").is_file() and not (
            folder / "model.safetensors.index.json").is_file():
        raise InvalidParameterError(
            f"{str(folder)!r} has no model.safetensors; pickled weights (pytorch_model.bin) are "
            "never loaded")
    build = cls if meta["config_pruned"] else _pruning_subclass(cls, meta["plan"])
    try:
        model, info = build.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, trust_remote_code=False,
            output_loading_info=True)
    except PrunekitError:
        raise
    except (RuntimeError, ValueError, KeyError) as e:
        raise ShapeMismatchError(f"cannot load the pruned weights of {str(folder)!r}: "
                                 f"{type(e).__name__}: {str(e)[:300]}") from e
    model.__class__ = cls
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys",
                                                   "mismatched_keys") and v}
    if bad:
        raise ShapeMismatchError(f"the saved weights do not match the rebuilt model: {bad}")
    model.eval()
    if not tokenizer:
        return model
    tok = None
    if (folder / "tokenizer_config.json").exists():
        with contextlib.suppress(OSError, ValueError):
            tok = tr.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                   trust_remote_code=False)
    return model, tok
