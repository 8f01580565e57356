"""export_onnx: pruned CNNs, ViT, HF encoders, sklearn trees; verification errors."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from prunekit.errors import (
    InvalidParameterError,
    NotFittedError,
    OptionalDependencyError,
    UnsupportedModelError,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from prunekit.deploy import ExportVerificationError, export_onnx, fold_batchnorm  # noqa: E402


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_import_stays_light():
    code = ("import sys, prunekit; prunekit.deploy.export_onnx; "
            "bad = [m for m in ('onnx', 'onnxruntime', 'skl2onnx', 'onnxscript', 'torch') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_missing_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OptionalDependencyError, match=r"prunekit\[deploy\]"):
        export_onnx(nn.Linear(3, 2), torch.randn(1, 3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_fold_batchnorm_keeps_outputs():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                      nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5))
    m.train()
    for _ in range(3):
        m(torch.randn(8, 3, 8, 8))
    m.eval()
    x = torch.randn(4, 3, 8, 8)
    ref = m(x)
    work = copy.deepcopy(m)
    folded, notes = fold_batchnorm(work)
    assert folded == ["0", "4"] and not notes
    assert isinstance(work[1], nn.Identity) and isinstance(work[5], nn.Identity)
    torch.testing.assert_close(work(x), ref, atol=1e-5, rtol=1e-5)


def test_structurally_pruned_cnn(tmp_path):
    from prunekit.nn.models import DigitsCNN
    from prunekit.nn.structured import prune

    x = torch.randn(1, 1, 8, 8)
    slim, _ = prune(DigitsCNN().eval(), x, ratio=0.5)
    before = _state(slim)
    report = export_onnx(slim, x, tmp_path / "slim.onnx", exporter="torchscript")
    assert (tmp_path / "slim.onnx").stat().st_size == report.file_bytes > 0
    assert report.max_abs_diff <= report.tolerance
    assert report.folded_batchnorm  # DigitsCNN has conv + BN pairs
    assert report.dynamic_axes == {"x": {0: "batch"}}
    assert any(c.startswith("batch 2") for c in report.checks)
    for k, v in slim.state_dict().items():  # the user's model is untouched
        torch.testing.assert_close(v, before[k])
    assert "ONNX export" in report.to_markdown()


def test_dynamo_exporter_names_batch_axis(tmp_path):
    pytest.importorskip("onnxscript")
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    report = export_onnx(m, torch.randn(1, 6), tmp_path / "mlp.onnx", exporter="dynamo")
    assert report.exporter == "dynamo"
    assert list(report.dynamic_axes.values()) == [{0: "batch"}]
    assert report.output_names == ["output_0"]
    assert report.max_abs_diff < 1e-5


def test_pruned_hf_encoder_dynamic_sequence(tmp_path):
    from prunekit.nn.oneshot._hf import import_transformers

    tr = import_transformers()
    cfg = tr.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(0)
    from prunekit.nn.structured import prune_transformer

    bert, _ = prune_transformer(tr.BertModel(cfg).eval(), head_ratio=0.5, ffn_ratio=0.5,
                                example_inputs=torch.randint(0, 50, (1, 8)))
    assert bert.encoder.layer[0].intermediate.dense.out_features == 32  # really pruned
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    report = export_onnx(bert, {"input_ids": ids, "attention_mask": mask}, tmp_path / "b.onnx",
                         exporter="torchscript")
    assert report.input_names == ["input_ids", "attention_mask"]
    assert report.output_names == ["last_hidden_state", "pooler_output"]
    assert report.dynamic_axes["input_ids"] == {0: "batch", 1: "sequence"}
    assert any(c.startswith("sequence one shorter") for c in report.checks)
    assert report.max_abs_diff <= report.tolerance


def test_structurally_pruned_tiny_vit(tmp_path):
    from prunekit._compat import import_torchvision

    import_torchvision()
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    from prunekit.nn.structured import prune

    vit = VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                            mlp_dim=32, num_classes=4).eval()
    x = torch.randn(2, 3, 16, 16)
    slim, _ = prune(vit, x, ratio=0.5)
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in vit.parameters())
    report = export_onnx(slim, x, tmp_path / "vit.onnx", exporter="torchscript")
    assert report.max_abs_diff <= report.tolerance


class _DriftsUnderTrace(nn.Module):
    """Uses a Python float of the input: tracing freezes it, so other inputs give other outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - float(x.mean())


