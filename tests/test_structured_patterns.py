"""Structured pruning invariants over a zoo of small architecture patterns.

For every pattern: the output shape is kept, the plan replays on a fresh instance and
``load_state_dict`` of the pruned weights works, and zeroing the units a plan removes leaves the
output unchanged after pruning (plans made with LayerNorm/GroupNorm frozen, whose statistics
would count the zeros).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.nn.structured import apply_plan, prune
from prunekit.nn.structured.checks import removed_units_error


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- patterns


class LayerNorm2d(nn.LayerNorm):
    """torchvision/timm style: LayerNorm over channels of an NCHW tensor via permutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class BatchNormAct2d(nn.BatchNorm2d):
    """timm style: BatchNorm subclass with its own forward (F.batch_norm + activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)
        return F.relu(x)


class ConvNeXtBlock(nn.Module):
    """Channels-last block: dwconv, permute, LayerNorm(last dim), MLP, layer scale, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 2, 2)
        self.stem_norm = LayerNorm2d(16)
        self.blocks = nn.Sequential(ConvNeXtBlock(16), ConvNeXtBlock(16))
        self.down_norm = LayerNorm2d(16)
        self.down = nn.Conv2d(16, 24, 2, 2)
        self.head = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_norm(self.stem(x)))
        x = self.down(self.down_norm(x))
        return self.head(x.mean((2, 3)))


class BNActNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.b1 = BatchNormAct2d(16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.b2 = BatchNormAct2d(16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.b2(self.c2(self.b1(self.c1(x)))).mean((2, 3)))


class Inceptionish(nn.Module):
    """Concatenation of branches whose weights differ in scale by 100x."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 1)
        self.b = nn.Conv2d(3, 16, 3, padding=1)
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        with torch.no_grad():
            self.b.weight.mul_(0.01)
        self.out = nn.Conv2d(40, 8, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x)), F.relu(self.c(x))], 1)
        return self.fc(self.out(y).mean((2, 3)))


class MHANet(nn.Module):
    def __init__(self, bias_kv: bool = False) -> None:
        super().__init__()
        self.emb = nn.Linear(6, 32)
        self.attn = nn.MultiheadAttention(32, 2, batch_first=True, add_bias_kv=bias_kv)
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.fc(a + h)


class SDPAAttention(nn.Module):
    """timm-style fused qkv, reshape into heads, scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int, manual: bool = False) -> None:
        super().__init__()
        self.num_heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.manual = manual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.manual:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            y = attn.softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, -1))


class ViTish(nn.Module):
    def __init__(self, manual: bool = False) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 32, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, 32) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 17, 32) * 0.02)
        self.norm1 = nn.LayerNorm(32)
        self.attn = SDPAAttention(32, 4, manual)
        self.norm2 = nn.LayerNorm(32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.head(x[:, 0])


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if x.sum() > 0 else x


class WithUntraceable(nn.Module):
    """A block with data-dependent control flow between prunable layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Sequential(nn.Linear(16, 16), Branchy())
        self.c = nn.Linear(16, 32)
        self.d = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d(F.relu(self.c(self.b(F.relu(self.a(x))))))


class WithConstant(nn.Module):
    """A plain tensor attribute (not a parameter or buffer) used in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.scale_t = torch.linspace(0.5, 1.5, 16)
        self.b = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)) * self.scale_t)


