"""prunekit.metrics against scikit-learn references and hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.inspection import permutation_importance as sk_permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from torch import nn

from prunekit import metrics
from prunekit.data import load_dataset
from prunekit.errors import (
    InvalidParameterError,
    NotFittedError,
    ShapeMismatchError,
    UnsupportedModelError,
)


@pytest.fixture(scope="module")
def bc():
    return load_dataset("breast_cancer", seed=0)


@pytest.fixture(scope="module")
def tree(bc):
    return DecisionTreeClassifier(max_depth=5, random_state=0).fit(bc.X_train, bc.y_train)


def _convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )


# ---------------------------------------------------------------- quality metrics
def test_classification_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    assert metrics.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
    for avg in ("macro", "weighted", "micro"):
        assert metrics.f1(y, p, average=avg) == pytest.approx(skm.f1_score(y, p, average=avg))
    np.testing.assert_array_equal(metrics.confusion_matrix(y, p), skm.confusion_matrix(y, p))
    # tensors are accepted too
    assert metrics.accuracy(torch.as_tensor(y), torch.as_tensor(p)) == metrics.accuracy(y, p)


def test_confusion_matrix_hand_computed():
    cm = metrics.confusion_matrix([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_evaluate_sklearn_classifier(bc, tree):
    res = metrics.evaluate(tree, bc.X_test, bc.y_test)
    pred = tree.predict(bc.X_test)
    assert res == pytest.approx({
        "accuracy": skm.accuracy_score(bc.y_test, pred),
        "f1_macro": skm.f1_score(bc.y_test, pred, average="macro"),
        "f1_weighted": skm.f1_score(bc.y_test, pred, average="weighted"),
    })


def test_evaluate_regression():
    d = load_dataset("diabetes")
    reg = Ridge().fit(d.X_train, d.y_train)
    res = metrics.evaluate(reg, d.X_test, d.y_test)
    pred = reg.predict(d.X_test)
    assert res["r2"] == pytest.approx(skm.r2_score(d.y_test, pred))
    assert res["mse"] == pytest.approx(skm.mean_squared_error(d.y_test, pred))
    assert res["mae"] == pytest.approx(skm.mean_absolute_error(d.y_test, pred))


def test_torch_predict_argmax_and_batches_and_mode_restored():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    X = np.random.default_rng(0).normal(size=(70, 5))
    with torch.no_grad():
        net.eval()
        expected = net(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
        net.train()
    got = metrics.predict(net, X, batch_size=16)  # float64 input cast to the model dtype
    np.testing.assert_array_equal(got, expected)
    assert net.training and net[1].training  # eval mode was only temporary
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(X, dtype=torch.float32),
                                       torch.as_tensor(expected)), batch_size=32)
    np.testing.assert_array_equal(metrics.predict(net, loader), expected)
    assert metrics.evaluate(net, loader)["accuracy"] == 1.0


def test_torch_single_output_regression_and_binary():
    net = nn.Linear(3, 1)
    X = torch.randn(10, 3)
    with torch.no_grad():
        raw = net(X)[:, 0].numpy()
    np.testing.assert_allclose(metrics.predict(net, X), raw, rtol=1e-6)
    np.testing.assert_array_equal(
        metrics.predict(net, X, task="classification"), (raw > 0).astype(int)
    )


# ---------------------------------------------------------------- importances
def test_permutation_importance_equals_sklearn(bc, tree):
    ours = metrics.permutation_importance(tree, bc.X_test, bc.y_test, n_repeats=3, seed=7)
    ref = sk_permutation_importance(
        tree, bc.X_test, bc.y_test, n_repeats=3, random_state=7, scoring="accuracy"
    )
    np.testing.assert_allclose(ours.importances, ref.importances)
    np.testing.assert_allclose(ours.importances_mean, ref.importances_mean)
    # unused features of the tree have exactly zero importance
    unused = np.setdiff1d(np.arange(bc.n_features), tree.tree_.feature[tree.tree_.feature >= 0])
    assert np.all(ours.importances_mean[unused] == 0)


def test_permutation_importance_torch_finds_the_signal_feature():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 1] > 0).astype(np.int64)
    net = nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]))
        net.bias.zero_()
    pi = metrics.permutation_importance(net, X, y, n_repeats=3, feature_names=["a", "b", "c"])
    assert pi.baseline_score == 1.0
    assert pi.top(1)[0][0] == "b"
    assert pi.importances_mean[0] == pi.importances_mean[2] == 0.0
    json.dumps(pi.to_dict())


def test_feature_importances_own(bc, tree):
    np.testing.assert_allclose(metrics.feature_importances(tree), tree.feature_importances_)
    lr = LogisticRegression(max_iter=200).fit(bc.X_train[:, :3], bc.y_train)
    np.testing.assert_allclose(metrics.feature_importances(lr), np.abs(lr.coef_[0]))
    assert metrics.feature_importances(nn.Linear(2, 2)) is None


# ---------------------------------------------------------------- complexity
def test_tree_complexity_equals_tree_fields(bc, tree):
    c = metrics.complexity(tree)
    assert c.n_nodes == tree.tree_.node_count
    assert c.n_leaves == tree.get_n_leaves() == tree.tree_.n_leaves
    assert c.depth == tree.get_depth() == tree.tree_.max_depth
    assert c.n_members is None
    assert c.size_bytes > 0
    reg = DecisionTreeRegressor(max_depth=3).fit(bc.X_train, bc.y_train.astype(float))
    assert metrics.complexity(reg).n_leaves == reg.get_n_leaves()


def test_ensemble_complexity(bc):
    rf = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0).fit(
        bc.X_train, bc.y_train
    )
    c = metrics.complexity(rf)
    assert c.n_members == 7
    assert c.n_nodes == sum(e.tree_.node_count for e in rf.estimators_)
    assert c.n_leaves == sum(e.get_n_leaves() for e in rf.estimators_)
    assert c.depth == max(e.get_depth() for e in rf.estimators_)
    gb = GradientBoostingClassifier(n_estimators=4, max_depth=2).fit(bc.X_train, bc.y_train)
    assert metrics.complexity(gb).n_members == 4


def test_linear_complexity_counts_zero_coefficients(bc):
    lr = LogisticRegression(max_iter=200).fit(bc.X_train[:, :4], bc.y_train)
    lr.coef_[0, :2] = 0.0
    c = metrics.complexity(lr)
    assert c.n_params == 5 and c.n_nonzero == 3 - (lr.intercept_[0] == 0)


def test_macs_of_conv_linear_stack_equal_formula():
    net = _convnet()
    x = torch.randn(3, 1, 8, 8)
    conv1 = 4 * 8 * 8 * (1 * 3 * 3)  # out_ch * H_out * W_out * (in_ch/groups * kh * kw)
    conv2 = 6 * 3 * 3 * (4 // 2 * 3 * 3)
    lin = 54 * 16 + 16 * 10
    expected = 3 * (conv1 + conv2 + lin)
    assert metrics.count_macs(net, x) == expected
    per_layer = metrics.layer_macs(net, x)
    assert per_layer == {"0": 3 * conv1, "2": 3 * conv2, "5": 3 * 54 * 16, "7": 3 * 160}
    assert metrics.complexity(net, x).macs == expected


def test_macs_of_attention_matmuls():
    mha = nn.MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True)
    x = torch.randn(1, 5, 8)
    macs = metrics.count_macs(mha, (x, x, x))
    proj = 3 * 5 * 8 * 8 + 5 * 8 * 8  # q, k, v and output projections
    attn = 2 * 5 * 5 * 8  # Q K^T and A V over all heads
    assert macs == proj + attn


def test_layer_macs_charges_functional_work_to_the_calling_module():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True)
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.attn(x, x, x, need_weights=False)[0]
            return self.fc(h @ torch.eye(8))  # a matmul in the parent's own forward

    x = torch.randn(1, 5, 8)
    per = metrics.layer_macs(Block(), x)
    assert per == {
        "attn": 4 * 5 * 8 * 8 + 2 * 5 * 5 * 8,  # q, k, v, out projections + attention
        "fc": 5 * 8 * 3,
        "Block": 5 * 8 * 8,
    }
    assert sum(per.values()) == metrics.count_macs(Block(), x)


def test_permutation_importance_on_image_inputs():
    X = np.zeros((40, 1, 2, 2), dtype=np.float32)
    X[:, 0, 1, 0] = np.repeat([-1.0, 1.0], 20)  # pixel 2 decides the class
    y = np.repeat([0, 1], 20)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[1, 2] = 1.0
        net[1].bias.zero_()
    pi = metrics.permutation_importance(net, X, y, n_repeats=2)
    assert pi.importances.shape == (4, 2)
    assert int(np.argmax(pi.importances_mean)) == 2 and pi.importances_mean[2] > 0.2


def test_nonzeros_and_sparsity_on_hand_masked_layer():
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        net[0].weight[:, :2] = 0.0  # 10 of 20 weights
        net[2].weight[0, 0] = 0.0  # 1 of 10
    c = metrics.complexity(net, torch.randn(1, 4))
    assert c.n_params == 20 + 5 + 10 + 2
    assert c.n_nonzero == c.n_params - 11 - int((net[0].bias == 0).sum() + (net[2].bias == 0).sum())
    assert c.layer_sparsity == pytest.approx({"0": 0.5, "2": 0.1})
    assert c.weight_sparsity == pytest.approx(11 / 30)
    assert c.sparsity == pytest.approx(1 - c.n_nonzero / c.n_params)
    assert c.macs == 20 + 10
    assert c.nonzero_macs == 10 + 9


def test_torch_nn_utils_prune_masks_are_resolved():
    from torch.nn.utils import prune

    lin = nn.Linear(10, 10)
    prune.l1_unstructured(lin, "weight", amount=0.3)
    c = metrics.complexity(lin)
    assert c.layer_sparsity == pytest.approx({"Linear": 0.3})
    assert c.n_params == 110
    assert c.n_nonzero == 70 + int(lin.bias.count_nonzero())


def test_serialized_size_matches_definitions(tree):
    import io
    import pickle

    net = _convnet()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    assert metrics.serialized_size(net) == len(buf.getvalue())
    assert metrics.serialized_size(tree) == len(pickle.dumps(tree, pickle.HIGHEST_PROTOCOL))


# ---------------------------------------------------------------- latency / compare
def test_latency_positive_median(tree, bc):
    lat = metrics.measure_latency(_convnet(), torch.randn(64, 1, 8, 8), warmup=1, repeats=5,
                                  batch_size=8)
    assert lat.median_s > 0 and lat.min_s <= lat.median_s <= lat.p90_s
    assert lat.batch_size == 8 and lat.repeats == 5
    lat2 = metrics.measure_latency(tree, bc.X_test, repeats=3)
    assert lat2.median_s > 0 and lat2.batch_size == len(bc.X_test)
    assert lat2.to_dict()["throughput"] > 0


def test_latency_pair_interleaved_orders_models():
    torch.manual_seed(0)
    slow = nn.Sequential(*[nn.Linear(256, 256) for _ in range(8)])
    quick = nn.Linear(256, 256)
    lat_slow, lat_quick = metrics.measure_latency_pair(slow, quick, torch.randn(32, 256),
                                                       warmup=1, repeats=7)
    assert lat_slow.repeats == lat_quick.repeats == 7 and lat_slow.batch_size == 32
    assert lat_slow.median_s > lat_quick.median_s > 0


def test_compare_tree_vs_shallower_tree(bc, tree):
    small = DecisionTreeClassifier(max_depth=2, random_state=0).fit(bc.X_train, bc.y_train)
    cmp = metrics.compare(tree, small, bc.X_test, bc.y_test, repeats=3)
    assert cmp.task == "classification"
    assert cmp.before_metrics["accuracy"] == pytest.approx(tree.score(bc.X_test, bc.y_test))
    assert cmp.after_metrics["accuracy"] == pytest.approx(small.score(bc.X_test, bc.y_test))
    np.testing.assert_array_equal(
        cmp.after_confusion, skm.confusion_matrix(bc.y_test, small.predict(bc.X_test))
    )
    assert cmp.after_complexity.n_nodes < cmp.before_complexity.n_nodes
    assert cmp.changes()["n_nodes_ratio"] == pytest.approx(
        small.tree_.node_count / tree.tree_.node_count
    )
    assert cmp.speedup is not None and cmp.speedup > 0
    md = cmp.to_markdown()
    assert md.startswith("| metric | before | after | change |") and "nodes" in md
    d = json.loads(json.dumps(cmp.to_dict()))
    assert d["complexity"]["after"]["depth"] == 2


def test_compare_torch_uses_first_sample_for_macs():
    d = load_dataset("digits")
    X = d.X_test.reshape(-1, 1, 8, 8)
    net = _convnet()
    cmp = metrics.compare(net, net, X, d.y_test, latency=False)
    assert cmp.before_latency is None and cmp.speedup is None
    assert cmp.before_complexity.macs == metrics.count_macs(net, X[:1])
    assert cmp.delta("accuracy") == 0.0


# ---------------------------------------------------------------- errors
def test_metric_errors(bc):
    with pytest.raises(NotFittedError, match="not fitted"):
        metrics.complexity(DecisionTreeClassifier())
    with pytest.raises(UnsupportedModelError):
        metrics.predict(object(), bc.X_test)
    with pytest.raises(ShapeMismatchError):
        metrics.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(InvalidParameterError, match="average"):
        metrics.f1([0, 1], [0, 1], average="mean")
    with pytest.raises(InvalidParameterError, match="repeats"):
        metrics.measure_latency(nn.Linear(2, 2), torch.randn(1, 2), repeats=0)
    with pytest.raises(InvalidParameterError, match="scoring"):
        metrics.permutation_importance(nn.Linear(2, 2), np.zeros((4, 2)), np.zeros(4, int),
                                       scoring="auc")


def test_markdown_table_right_aligns_the_named_columns():
    md = metrics.markdown_table([{"name": "a|b", "n": 3, "x": 0.123456}], right=("n",))
    assert md.splitlines() == ["| name | n | x |", "|---|---:|---|", "| a\\|b | 3 | 0.1235 |"]
