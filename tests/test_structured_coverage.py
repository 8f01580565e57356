"""Structured pruning of patterns that used to be kept whole: channel statistics (GRN,
F.normalize), token-mixing Linears, broadcast-shape attributes, head_dim-wise attention.

Tiny hand-built modules mimic the timm layers, so these tests need no timm.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.errors import InvalidParameterError
from prunekit.nn.structured import apply_plan, prune
from prunekit.nn.structured.checks import removed_units_error
from prunekit.nn.structured.graph import analyze, attention_units


def _replays(model: nn.Module, pruned: nn.Module, plan: dict, x: torch.Tensor) -> bool:
    fresh = apply_plan(copy.deepcopy(model), plan)
    fresh.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        return torch.allclose(fresh.eval()(x), pruned.eval()(x), atol=1e-6)


# ----------------------------------------------------------------------------- GRN


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt-V2), channels last."""

    def __init__(self, dim: int, stat: str = "mean") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.randn(dim))
        self.stat = stat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_g = x.norm(p=2, dim=(1, 2), keepdim=True)
        s = x_g.mean(dim=-1, keepdim=True) if self.stat == "mean" else x_g.sum(-1, keepdim=True)
        return x + torch.addcmul(self.bias.view(1, 1, 1, -1), self.weight.view(1, 1, 1, -1),
                                 x * (x_g / (s + 1e-6)))