class DenseConcat(nn.Module):
    """DenseNet-style growing concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.l1 = nn.Conv2d(16, 8, 3, padding=1)
        self.l2 = nn.Conv2d(24, 8, 3, padding=1)
        self.trans = nn.Conv2d(32, 16, 1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = torch.cat([x, F.relu(self.l1(x))], 1)
        x = torch.cat([x, F.relu(self.l2(x))], 1)
        return self.fc(self.trans(x).mean((2, 3)))


PATTERNS: dict[str, tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = {
    "convnext": (ConvNeXtish, lambda: torch.randn(2, 3, 16, 16)),
    "bn_act": (BNActNet, lambda: torch.randn(2, 3, 8, 8)),
    "inception": (Inceptionish, lambda: torch.randn(2, 3, 8, 8)),
    "dense": (DenseConcat, lambda: torch.randn(2, 3, 8, 8)),
    "mha": (MHANet, lambda: torch.randn(2, 5, 6)),
    "mha_bias_kv": (lambda: MHANet(True), lambda: torch.randn(2, 5, 6)),
    "vit_sdpa": (ViTish, lambda: torch.randn(2, 3, 32, 32)),
    "vit_manual": (lambda: ViTish(True), lambda: torch.randn(2, 3, 32, 32)),
    "untraceable": (WithUntraceable, lambda: torch.randn(2, 8)),
    "constant": (WithConstant, lambda: torch.randn(2, 8)),
}


def _stats_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm))]


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_invariants(name: str) -> None:
    factory, make_x = PATTERNS[name]
    torch.manual_seed(0)
    model, x = factory().eval(), make_x()
    ref = model(x)
    slim, report = prune(model, x, ratio=0.5)
    assert slim(x).shape == ref.shape
    assert report.params_after < report.params_before, report.notes
    torch.manual_seed(1)
    fresh = apply_plan(factory(), report.plan)
    fresh.load_state_dict(slim.state_dict())
    assert torch.allclose(fresh.eval()(x), slim(x), atol=1e-6)
    # zeroing what will be removed leaves the output unchanged after pruning
    _, rep2 = prune(model, x, ratio=0.5, frozen_layers=_stats_norms(model))
    if rep2.plan["layers"] or rep2.plan["params"]:
        assert removed_units_error(model, x, rep2.plan) < 1e-5
    assert torch.equal(model(x), ref)  # the input model is untouched


def test_layernorm_subclass_shrinks_normalized_shape() -> None:
    torch.manual_seed(0)
    model, x = ConvNeXtish().eval(), torch.randn(2, 3, 16, 16)
    slim, _ = prune(model, x, ratio=0.5)
    assert slim.stem_norm.normalized_shape == (8,) and slim.stem_norm.weight.shape == (8,)
    assert slim.blocks[0].norm.normalized_shape == (8,)
    assert slim.blocks[0].fc1.out_features == 32


def test_batchnorm_subclass_with_own_forward_is_pruned() -> None:
    torch.manual_seed(0)
    model, x = BNActNet().eval(), torch.randn(2, 3, 8, 8)
    slim, report = prune(model, x, ratio=0.5)
    assert slim.b1.num_features == 8 and slim.b1.running_mean.shape == (8,)
    assert report.macs_reduction > 2.5


def test_concat_branches_each_lose_their_share() -> None:
    """A branch with 100x smaller weights is not wiped out by the ranking of the whole group."""
    torch.manual_seed(0)
    model, x = Inceptionish().eval(), torch.randn(2, 3, 8, 8)
    slim, report = prune(model, x, ratio=0.5)
    assert (slim.a.out_channels, slim.b.out_channels, slim.c.out_channels) == (8, 8, 4)
    assert report.min_kept_fraction == pytest.approx(0.5)


def test_mha_head_dim_scale_is_folded() -> None:
    """Zero 4 of 16 dims of every head, prune them: the output is unchanged (softmax scale)."""
    torch.manual_seed(0)
    model, x = MHANet().eval(), torch.randn(2, 5, 6)
    _, report = prune(model, x, ratio=0.25)
    assert report.plan["layers"]["attn"]["in"] and len(report.plan["layers"]["attn"]["in"]) == 24
    assert removed_units_error(model, x, report.plan) < 1e-6


def test_sdpa_attention_removes_whole_heads() -> None:
    torch.manual_seed(0)
    model, x = ViTish().eval(), torch.randn(2, 3, 32, 32)
    slim, _ = prune(model, x, ratio=0.5, frozen_layers=_stats_norms(model))
    assert slim.attn.num_heads == 2 and slim.attn.head_dim == 8
    assert slim.attn.qkv.out_features == 48


def test_untraceable_block_falls_back_to_an_opaque_layer() -> None:
    torch.manual_seed(0)
    model, x = WithUntraceable().eval(), torch.randn(2, 8)
    slim, report = prune(model, x, ratio=0.5)
    assert slim.b[1].fc.in_features == 16  # inside the opaque block: unchanged
    assert slim.c.out_features == 16  # outside: pruned
    assert any("b.1" in n and "cannot trace" in n for n in report.notes)


class _ReluFC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3)
        self.c2 = nn.Conv2d(16, 32, 3)
        self.fc = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.c2(F.relu(self.c1(x)))).mean((2, 3)))


def test_ignored_layers_accept_modules_of_the_original_model() -> None:
    torch.manual_seed(0)
    model, x = _ReluFC().eval(), torch.randn(1, 3, 8, 8)
    slim, report = prune(model, x, ratio=0.5, ignored_layers=[model.fc, model.c1])
    assert slim.fc.in_features == 16  # an ignored layer's inputs follow the layer before
    assert slim.c1.out_channels == 16  # ...and it keeps its own output units
    assert slim.c2.out_channels == 16
    assert any("c1" in s for s in report.skipped)
    frozen, _ = prune(model, x, ratio=0.5, frozen_layers=[model.fc])
    assert frozen.fc.in_features == 32 and frozen.c1.out_channels == 8  # old behaviour
    with pytest.raises(InvalidParameterError, match="ignored_layers"):
        prune(model, x, ratio=0.5, ignored_layers=[nn.Linear(2, 2)])


def test_math_of_fold_matches_issue_numbers() -> None:
    assert math.isclose(math.sqrt(12 / 16), 0.8660254, rel_tol=1e-6)


class RNNNet(nn.Module):
    def __init__(self, kind: type[nn.RNNBase], bidirectional: bool, layers: int) -> None:
        super().__init__()
        self.emb = nn.Linear(6, 12)
        self.rnn = kind(12, 16, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(16 * (2 if bidirectional else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.emb(x))
        return self.fc(out[:, -1])


class LastHidden(nn.Module):
    """Classifier on the final hidden state ``h_n[-1]`` of an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(6, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.rnn(x)
        return self.fc(h[-1])


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize(("bidirectional", "layers"), [(False, 1), (True, 2)])
def test_recurrent_hidden_units_are_pruned(kind: type[nn.RNNBase], bidirectional: bool,
                                           layers: int) -> None:
    torch.manual_seed(0)
    model, x = RNNNet(kind, bidirectional, layers).eval(), torch.randn(2, 5, 6)
    slim, report = prune(model, x, ratio=0.5)
    assert slim.rnn.hidden_size == 8 and slim.rnn.input_size == 6
    assert slim(x).shape == (2, 3)
    fresh = apply_plan(RNNNet(kind, bidirectional, layers), report.plan)
    fresh.load_state_dict(slim.state_dict())
    assert torch.allclose(fresh.eval()(x), slim(x), atol=1e-6)
    assert removed_units_error(model, x, report.plan) < 1e-5


def test_lstm_final_hidden_state_follows_pruning() -> None:
    torch.manual_seed(0)
    model, x = LastHidden().eval(), torch.randn(2, 5, 6)
    slim, report = prune(model, x, ratio=0.5)
    assert slim.rnn.hidden_size == 8 and slim.fc.in_features == 8
    assert removed_units_error(model, x, report.plan) < 1e-5


class EncoderNet(nn.Module):
    def __init__(self, stack: bool) -> None:
        super().__init__()
        self.emb = nn.Linear(6, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True,
                                           dropout=0.0)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False) if stack else layer
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.enc(self.emb(x)).mean(1))


