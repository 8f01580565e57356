"""GPU paths (``device=``) of the weight-sparsity, one-shot and distillation entry points.

Run only where ``torch.cuda.is_available()``; skipped elsewhere (CPU CI). Each compares the GPU
result with the CPU one (masks agree up to near-ties of floating-point sums, weights within
tolerance) and checks where the outputs live.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn


def needs_cuda(fn: object) -> object:
    """Mark ``cuda`` and skip without a GPU."""
    fn = pytest.mark.cuda(fn)
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(fn)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 4))


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g))
            for _ in range(3)]


def _agree(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.cpu() == b.cpu()).float().mean())


@needs_cuda
def test_sparsegpt_and_wanda_on_gpu_match_cpu() -> None:
    from prunekit.nn.oneshot import sparsegpt_prune, wanda_mask

    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 256, generator=g)
    x = torch.randn(512, 256, generator=g)
    H = 2 * x.T @ x / len(x)
    cpu = sparsegpt_prune(w, H, 0.5)
    gpu = sparsegpt_prune(w.cuda(), H.cuda(), 0.5)
    assert gpu.weight.is_cuda and gpu.mask.is_cuda
    assert _agree(cpu.mask, gpu.mask) > 0.99
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-2)
    sq = (x * x).sum(0)
    m_cpu = wanda_mask(w, sq, 0.5, "unstructured", per_row=True)
    m_gpu = wanda_mask(w.cuda(), sq.cuda(), 0.5, "unstructured", per_row=True)
    assert m_gpu.is_cuda and _agree(m_cpu, m_gpu) > 0.999


@needs_cuda
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_oneshot_device_cuda_moves_blocks_on_and_off(method: str) -> None:
    from prunekit.nn.oneshot import oneshot

    model = nn.Sequential(*[nn.Sequential(nn.Linear(32, 32), nn.GELU()) for _ in range(3)])
    calib = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    ref, on_gpu, gpu_model = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    oneshot(ref, calib, method, 0.5, batch_size=16)
    rep = oneshot(on_gpu, calib, method, 0.5, batch_size=16, device="cuda")
    assert all(p.device.type == "cpu" for p in on_gpu.parameters())  # moved back
    assert rep.sparsity == pytest.approx(0.5)
    oneshot(gpu_model.cuda(), calib, method, 0.5, batch_size=16)  # device=None: the model's
    assert all(p.is_cuda for p in gpu_model.parameters())
    for a, b, c in zip(ref.parameters(), on_gpu.parameters(), gpu_model.parameters(),
                       strict=True):
        assert _agree(a == 0, b == 0) > 0.98 and _agree(a == 0, c.cpu() == 0) > 0.98
        torch.testing.assert_close(b, c.cpu(), rtol=1e-3, atol=1e-4)


@needs_cuda
def test_prune_model_and_pruner_on_gpu_with_a_cpu_dataloader() -> None:
    from prunekit.nn import Pruner, prune_model

    cpu_model, gpu_model = _mlp(), _mlp()
    rep_cpu = prune_model(cpu_model, 0.6, criterion="taylor", data=_data(), prune_first_last=True)
    rep_gpu = prune_model(gpu_model, 0.6, criterion="taylor", data=_data(),
                          prune_first_last=True, device="cuda")
    assert all(p.device.type == "cpu" for p in gpu_model.parameters())  # moved back
    for k in rep_cpu.masks:
        assert _agree(rep_cpu.masks[k], rep_gpu.masks[k]) > 0.99
    model = _mlp()
    pruner = Pruner(model, sparsity=0.5, criterion="obd", data=_data(), device="cuda",
                    prune_first_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner.optimizer = opt
    pruner.prepare()
    for xb, yb in _data():
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb.cuda()), yb.cuda()).backward()
        pruner.mask_gradients()
        opt.step()
        pruner.step()
    assert all(m.is_cuda for m in pruner.masks.values())
    assert pruner.report().sparsity == pytest.approx(0.5, abs=0.01)


@needs_cuda
def test_finetune_and_distill_on_gpu() -> None:
    from prunekit.nn.distill import finetune

    student, teacher = _mlp(), _mlp()
    losses = finetune(student, _data(), epochs=2, teacher=teacher, device="cuda")
    assert all(p.is_cuda for p in student.parameters())
    assert all(p.device.type == "cpu" for p in teacher.parameters())  # teacher stays put
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


@needs_cuda
def test_oneshot_from_checkpoint_on_gpu_matches_cpu(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from prunekit.nn.oneshot import oneshot_from_checkpoint
    from prunekit.nn.oneshot._hf import import_transformers

    tf = import_transformers()
    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=48, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    tf.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "src", max_shard_size="20KB")
    ids = torch.randint(0, 48, (4, 12), generator=torch.Generator().manual_seed(1))
    oneshot_from_checkpoint(tmp_path / "src", tmp_path / "cpu", ids, "sparsegpt")
    oneshot_from_checkpoint(tmp_path / "src", tmp_path / "gpu", ids, "sparsegpt", device="cuda")
    a = tf.GPT2LMHeadModel.from_pretrained(tmp_path / "cpu").state_dict()
    b = tf.GPT2LMHeadModel.from_pretrained(tmp_path / "gpu").state_dict()
    for k in a:
        assert b[k].device.type == "cpu"
        assert _agree(a[k] == 0, b[k] == 0) > 0.98, k


# ------------------------------------------------------------------ device= on CPU (always run)
def test_device_argument_validation_and_cpu_equivalence() -> None:
    from prunekit.errors import InvalidParameterError
    from prunekit.nn import prune_model
    from prunekit.nn.oneshot import oneshot

    model = nn.Sequential(*[nn.Sequential(nn.Linear(16, 16), nn.GELU()) for _ in range(2)])
    calib = torch.randn(32, 16, generator=torch.Generator().manual_seed(3))
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    oneshot(a, calib, "sparsegpt", 0.5)
    oneshot(b, calib, "sparsegpt", 0.5, device="cpu")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    with pytest.raises(InvalidParameterError, match="device"):
        oneshot(copy.deepcopy(model), calib, "wanda", device="meta")
    with pytest.raises(InvalidParameterError, match="device"):
        oneshot(copy.deepcopy(model), calib, "wanda", device="tpu:x")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            oneshot(copy.deepcopy(model), calib, "wanda", device="cuda")
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            prune_model(_mlp(), 0.5, device="cuda")
    rep = prune_model(_mlp(), 0.5, criterion="taylor", data=_data(), device="cpu")
    assert rep.sparsity == pytest.approx(0.5, abs=0.01)
