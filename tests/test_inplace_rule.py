"""The one in-place rule (README, "In place or a copy?"): entry points that return a model never
modify their input; the weight-level ones prune in place by default and take ``inplace=False``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier
from torch import nn

from prunekit.errors import InvalidParameterError


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 3))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _n_zero(m: nn.Module) -> int:
    return sum(int((p == 0).sum()) for p in m.parameters())


# ------------------------------------------------------- weight level: in place by default
def test_prune_model_default_in_place_and_inplace_false_copies() -> None:
    from prunekit.nn import prune_model

    model = _mlp()
    rep = prune_model(model, 0.5, prune_first_last=True)
    assert rep.model is model and _n_zero(model) > 0
    model = _mlp()
    before = copy.deepcopy(model)
    rep = prune_model(model, 0.5, prune_first_last=True, inplace=False)
    assert _same(model, before)  # input untouched
    assert rep.model is not model and _n_zero(rep.model) > 0
    assert "model" not in rep.to_dict()


def test_oneshot_default_in_place_and_inplace_false_copies() -> None:
    from prunekit.nn.oneshot import oneshot

    model, x = _mlp(), torch.randn(4, 8)
    rep = oneshot(model, x, "wanda", 0.5, blocks=[model])
    assert rep.model is model and _n_zero(model) > 0
    model = _mlp()
    before = copy.deepcopy(model)
    rep = oneshot(model, x, "wanda", 0.5, blocks=[model], inplace=False)
    assert _same(model, before)
    assert rep.model is not model and _n_zero(rep.model) > 0
    assert "model" not in rep.to_dict()


def test_lottery_ticket_inplace_false_trains_a_copy() -> None:
    from prunekit.nn import lottery_ticket

    def train_fn(m: nn.Module, on_step) -> None:  # type: ignore[no-untyped-def]
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        for step in range(2):
            opt.zero_grad()
            m(torch.randn(4, 8)).sum().backward()
            opt.step()
            on_step(step)

    model = _mlp()
    before = copy.deepcopy(model)
    res = lottery_ticket(model, train_fn, 0.5, rounds=1, prune_first_last=True, inplace=False)
    assert _same(model, before) and res.model is not model and _n_zero(res.model) > 0
    res = lottery_ticket(model, train_fn, 0.5, rounds=1, prune_first_last=True)
    assert res.model is model and _n_zero(model) > 0


def test_pruner_works_in_place() -> None:
    from prunekit.nn import Pruner

    model = _mlp()
    pruner = Pruner(model, sparsity=0.5, prune_first_last=True)
    pruner.prepare()
    assert pruner.finalize() is model and _n_zero(model) > 0


@pytest.mark.parametrize("bad", ["no", 1, None])
def test_inplace_must_be_a_bool(bad: object) -> None:
    from prunekit.nn import prune_model
    from prunekit.nn.oneshot import oneshot

    model = _mlp()
    with pytest.raises(InvalidParameterError, match="inplace"):
        prune_model(model, 0.5, inplace=bad)
    with pytest.raises(InvalidParameterError, match="inplace"):
        oneshot(model, torch.randn(2, 8), "wanda", 0.5, blocks=[model], inplace=bad)
    assert _n_zero(model) == 0


# --------------------------------------------------------- entry points returning a model: a copy
def test_structured_prune_and_apply_plan_leave_the_input_alone() -> None:
    from prunekit.nn.structured import apply_plan, prune

    model = _mlp()
    before = copy.deepcopy(model)
    small, rep = prune(model, torch.randn(2, 8), ratio=0.5)
    assert _same(model, before) and small is not model
    again = apply_plan(model, rep.plan)
    assert _same(model, before) and again is not model
    assert apply_plan(model, rep.plan, inplace=True) is model  # explicit opt-in


def test_prune_transformer_leaves_the_input_alone() -> None:
    pytest.importorskip("transformers")
    from prunekit.nn.oneshot.tiny_lm import build_tiny_gpt2
    from prunekit.nn.structured import prune_transformer

    model = build_tiny_gpt2(50, n_layer=1, n_embd=32, n_head=4, n_positions=16, seed=0).eval()
    before = copy.deepcopy(model)
    small, _ = prune_transformer(model, head_ratio=0.5, ffn_ratio=0.5)
    assert _same(model, before) and small is not model


def test_prune_tree_and_prune_ensemble_leave_the_input_alone() -> None:
    from prunekit.ensembles import prune_ensemble
    from prunekit.trees import prune_tree

    X, y = make_classification(300, 8, random_state=0)
    tree = DecisionTreeClassifier(random_state=0).fit(X[:200], y[:200])
    n_nodes = tree.tree_.node_count
    pruned = prune_tree(tree, "reduced_error", X_val=X[200:], y_val=y[200:])
    assert tree.tree_.node_count == n_nodes and pruned is not tree
    forest = RandomForestClassifier(20, random_state=0).fit(X[:200], y[:200])
    proba = forest.predict_proba(X[200:])
    small = prune_ensemble(forest, "reduce_error", 5, X[200:], y[200:])
    assert len(forest.estimators_) == 20 and len(small.estimators_) == 5
    np.testing.assert_array_equal(forest.predict_proba(X[200:]), proba)


def test_ensemble_helpers_return_copies() -> None:
    import pickle

    from prunekit.ensembles import prune_lr_l1, prune_members, refine_leaves

    X, y = make_classification(300, 8, random_state=0)
    forest = RandomForestClassifier(10, max_depth=6, random_state=0).fit(X, y)
    frozen = pickle.dumps(forest)
    proba = forest.predict_proba(X)
    for out in (prune_members(forest, "cost_complexity", X_train=X, y_train=y),
                refine_leaves(forest, X, y), prune_lr_l1(forest, X, y, size=5)):
        assert out is not forest
    assert pickle.dumps(forest) == frozen
    np.testing.assert_array_equal(forest.predict_proba(X), proba)