@pytest.mark.parametrize("stack", [False, True])
def test_transformer_encoder_is_pruned(stack: bool) -> None:
    torch.manual_seed(0)
    model, x = EncoderNet(stack).eval(), torch.randn(2, 5, 6)
    slim, report = prune(model, x, ratio=0.5)
    layer = slim.enc.layers[1] if stack else slim.enc
    assert layer.self_attn.embed_dim == 16 and layer.linear1.out_features == 32
    assert layer.norm1.normalized_shape == (16,)
    with torch.no_grad():
        y = slim(x)  # the fast path (inference, no grad) still runs
    assert y.shape == (2, 3)
    fresh = apply_plan(EncoderNet(stack), report.plan)
    fresh.load_state_dict(slim.state_dict())
    assert torch.allclose(fresh.eval()(x), slim(x), atol=1e-5)


def test_numpy_example_inputs_are_accepted() -> None:
    torch.manual_seed(0)
    model = _ReluFC().eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8))  # float64 -> model dtype
    slim, _ = prune(model, x, ratio=0.5)
    assert slim(torch.as_tensor(x, dtype=torch.float32)).shape == (1, 4)


def test_dict_inputs_and_hf_style_models_point_to_prune_transformer() -> None:
    model = _ReluFC().eval()
    with pytest.raises(InvalidParameterError, match="prune_transformer"):
        prune(model, {"input_ids": torch.zeros(1, 4, dtype=torch.long)}, ratio=0.5)

    class FakeConfig:
        model_type = "bert"

    model.config = FakeConfig()
    with pytest.raises(UnsupportedModelError, match="prune_transformer"):
        prune(model, torch.randn(1, 3, 8, 8), ratio=0.5)


