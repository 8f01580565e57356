"""prunekit.deploy.to_sparse_inference and the CSR modules: equal outputs, honest choices."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from prunekit.deploy import SparseConv1x1, SparseLinear, to_sparse_inference
from prunekit.errors import InvalidParameterError, ShapeMismatchError


def _sparsify(layer: nn.Module, sparsity: float) -> None:
    with torch.no_grad():
        w = layer.weight
        w[torch.rand_like(w) < sparsity] = 0


@pytest.mark.parametrize("kernel", ["csr", "csr_t", "csr_mv", "scipy"])
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_matches_dense(kernel, bias):
    lin = nn.Linear(24, 16, bias=bias)
    _sparsify(lin, 0.8)
    s = SparseLinear.from_linear(lin, kernel)
    x = torch.randn(3, 5, 24)  # leading dims are kept
    torch.testing.assert_close(s(x), lin(x), atol=1e-5, rtol=1e-5)
    x1 = torch.randn(1, 24)  # the single-row paths (torch.mv, scipy matvec)
    torch.testing.assert_close(s(x1), lin(x1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s.to_dense().weight, lin.weight)
    # deepcopy, state_dict round trip and pickling work (CSR tensors alone cannot deepcopy)
    c = copy.deepcopy(s)
    torch.testing.assert_close(c(x), lin(x), atol=1e-5, rtol=1e-5)
    fresh = SparseLinear.from_linear(nn.Linear(24, 16, bias=bias), kernel)
    fresh.load_state_dict(s.state_dict())
    torch.testing.assert_close(fresh(x), lin(x), atol=1e-5, rtol=1e-5)
    buf = io.BytesIO()
    torch.save(s, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    torch.testing.assert_close(loaded(x), lin(x), atol=1e-5, rtol=1e-5)
    assert "density" in repr(s)
    assert s.col_indices.dtype == torch.int32  # half the index traffic of torch's int64 default


@pytest.mark.parametrize("kernel", ["csr", "scipy"])
def test_sparse_conv1x1_matches_dense(kernel):
    conv = nn.Conv2d(12, 20, 1)
    _sparsify(conv, 0.9)
    x = torch.randn(2, 12, 5, 7)
    torch.testing.assert_close(SparseConv1x1(conv, kernel)(x), conv(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(SparseConv1x1(conv, kernel).double()(x.double()),
                               conv.double()(x.double()))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                      nn.Linear(512, 10))
    _sparsify(m[0], 0.95)
    _sparsify(m[2], 0.95)
    return m.eval()


def test_report_lists_every_layer_and_outputs_agree():
    m = _mlp()
    before = copy.deepcopy(m.state_dict())
    x = torch.randn(4, 256)
    sparse, report = to_sparse_inference(m, x, reps=5)
    assert [c.name for c in report.layers] == ["0", "2"]
    assert "below threshold" in report.skipped["4"]
    for c in report.layers:
        assert set(c.candidates_ms) >= {"dense"} and c.dense_ms > 0
        if c.kernel == "dense":
            assert not isinstance(sparse.get_submodule(c.name), SparseLinear)
        else:  # swapped only where the measured gain clears min_gain
            assert isinstance(sparse.get_submodule(c.name), SparseLinear)
            assert c.gain >= report.min_gain
    torch.testing.assert_close(sparse(x), m(x), atol=1e-4, rtol=1e-4)
    assert report.max_abs_diff < 1e-4
    for k, v in m.state_dict().items():  # the input model is not modified
        torch.testing.assert_close(v, before[k])
    assert "Sparse inference" in report.to_markdown()


def test_min_gain_unreachable_keeps_dense():
    m = _mlp()
    sparse, report = to_sparse_inference(m, torch.randn(2, 256), min_gain=1e9, reps=3)
    assert not report.swapped and all(c.kernel == "dense" for c in report.layers)
    assert all("min_gain" in c.reason or "dense fastest" in c.reason for c in report.layers)
    assert not any(isinstance(mod, SparseLinear) for mod in sparse.modules())


def test_non_pointwise_conv_skipped_with_reason():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1))
    _sparsify(m[0], 0.9)
    _sparsify(m[1], 0.9)
    _, report = to_sparse_inference(m, torch.randn(1, 3, 8, 8), reps=3)
    assert "not 1x1" in report.skipped["0"]
    assert [c.name for c in report.layers] == ["1"] and report.layers[0].kind == "Conv1x1"


def test_bad_input():
    m = _mlp()
    with pytest.raises(InvalidParameterError, match="threshold"):
        to_sparse_inference(m, torch.randn(1, 256), threshold=1.5)
    with pytest.raises(InvalidParameterError, match="min_gain"):
        to_sparse_inference(m, torch.randn(1, 256), min_gain=0)
    with pytest.raises(ShapeMismatchError):
        to_sparse_inference(m, torch.randn(1, 7))
    with pytest.raises(InvalidParameterError, match="kernel"):
        SparseLinear(torch.zeros(2, 2), None, "coo")