def test_output_change_under_export_is_an_error(tmp_path):
    path = tmp_path / "drift.onnx"
    x = torch.randn(3, 4)
    with pytest.raises(ExportVerificationError, match="differs from PyTorch"):
        export_onnx(_DriftsUnderTrace(), x, path, exporter="torchscript")
    assert not path.exists()
    assert not list(tmp_path.iterdir())  # no temporary file left behind either


class _CumMax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(x, 1).values


def test_unsupported_op_names_the_layer(tmp_path):
    m = nn.Sequential(nn.Linear(4, 4), _CumMax(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedModelError, match=r"'1' \(_CumMax\)"):
        export_onnx(m, torch.randn(2, 4), tmp_path / "x.onnx", exporter="torchscript")
    assert not (tmp_path / "x.onnx").exists()


def test_bad_arguments(tmp_path):
    m = nn.Linear(3, 2)
    with pytest.raises(InvalidParameterError, match="exporter"):
        export_onnx(m, torch.randn(1, 3), tmp_path / "m.onnx", exporter="jit")
    with pytest.raises(InvalidParameterError, match="example_inputs"):
        export_onnx(m, "x", tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError):
        export_onnx(object(), torch.randn(1, 3), tmp_path / "m.onnx")


# --------------------------------------------------------------------------- scikit-learn


def test_pruned_forest_predicts_like_sklearn(tmp_path):
    pytest.importorskip("skl2onnx")
    from sklearn.ensemble import RandomForestClassifier

    from prunekit.data import load_dataset
    from prunekit.ensembles import prune_ensemble

    ds = load_dataset("breast_cancer")
    rf = RandomForestClassifier(20, random_state=0).fit(ds.X_train, ds.y_train)
    small = prune_ensemble(rf, method="margin_distance", size=0.3, X_val=ds.X_val, y_val=ds.y_val)
    report = export_onnx(small, ds.X_test, tmp_path / "rf.onnx")
    assert report.exporter == "skl2onnx" and report.prediction_mismatches == 0
    assert report.threshold_mismatches is not None
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "rf.onnx"), providers=["CPUExecutionProvider"])
    X32 = ds.X_test.astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"X": X32})[0], small.predict(X32))


def _stump_with_rounding_threshold():
    """A stump on two adjacent float32 values whose float64 midpoint rounds *up* to float32."""
    from sklearn.tree import DecisionTreeClassifier

    up = np.float32(2)
    a = np.float32(1.0)  # 3 float32 steps apart: more than sklearn's 1e-7 minimum split gap
    while True:
        b = np.nextafter(np.nextafter(np.nextafter(a, up), up), up)
        mid = float(a) / 2 + float(b) / 2
        if float(np.float32(mid)) > mid:
            break
        a = np.nextafter(a, up)
    X = np.array([[a], [b]], dtype=np.float32)
    return DecisionTreeClassifier().fit(X, [0, 1]), X


def test_threshold_float32_rounding_is_reported_and_routed_like_sklearn(tmp_path):
    pytest.importorskip("skl2onnx")
    import onnxruntime as ort

    from prunekit.deploy.trees import export_sklearn_onnx

    tree, X = _stump_with_rounding_threshold()
    mid = tree.tree_.threshold[0]
    assert mid == float(X[0, 0]) / 2 + float(X[1, 0]) / 2
    on_edge = np.array([[np.float32(mid)]], dtype=np.float32)  # goes right in scikit-learn
    for snap in (True, False):
        path = tmp_path / f"t{snap}.onnx"
        report = export_sklearn_onnx(tree, on_edge, path, snap_thresholds=snap)
        assert report.threshold_mismatches == 1 and report.prediction_mismatches == 0
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert sess.run(None, {"X": on_edge})[0].tolist() == tree.predict(on_edge).tolist()
    assert tree.tree_.threshold[0] == mid  # the user's tree is untouched


def test_round_down_f32_is_exact_for_float32_inputs():
    from prunekit.deploy.trees import _round_down_f32

    rng = np.random.default_rng(0)
    t = rng.normal(size=2000) * 10
    s = _round_down_f32(t)
    up = np.float32(np.inf)
    for x in (s, np.nextafter(s, up), t.astype(np.float32)):  # the float32 values near t
        np.testing.assert_array_equal(x.astype(np.float64) <= t, x <= s)


def test_regressor_and_unfitted(tmp_path):
    pytest.importorskip("skl2onnx")
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 4)), rng.normal(size=80)
    g = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, y)
    report = export_onnx(g, X, tmp_path / "g.onnx")
    assert report.prediction_mismatches == 0 and report.max_abs_diff < 1e-4
    with pytest.raises(NotFittedError):
        export_onnx(GradientBoostingRegressor(), X, tmp_path / "u.onnx")