class _AllFrozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft(self.fc(x)).real  # an op prunekit does not track


def test_weak_result_warns_and_says_why() -> None:
    model = _AllFrozen().eval()
    with pytest.warns(UserWarning, match=r"removed only 0\.0%.*(fixed|no prunable)"):
        prune(model, torch.randn(2, 8), ratio=0.5)


def test_layer_keeping_under_ten_percent_warns() -> None:
    torch.manual_seed(0)
    model = _ReluFC().eval()
    with pytest.warns(UserWarning, match="under 10%"):
        _, report = prune(model, torch.randn(1, 3, 8, 8), ratio=0.95, max_ratio=0.95)
    assert report.min_kept_fraction < 0.1


def test_resnet18_ignoring_fc_still_prunes_its_inputs() -> None:
    """Torch-Pruning's convention: resnet18 with ignored_layers=[model.fc] loses ~4x params."""
    from prunekit._compat import import_torchvision

    tv = import_torchvision()
    torch.manual_seed(0)
    model = tv.models.resnet18(num_classes=10).eval()
    slim, report = prune(model, torch.randn(1, 3, 32, 32), ratio=0.5, ignored_layers=[model.fc])
    assert slim.fc.in_features == 256 and slim.fc.out_features == 10
    assert report.params_reduction > 3.5


class ShapeDependent(nn.Module):
    """MobileViT-style unfolding: Python arithmetic and branches on the input's *shape*."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 16)
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, c, h, w = y.shape
        new_h = math.ceil(h / 4) * 4
        if new_h != h:
            y = F.interpolate(y, size=(new_h, new_h))
        z = self.fc(y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, new_h, new_h)
        return self.out(F.relu(z))


def test_shape_dependent_python_is_traced_with_concrete_shapes() -> None:
    torch.manual_seed(0)
    model, x = ShapeDependent().eval(), torch.randn(1, 3, 6, 6)
    slim, report = prune(model, x, ratio=0.5)
    assert slim.conv.out_channels == 8 and slim.fc.out_features == 8
    assert not any("cannot trace" in n for n in report.notes)
    assert removed_units_error(model, x, report.plan) < 1e-5


class RelPosAttention(nn.Module):
    """Swin/MaxViT-style relative position bias: a (positions, heads) table gathered by an
    index buffer and added to the attention logits; its head dimension follows the heads."""

    def __init__(self, dim: int = 32, heads: int = 4, n: int = 5) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.randn(2 * n - 1, heads))
        pos = torch.arange(n)
        self.register_buffer("index", (pos[:, None] - pos[None, :] + n - 1).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.table[self.index].view(n, n, -1).permute(2, 0, 1)
        attn = (q @ k.transpose(-2, -1) + bias.unsqueeze(0)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


def test_relative_position_table_follows_pruned_heads() -> None:
    torch.manual_seed(0)
    model, x = RelPosAttention().eval(), torch.randn(2, 5, 32)
    slim, report = prune(model, x, ratio=0.5)
    assert slim.num_heads == 2 and slim.table.shape == (9, 2)
    assert removed_units_error(model, x, report.plan) < 1e-5
    fresh = apply_plan(RelPosAttention(), report.plan)
    fresh.load_state_dict(slim.state_dict())


class WidthTiedAttention(nn.Module):
    """torchvision-Swin style: head_dim computed from the *input* width at run time, so the
    attention width cannot shrink on its own (a coupling torch.fx does not record)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads = 4
        self.inp = nn.Linear(6, 32)
        self.qkv = nn.Linear(32, 96)
        self.proj = nn.Linear(32, 32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2))
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(x)


def test_groups_that_break_the_model_are_kept_with_a_note() -> None:
    torch.manual_seed(0)
    model, x = WidthTiedAttention().eval(), torch.randn(2, 5, 6)
    slim, report = prune(model, x, ratio=0.5)
    assert slim(x).shape == (2, 5, 32)
    assert slim.mlp[0].out_features == 32  # what can be pruned still is
    assert any("breaks the model" in n for n in report.notes)
    assert removed_units_error(model, x, report.plan) < 1e-5