class GRNBlock(nn.Module):
    def __init__(self, stat: str = "mean") -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.grn = GRN(16, stat)
        self.fc2 = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.grn(F.gelu(self.fc1(x.permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)


def test_grn_channels_are_pruned_with_its_affine_params() -> None:
    torch.manual_seed(0)
    model, x = GRNBlock().eval(), torch.randn(2, 8, 5, 5)
    graph = analyze(model, x)
    assert graph.statistics == ["grn"]  # the channel mean is recorded as a statistic
    pruned, rep = prune(model, x, ratio=0.5)
    assert pruned.fc1.out_features == 8 and pruned.fc2.in_features == 8
    keep = torch.as_tensor(rep.plan["params"]["grn.weight"]["keep"])
    assert torch.equal(pruned.grn.weight, model.grn.weight[keep])
    assert torch.equal(pruned.grn.bias, model.grn.bias[keep])
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape
    assert _replays(model, pruned, rep.plan, x)


def test_channel_sum_statistic_is_exact_on_zero_units() -> None:
    torch.manual_seed(0)
    model, x = GRNBlock(stat="sum").eval(), torch.randn(2, 8, 5, 5)
    _, rep = prune(model, x, ratio=0.5)
    assert rep.plan["layers"]["fc1"]["out"]
    assert removed_units_error(model, x, rep.plan) < 1e-5


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_channel_max_with_indices_stays_frozen() -> None:
    class MaxIdx(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc1(x)
            return self.fc2(h) + h.max(dim=-1, keepdim=True).indices.float()

    model, x = MaxIdx().eval(), torch.randn(3, 4)
    _, rep = prune(model, x, ratio=0.5)
    assert "fc1" not in rep.plan["layers"]  # indices name channel positions: kept


def test_normalize_over_tokens_passes_channels_through() -> None:
    class Norm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(F.normalize(self.fc1(x), dim=1))  # dim 1: tokens

    torch.manual_seed(0)
    model, x = Norm().eval(), torch.randn(2, 5, 4)
    pruned, rep = prune(model, x, ratio=0.5)
    assert pruned.fc1.out_features == 4
    assert analyze(model, x).statistics == []
    assert removed_units_error(model, x, rep.plan) < 1e-5


# ----------------------------------------------------------------------------- token mixing


class MixerBlock(nn.Module):
    """MLP-Mixer / ResMLP: a Linear over tokens on the transposed tensor, then channels."""

    def __init__(self, tokens: int = 6, dim: int = 8) -> None:
        super().__init__()
        self.stem = nn.Linear(3, dim)
        self.tok1, self.tok2 = nn.Linear(tokens, 12), nn.Linear(12, tokens)
        self.ch1, self.ch2 = nn.Linear(dim, 16), nn.Linear(16, dim)
        self.alpha = nn.Parameter(torch.randn(1, 1, dim))
        self.head = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.alpha * self.tok2(F.gelu(self.tok1(x.transpose(1, 2)))).transpose(1, 2)
        x = x + self.ch2(F.gelu(self.ch1(x)))
        return self.head(x.mean(1))


def test_token_mixing_linear_lets_channels_be_pruned() -> None:
    torch.manual_seed(0)
    model, x = MixerBlock().eval(), torch.randn(2, 6, 3)
    pruned, rep = prune(model, x, ratio=0.5, ignored_layers=["head"])
    assert pruned.stem.out_features == 4 and pruned.alpha.shape == (1, 1, 4)
    assert pruned.tok1.in_features == 6 and pruned.tok2.out_features == 6  # tokens kept
    assert pruned.ch1.out_features == 8
    assert removed_units_error(model, x, rep.plan) < 1e-5
    assert _replays(model, pruned, rep.plan, x)


# ----------------------------------------------------------------------------- view shapes


class Scale(nn.Module):
    """timm metaformer ``Scale``: the parameter is viewed through a stored shape."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.shape = (dim, 1, 1)
        self.kernel = [dim, 3]  # not a view shape of the parameter: must stay
        self.scale = nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(self.shape)


class ScaleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.s, self.c2 = nn.Conv2d(3, 8, 3), Scale(8), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.s(self.c1(x)))


def test_broadcast_shape_attribute_follows_the_pruned_parameter() -> None:
    torch.manual_seed(0)
    model, x = ScaleNet().eval(), torch.randn(1, 3, 6, 6)
    pruned, rep = prune(model, x, ratio=0.5)
    assert pruned.c1.out_channels == 4
    assert pruned.s.shape == (4, 1, 1) and pruned.s.kernel == [8, 3]
    assert model.s.shape == (8, 1, 1)  # the user's model is untouched
    assert removed_units_error(model, x, rep.plan) < 1e-5
    assert _replays(model, pruned, rep.plan, x)


# ----------------------------------------------------------------------------- attention


class Attention(nn.Module):
    """timm-style attention: fused qkv, reshape by num_heads/head_dim, explicit scale."""

    def __init__(self, dim: int = 12, num_heads: int = 2, head_dim: int = 8,
                 sdpa: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.attn_dim = num_heads * head_dim
        self.scale = head_dim ** -0.5
        self.sdpa = sdpa
        self.qkv = nn.Linear(dim, 3 * self.attn_dim)
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.sdpa:
            x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = attn @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, self.attn_dim))


@pytest.mark.parametrize("sdpa", [False, True])
def test_head_dim_pruning_keeps_heads_and_is_exact(sdpa: bool) -> None:
    torch.manual_seed(0)
    model, x = Attention(sdpa=sdpa).eval(), torch.randn(2, 5, 12)
    with attention_units("head_dim"):
        pruned, rep = prune(model, x, ratio=0.5)
        err = removed_units_error(model, x, rep.plan)
    a = pruned
    assert (a.num_heads, a.head_dim, a.attn_dim) == (2, 4, 8)
    assert a.qkv.out_features == 24 and a.proj.in_features == 8
    assert a.scale == 8 ** -0.5  # the original head_dim's scale: logits of kept dims unchanged
    assert err < 1e-5
    assert _replays(model, pruned, rep.plan, x)
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape


def test_head_dim_units_remove_the_same_offsets_from_q_k_and_every_head() -> None:
    torch.manual_seed(0)
    model, x = Attention(num_heads=3, head_dim=4).eval(), torch.randn(1, 4, 12)
    with attention_units("head_dim"):
        _, rep = prune(model, x, ratio=0.5)
    rows = rep.plan["layers"]["qkv"]["out"]
    offsets = [{r % 4 for r in rows if r // 4 == c} for c in range(9)]  # (q/k/v, head) chunks
    assert all(o == offsets[0] and len(o) == 2 for o in offsets)


def test_whole_heads_stay_the_default() -> None:
    torch.manual_seed(0)
    model, x = Attention(num_heads=4, head_dim=4).eval(), torch.randn(1, 4, 12)
    pruned, _ = prune(model, x, ratio=0.5)
    assert (pruned.num_heads, pruned.head_dim) == (2, 4)


def test_attention_units_rejects_unknown_modes() -> None:
    with pytest.raises(InvalidParameterError, match="head_dim"), attention_units("channels"):
        pass
    with pytest.raises(InvalidParameterError, match="attention"):
        analyze(Attention(), torch.randn(1, 3, 12), attention="rows")


# ----------------------------------------------------------------------------- mixed split


class MixedConv(nn.Module):
    """timm ``MixedConv2d``: the input is split by a stored list of sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 5, padding=2)])
        self.splits = [4, 4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = torch.split(x, self.splits, 1)
        return torch.cat([c(xs[i]) for i, c in enumerate(self.convs)], 1)


def test_fixed_split_sizes_keep_their_channels_with_a_note() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), MixedConv(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 6, 6)
    pruned, rep = prune(model, x, ratio=0.5)
    assert pruned[0].out_channels == 8 and pruned[1].splits == [4, 4]  # split input kept
    assert [c.out_channels for c in pruned[1].convs] == [2, 2]  # the cat output is pruned
    assert any(n.startswith("1: split of 8 channels into [4, 4] (fixed split sizes)")
               for n in rep.notes)
    assert removed_units_error(model, x, rep.plan) < 1e-5
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape


def test_prune_attention_argument_matches_the_context_manager() -> None:
    torch.manual_seed(0)
    model, x = Attention(num_heads=3, head_dim=4).eval(), torch.randn(1, 4, 12)
    by_arg, rep_arg = prune(model, x, ratio=0.5, attention="head_dim")
    with attention_units("head_dim"):
        by_ctx, rep_ctx = prune(model, x, ratio=0.5)
    assert (by_arg.num_heads, by_arg.head_dim) == (3, 2)
    assert rep_arg.plan == rep_ctx.plan
    assert torch.equal(by_arg(x), by_ctx(x))
    heads, _ = prune(model, x, ratio=0.5, attention="heads")  # overrides nothing: the default
    assert heads.head_dim == 4


def test_prune_rejects_an_unknown_attention_unit_before_any_work() -> None:
    with pytest.raises(InvalidParameterError, match="attention.*head_dim"):
        prune(Attention(), torch.randn(1, 4, 12), ratio=0.5, attention="channels")
