"""Structured pruning over a zoo of hand-written models covering every coupling pattern."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError
from prunekit.metrics import count_macs
from prunekit.nn.models import DigitsCNN, LeNet300100
from prunekit.nn.structured import (
    CRITERIA,
    apply_plan,
    count_params,
    dependency_groups,
    drop_blocks,
    load_plan,
    prune,
    save_plan,
)
from prunekit.nn.structured.core import _branches, _split_count
from prunekit.nn.structured.handlers import handler_for, slice_tensor


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest single-threaded (and immune to a busy shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- the zoo


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.down is None else self.down(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + idt)


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layers = nn.Sequential(Block(8, 8), Block(8, 8), Block(8, 16, 2), Block(16, 16))
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ConcatCNN(nn.Module):
    """Inception-like branches joined by ``torch.cat``, then a 1x1 conv; flatten into Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 1)
        self.b = nn.Conv2d(3, 10, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.c = nn.Conv2d(16, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))
        x = F.max_pool2d(F.relu(self.c(x)), 2)
        return self.fc(x.flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int = 4) -> None:
        super().__init__()
        h = c * expand
        self.pw = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False),
                                nn.BatchNorm2d(h), nn.ReLU6())
        self.pj = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pj(self.dw(self.pw(x)))


class DepthwiseCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.dw_mult = nn.Conv2d(8, 16, 3, padding=1, groups=8)  # channel multiplier 2
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_mult(self.blocks(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


class GroupedCNN(nn.Module):
    """Grouped convolutions, GroupNorm, PReLU and an even ``chunk`` split."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.act = nn.PReLU(16)
        self.g = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.l = nn.Conv2d(8, 8, 1)
        self.r = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.g(self.act(self.gn(self.c1(x))))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([self.l(a), self.r(b)], 1)
        return self.fc(x.mean((2, 3)))


class HeadAttention(nn.Module):
    """Attention written with q/k/v/o Linear layers and ``view`` into heads (HF style)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.o_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / (self.head_dim ** 0.5)
        y = att.softmax(dim=-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 20, dim: int = 16, heads: int = 4, norm: bool = True,
                 sdpa: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.attn = HeadAttention(dim, heads)
        self.sdpa = sdpa
        self.ln1 = nn.LayerNorm(dim) if norm else nn.Identity()
        self.ln2 = nn.LayerNorm(dim) if norm else nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))
        self.cls = nn.Linear(dim, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return self.cls(x.mean(1))


class MHAModel(nn.Module):
    """nn.MultiheadAttention in a pre-norm block over a Linear patch embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.ln = nn.LayerNorm(16)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 16))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        h = self.ln(x)
        a, _ = self.mha(h, h, h, need_weights=False)
        x = x + a
        x = x + self.mlp(x)
        return self.head(x[:, 0])


ZOO: dict[str, tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = {
    "residual": (ResidualCNN, lambda: torch.randn(2, 3, 8, 8)),
    "concat": (ConcatCNN, lambda: torch.randn(2, 3, 8, 8)),
    "depthwise": (DepthwiseCNN, lambda: torch.randn(2, 3, 8, 8)),
    "grouped": (GroupedCNN, lambda: torch.randn(2, 3, 8, 8)),
    "attention": (TinyTransformer, lambda: torch.randint(0, 20, (2, 5))),
    "mha": (MHAModel, lambda: torch.randn(2, 5, 6)),
    "mlp": (LeNet300100, lambda: torch.randn(2, 784)),
    "digits": (DigitsCNN, lambda: torch.randn(2, 1, 8, 8)),
}


def _make(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    factory, inputs = ZOO[name]
    model = factory().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model, inputs()


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", list(ZOO))
def test_prune_shrinks_and_keeps_output_shape(name: str, tmp_path) -> None:
    model, x = _make(name)
    before = copy.deepcopy(model.state_dict())
    slim, report = prune(model, x, ratio=0.5)
    assert slim(x).shape == model(x).shape
    assert count_params(slim) < count_params(model)
    assert report.macs_after < report.macs_before
    # the original is untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    # a fresh copy of the architecture replays the plan and loads the pruned weights
    path = tmp_path / "plan.json"
    save_plan(report.plan, path)
    fresh = apply_plan(ZOO[name][0](), load_plan(path)).eval()
    fresh.load_state_dict(slim.state_dict())
    assert torch.allclose(fresh(x), slim(x), atol=1e-6)
    json.dumps(report.to_dict())  # report and plan are JSON-serialisable
    assert "MACs" in report.to_markdown()


def _layer_sizes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(m.weight.shape) for n, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), torch.Tensor)}


def test_removed_channels_are_really_gone() -> None:
    model, x = _make("residual")
    slim, _ = prune(model, x, ratio=0.5)
    sizes = _layer_sizes(slim)
    assert sizes["stem.0"] == (4, 3, 3, 3)  # input channels never pruned
    assert sizes["layers.0.conv1"] == (4, 4, 3, 3)
    assert sizes["layers.2.conv2"] == (8, 8, 3, 3)
    assert sizes["layers.2.down.0"] == (8, 4, 1, 1)
    assert sizes["fc"] == (5, 8)  # classifier outputs never pruned
    conv = slim.layers[0].conv1
    assert conv.out_channels == 4 and conv.in_channels == 4
    assert slim.layers[0].bn1.running_mean.shape == (4,)


def test_depthwise_and_grouped_attributes() -> None:
    model, x = _make("depthwise")
    slim, _ = prune(model, x, ratio=0.5)
    dw = slim.blocks[0].dw[0]
    assert dw.groups == dw.in_channels == dw.out_channels == 16
    assert slim.dw_mult.groups == 4 and slim.dw_mult.out_channels == 8
    model, x = _make("grouped")
    slim, _ = prune(model, x, ratio=0.5)
    assert slim.g.groups == 4 and slim.g.in_channels % 4 == 0 and slim.g.out_channels % 4 == 0
    assert slim.gn.num_channels % 4 == 0 and slim.act.num_parameters == slim.gn.num_channels
    assert slim.l.in_channels == slim.r.in_channels  # chunk halves stay equal


def test_attention_prunes_whole_heads_and_updates_num_heads() -> None:
    model, x = _make("attention")
    slim, report = prune(model, x, ratio=0.5)
    att = slim.attn
    assert att.num_heads == 2 and att.head_dim == 4
    assert att.q_proj.out_features == 8 and att.o_proj.in_features == 8
    assert slim.mlp[0].out_features == 16
    assert slim.emb.embedding_dim == 8 and slim.ln1.normalized_shape == (8,)  # residual stream
    assert slim.cls.out_features == 3
    assert report.plan["attrs"]["attn"] == {"num_heads": 2}


def test_multihead_attention_keeps_equal_heads() -> None:
    model, x = _make("mha")
    slim, _ = prune(model, x, ratio=0.5)
    assert slim.mha.num_heads == 4 and slim.mha.embed_dim == 8 and slim.mha.head_dim == 2
    assert slim.mha.in_proj_weight.shape == (24, 8)
    assert slim.ln.normalized_shape == (8,)
    slim, _ = prune(model, x, ratio=0.3, round_to=3)  # kept width: multiple of lcm(3, 4 heads)
    assert slim.mha.embed_dim == 12 and slim.mha.head_dim == 3


def _zero_units(model: nn.Module, x: torch.Tensor, frac: float) -> None:
    """Zero every parameter of the lowest-index ``frac`` of units in every group."""
    graph = dependency_groups(model, x)
    chosen: set[int] = set()
    for g in graph.groups:
        k = int(g.n_units * frac)
        if g.partitions:
            continue
        branches = _branches(graph, g)  # each branch of a concat loses its own share
        for units, kb in zip(branches, _split_count([len(b) for b in branches], k),
                             strict=True):
            chosen.update(units[:kb])
    with torch.no_grad():
        for (name, role), use in graph.uses.items():
            units = graph.unit_of(use)
            pos = torch.tensor([i for i, u in enumerate(units.tolist()) if u in chosen],
                               dtype=torch.long)
            if not len(pos) or role.startswith("param"):
                continue
            m = model.get_submodule(name)
            for s in handler_for(m).slices(m, role):
                t = slice_tensor(m, s)
                if t is not None and s.groups == 1 and s.chunks == 1:
                    t.index_fill_(s.dim, pos, 0.0)


@pytest.mark.parametrize("name", ["residual", "concat", "depthwise", "mlp", "digits"])
@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_removing_zero_channels_changes_nothing(name: str, criterion: str) -> None:
    model, x = _make(name)
    _zero_units(model, x, 0.25)
    slim, report = prune(model, x, ratio=0.25, criterion=criterion)
    assert report.params_after < report.params_before
    assert torch.allclose(slim(x), model(x), atol=1e-5)


def test_removing_zero_heads_changes_nothing() -> None:
    torch.manual_seed(0)
    model = TinyTransformer(norm=False).eval()
    x = torch.randint(0, 20, (2, 5))
    _zero_units(model, x, 0.25)
    slim, _ = prune(model, x, ratio=0.25, criterion="l1")
    assert slim.attn.num_heads == 3
    assert torch.allclose(slim(x), model(x), atol=1e-5)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_runs(criterion: str) -> None:
    model, x = _make("digits")
    data = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))) for _ in range(2)]
    slim, report = prune(model, x, ratio=0.3, criterion=criterion, data=data)
    assert slim(x).shape == (2, 10) and report.criterion == criterion


def test_targets_by_bisection() -> None:
    model, x = _make("residual")
    macs0 = count_macs(model, x)
    slim, rep = prune(model, x, target_macs=0.5)
    assert 0.3 * macs0 <= count_macs(slim, x) <= 0.5 * macs0
    slim, rep = prune(model, x, target_params=0.4)
    assert count_params(slim) <= 0.4 * count_params(model)
    slim, rep = prune(model, x, target_latency=0.9)
    assert slim(x).shape == (2, 5) and 0.0 <= rep.ratio <= 0.9
    with pytest.raises(InvalidParameterError, match="target_latency"):
        prune(model, x, target_latency=2.0)


def test_global_allocation_round_to_and_limits() -> None:
    model, x = _make("digits")
    slim, _ = prune(model, x, ratio=0.5, allocation="global", round_to=4, max_ratio=0.75)
    for m in slim.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels > 1:
            assert m.out_channels % 4 == 0 and m.out_channels >= 4
    assert count_params(slim) < count_params(model)


def test_invalid_arguments() -> None:
    model, x = _make("digits")
    with pytest.raises(InvalidParameterError, match="exactly one"):
        prune(model, x)
    with pytest.raises(InvalidParameterError, match="criterion"):
        prune(model, x, ratio=0.5, criterion="nope")
    with pytest.raises(InvalidParameterError, match="data"):
        prune(model, x, ratio=0.5, criterion="taylor")
    with pytest.raises(InvalidParameterError, match="ignored_layers"):
        prune(model, x, ratio=0.5, ignored_layers=["missing"])


class WithLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.rnn = nn.Bilinear(8, 8, 8)  # a torch layer without a handler
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.out(self.rnn(h, h)[:, -1])


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if x.sum() > 0 else x


class WithBranchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = Branchy()
        self.c = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)))


def test_unsupported_layer_names_module_and_suggests_ignored_layers() -> None:
    model, x = WithLSTM().eval(), torch.randn(2, 3, 4)
    with pytest.raises(UnsupportedModelError, match=r"'rnn'.*ignored_layers"):
        prune(model, x, ratio=0.5)
    slim, report = prune(model, x, ratio=0.5, ignored_layers=["rnn"])
    assert slim.rnn.in1_features == 8 and slim(x).shape == (2, 2)
    assert any("rnn" in s for s in report.skipped)


def test_untraceable_module_becomes_an_opaque_layer() -> None:
    model, x = WithBranchy().eval(), torch.randn(2, 4)
    slim, report = prune(model, x, ratio=0.5)
    assert slim(x).shape == (2, 2)
    assert any(n.startswith("b:") and "cannot trace" in n for n in report.notes)
    slim, _ = prune(model, x, ratio=0.5, frozen_layers=["b"])
    assert slim(x).shape == (2, 2)


def test_plan_for_another_architecture_is_rejected() -> None:
    model, x = _make("digits")
    _, report = prune(model, x, ratio=0.5)
    with pytest.raises(ShapeMismatchError):
        apply_plan(DigitsCNN(width=8), report.plan)


def test_exports_work_on_pruned_model(tmp_path) -> None:
    model, x = _make("residual")
    slim, _ = prune(model, x, ratio=0.5)
    traced = torch.jit.trace(slim, x)
    assert torch.allclose(traced(x), slim(x), atol=1e-5)
    exported = torch.export.export(slim, (x,))
    assert torch.allclose(exported.module()(x), slim(x), atol=1e-5)
    path = tmp_path / "m.pt"
    torch.save(slim, path)
    again = torch.load(path, weights_only=False)
    assert torch.allclose(again(x), slim(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export(tmp_path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, x = _make("concat")
    slim, _ = prune(model, x, ratio=0.5)
    path = tmp_path / "m.onnx"
    torch.onnx.export(slim, (x,), str(path), dynamo=False)
    sess = ort.InferenceSession(str(path))
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), slim(x), atol=1e-4)


def test_drop_blocks_removes_least_influential_residual_blocks() -> None:
    model, x = _make("residual")
    slim, report = drop_blocks(model, x, n_blocks=2)
    assert len(report.removed) == 2 and set(report.removed) <= {"layers.0", "layers.1",
                                                                "layers.3"}
    assert sum(isinstance(b, nn.Identity) for b in slim.layers) == 2
    assert slim(x).shape == model(x).shape
    assert count_macs(slim, x) < count_macs(model, x)
    # blocks then channels: both plans replay on a fresh model
    slimmer, rep = prune(slim, x, ratio=0.5)
    fresh = apply_plan(apply_plan(ResidualCNN(), report.plan), rep.plan).eval()
    fresh.load_state_dict(slimmer.state_dict())
    assert torch.allclose(fresh(x), slimmer(x), atol=1e-6)


def test_torchvision_models() -> None:
    from prunekit._compat import import_torchvision
    from prunekit.errors import OptionalDependencyError

    try:
        tv = import_torchvision()
    except OptionalDependencyError:
        pytest.skip("torchvision is not installed")
    from torchvision.models.vision_transformer import VisionTransformer

    cases = [
        (lambda: tv.models.resnet18(num_classes=10), torch.randn(1, 3, 32, 32)),
        (lambda: tv.models.mobilenet_v2(num_classes=10), torch.randn(1, 3, 32, 32)),
        (lambda: VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2,
                                   hidden_dim=16, mlp_dim=32, num_classes=10),
         torch.randn(1, 3, 16, 16)),
    ]
    for factory, x in cases:
        torch.manual_seed(0)
        model = factory().eval()
        slim, rep = prune(model, x, ratio=0.5)
        assert slim(x).shape == (1, 10)
        assert rep.macs_reduction > 2.0
        fresh = apply_plan(factory(), rep.plan).eval()
        fresh.load_state_dict(slim.state_dict())
        assert torch.allclose(fresh(x), slim(x), atol=1e-5)


def test_example_inputs_the_model_cannot_run_raise_shape_mismatch() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(ShapeMismatchError, match="example_inputs"):
        prune(model, torch.randn(2, 7), ratio=0.5)


def test_load_plan_rejects_missing_and_non_plan_files(tmp_path) -> None:
    with pytest.raises(InvalidParameterError, match="existing file"):
        load_plan(tmp_path / "missing.json")
    for text in ("not json", "[1, 2]", '{"format": "other"}'):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InvalidParameterError):
            load_plan(tmp_path / "bad.json")
