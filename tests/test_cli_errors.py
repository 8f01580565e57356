"""Bad ``prunekit`` invocations: each exits 2 with exactly one ``error:`` line and no traceback.

Every case runs through :func:`prunekit.cli.main` (the console-script entry point) with
``sys.argv`` patched, so the real error path is exercised. Cases fail during validation, before
any training, so the table runs in seconds.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from prunekit import cli

LONG = "x" * 300


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def _safetensors(path: Path, metadata: dict[str, str], declared: int | None = None) -> None:
    head = json.dumps({"__metadata__": metadata}).encode()
    path.write_bytes(struct.pack("<Q", declared or len(head)) + head)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every input file the table refers to as ``{name}``."""
    import torch

    from prunekit.nn.models import DigitsCNN

    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{i % 2}" for i, (a, b) in enumerate(rng.normal(size=(40, 2)))]
    reg = [f"{a:.3f},{b:.3f},{c:.3f}" for a, b, c in rng.normal(size=(40, 3))]
    _csv(d / "ok.csv", "a,b,y", rows)
    _csv(d / "reg.csv", "a,b,y", reg)
    (d / "empty.csv").write_text("")
    (d / "blank.csv").write_text("\n\n  \n")
    _csv(d / "header_only.csv", "a,b,y", [])
    _csv(d / "no_header.csv", "0.5,1.5,1", rows)
    (d / "latin1.csv").write_bytes(("café,b,y\n" + "\n".join(rows)).encode("latin-1"))
    (d / "utf16_nobom.csv").write_bytes(("a,b,y\n" + "\n".join(rows)).encode("utf-16-le"))
    (d / "binary.csv").write_bytes(bytes(range(256)) * 8)
    _csv(d / "inf.csv", "a,b,y", [*rows[:3], "inf,1,0", *rows[3:]])
    _csv(d / "huge.csv", "a,b,y", [*rows[:3], "1e400,1,0", *rows[3:]])
    _csv(d / "f32.csv", "a,b,y", [*rows[:3], "1e39,1,0", *rows[3:]])
    _csv(d / "nan_feature.csv", "a,b,y", [*rows[:3], "nan,1,0", *rows[3:]])
    _csv(d / "empty_cell.csv", "a,b,y", [*rows[:3], ",1,0", *rows[3:]])
    _csv(d / "category.csv", "a,b,y", [*rows[:3], "red,1,0", *rows[3:]])
    _csv(d / "nan_target.csv", "a,b,y", [*rows[:3], "1,1,nan", *rows[3:]])
    _csv(d / "empty_target.csv", "a,b,y", [*rows[:3], "1,1,", *rows[3:]])
    _csv(d / "single_class.csv", "a,b,y", [r[:-1] + "1" for r in rows])
    _csv(d / "ragged.csv", "a,b,y", [*rows[:3], "1,2,3,4", *rows[3:]])
    _csv(d / "one_column.csv", "y", [str(i % 2) for i in range(40)])
    _csv(d / "few_rows.csv", "a,b,y", rows[:5])
    _csv(d / "nul.csv", "a,b,y", [*rows[:3], "1,\x002,0", *rows[3:]])
    _csv(d / "id_target.csv", "a,b,y",
         [r.rsplit(",", 1)[0] + f",id{i}" for i, r in enumerate(rows)])
    _csv(d / "constant.csv", "a,b,y", [f"1,1,{i % 2}" for i in range(40)])
    (d / "folder").mkdir()
    (d / "text.txt").write_text("not a checkpoint\n")
    torch.save([1, 2, 3], d / "list.pt")
    torch.save(torch.zeros(3), d / "tensor.pt")
    torch.save({"a": torch.zeros(2)}, d / "wrong_keys.pt")
    torch.save(DigitsCNN(n_classes=5).state_dict(), d / "wrong_shape.pt")
    import pickle

    (d / "pickle.pt").write_bytes(pickle.dumps({"x": object}))
    (d / "garbage.safetensors").write_bytes(b"\x00\x01garbage")
    _safetensors(d / "plain.safetensors", {"who": "me"})
    _safetensors(d / "bad_json.safetensors", {"prunekit": "{not json"})
    _safetensors(d / "no_tensors.safetensors",
                 {"prunekit": json.dumps({"format": "prunekit.compact", "version": 1})})
    _safetensors(d / "huge_header.safetensors", {"prunekit": "{}"}, declared=10**12)
    (d / "model_no_config").mkdir()
    (d / "model_bad_config").mkdir()
    (d / "model_bad_config" / "config.json").write_text("{garbage")
    names = [p.name for p in d.iterdir()]
    table = {Path(n).stem: str(d / n) for n in names}
    table["dir"] = str(d)
    table["out_new"] = str(d / "new_out")
    table["file_child"] = str(d / "ok.csv" / "child")
    table["long"] = str(d / LONG)
    return table


# (case id, argv with {placeholders}, text the error line must contain)
CASES: list[tuple[str, list[str], str]] = [
    # usage errors, all commands
    ("unknown-command", ["nope"], "No such command"),
    ("unknown-option", ["tree", "--bogus"], "No such option"),
    ("not-an-int", ["ensemble", "--n-estimators", "x"], "--n-estimators"),
    ("missing-value", ["tree", "--seed"], "--seed"),
    ("nn-unknown", ["nn", "nope"], "No such command"),
    # tree: options
    ("tree-methods-empty", ["tree", "--methods", ",,"], "names nothing"),
    ("tree-methods-bogus", ["tree", "--methods", "c45,bogus"], "accepted values"),
    ("tree-criterion-bogus", ["tree", "--criterion", "bogus"], "gini"),
    ("tree-criterion-task", ["tree", "--csv", "{reg}", "--criterion", "gini"], "squared_error"),
    ("tree-regression-c45", ["tree", "--csv", "{reg}", "--methods", "c45"], "reduced_error"),
    ("tree-regression-mdl", ["tree", "--data", "diabetes", "--methods", "mdl,rep"], "regression"),
    ("tree-poisson-negative", ["tree", "--csv", "{reg}", "--criterion", "poisson"],
     "non-negative"),
    ("tree-data-bogus", ["tree", "--data", "imagenet"], "--data"),
    ("tree-seed-negative", ["tree", "--seed", "-1"], "--seed"),
    # tree: CSV inputs
    ("csv-missing", ["tree", "--csv", "{dir}/missing.csv"], "does not exist"),
    ("csv-directory", ["tree", "--csv", "{folder}"], "directory"),
    ("csv-device", ["tree", "--csv", "/dev/zero"], "not a regular file"),
    ("csv-empty", ["tree", "--csv", "{empty}"], "empty"),
    ("csv-blank-lines", ["tree", "--csv", "{blank}"], "empty"),
    ("csv-header-only", ["tree", "--csv", "{header_only}"], "no data rows"),
    ("csv-no-header", ["tree", "--csv", "{no_header}"], "header"),
    ("csv-latin1", ["tree", "--csv", "{latin1}"], "UTF-8"),
    ("csv-utf16-no-bom", ["tree", "--csv", "{utf16_nobom}"], "UTF-8"),
    ("csv-binary", ["tree", "--csv", "{binary}"], "UTF-8"),
    ("csv-nul", ["tree", "--csv", "{nul}"], "NUL"),
    ("csv-inf", ["tree", "--csv", "{inf}"], "not finite"),
    ("csv-1e400", ["tree", "--csv", "{huge}"], "not finite"),
    ("csv-float32-overflow", ["tree", "--csv", "{f32}"], "float32"),
    ("csv-nan-feature", ["tree", "--csv", "{nan_feature}"], "missing value"),
    ("csv-empty-cell", ["tree", "--csv", "{empty_cell}"], "empty cell"),
    ("csv-category", ["tree", "--csv", "{category}"], "not a number"),
    ("csv-nan-target", ["tree", "--csv", "{nan_target}"], "target"),
    ("csv-empty-target", ["tree", "--csv", "{empty_target}"], "target"),
    ("csv-single-class", ["tree", "--csv", "{single_class}"], "single class"),
    ("csv-target-name", ["tree", "--csv", "{ok}", "--target", "label"], "columns: a, b, y"),
    ("csv-target-index", ["tree", "--csv", "{ok}", "--target", "7"], "out of range"),
    ("csv-target-superscript", ["tree", "--csv", "{ok}", "--target", "²"], "not a column"),
    ("csv-id-target", ["tree", "--csv", "{id_target}"], "too few rows"),
    ("ens-csv-id-target", ["ensemble", "--csv", "{id_target}"], "is --target the label"),
    ("csv-constant-features", ["tree", "--csv", "{constant}"], "single leaf"),
    ("csv-ragged", ["tree", "--csv", "{ragged}"], "fields"),
    ("csv-one-column", ["tree", "--csv", "{one_column}"], "column"),
    ("csv-few-rows", ["tree", "--csv", "{few_rows}"], "--csv"),
    # tree: output folder
    ("tree-out-file", ["tree", "--out", "{ok}"], "--out"),
    ("tree-out-devnull", ["tree", "--out", "/dev/null"], "--out"),
    ("tree-out-long", ["tree", "--out", "{long}"], "255 bytes"),
    ("tree-out-parent-file", ["tree", "--out", "{file_child}"], "is a file"),
    # ensemble
    ("ens-n-estimators-0", ["ensemble", "--n-estimators", "0"], "accepted range: 1..10000"),
    ("ens-n-estimators-negative", ["ensemble", "--n-estimators", "-5"], "--n-estimators"),
    ("ens-n-estimators-absurd", ["ensemble", "--n-estimators", "1000000000"], "10000"),
    ("ens-gb-oob", ["ensemble", "--model", "gb", "--oob"], "--oob"),
    ("ens-hgb-oob", ["ensemble", "--model", "hgb", "--oob"], "out-of-bag"),
    ("ens-model-bogus", ["ensemble", "--model", "xgb"], "accepted values"),
    ("ens-size-0", ["ensemble", "--size", "0"], "--size"),
    ("ens-size-nan", ["ensemble", "--size", "nan"], "--size"),
    ("ens-size-inf", ["ensemble", "--size", "1e400"], "--size"),
    ("ens-size-text", ["ensemble", "--size", "many"], "--size"),
    ("ens-size-too-big", ["ensemble", "--size", "500", "--n-estimators", "10"], "--size"),
    ("ens-methods-empty", ["ensemble", "--methods", ",,"], "names nothing"),
    ("ens-methods-bogus", ["ensemble", "--methods", "bogus"], "accepted values"),
    ("ens-methods-boosting", ["ensemble", "--model", "gb", "--methods", "kappa"], "stages"),
    ("ens-methods-regression", ["ensemble", "--csv", "{reg}", "--methods", "margin_distance"],
     "regression"),
    ("ens-csv-latin1", ["ensemble", "--csv", "{latin1}"], "UTF-8"),
    ("ens-csv-inf", ["ensemble", "--csv", "{inf}"], "not finite"),
    ("ens-out-file", ["ensemble", "--out", "{ok}"], "--out"),
    ("ens-out-devnull", ["ensemble", "--out", "/dev/null"], "--out"),
    ("ens-seed", ["ensemble", "--seed", "-1"], "--seed"),
    # nn sparsity
    ("sp-sparsity-nan", ["nn", "sparsity", "--sparsity", "nan"], "--sparsity"),
    ("sp-sparsity-1", ["nn", "sparsity", "--sparsity", "1"], "[0, 1)"),
    ("sp-sparsity-negative", ["nn", "sparsity", "--sparsity", "-0.1"], "--sparsity"),
    ("sp-criterion", ["nn", "sparsity", "--criterion", "bogus"], "magnitude"),
    ("sp-pattern-nm", ["nn", "sparsity", "--pattern", "5:4"], "--pattern"),
    ("sp-pattern-bogus", ["nn", "sparsity", "--pattern", "diagonal"], "2:4"),
    ("sp-method", ["nn", "sparsity", "--method", "sometimes"], "agp"),
    ("sp-scope", ["nn", "sparsity", "--scope", "model"], "global"),
    ("sp-imp-taylor", ["nn", "sparsity", "--method", "imp", "--criterion", "taylor"],
     "magnitude"),
    ("sp-epochs-0", ["nn", "sparsity", "--epochs", "0"], "--epochs"),
    ("sp-finetune-negative", ["nn", "sparsity", "--finetune-epochs", "-1"], "--finetune-epochs"),
    ("sp-model", ["nn", "sparsity", "--model", "vgg"], "lenet"),
    ("sp-out-file", ["nn", "sparsity", "--out", "{ok}"], "--out"),
    # nn compact-info
    ("ci-missing", ["nn", "compact-info", "{dir}/missing.safetensors"], "does not exist"),
    ("ci-directory", ["nn", "compact-info", "{folder}"], "directory"),
    ("ci-devnull", ["nn", "compact-info", "/dev/null"], "not a regular file"),
    ("ci-garbage", ["nn", "compact-info", "{garbage}"], "safetensors"),
    ("ci-text", ["nn", "compact-info", "{text}"], "safetensors"),
    ("ci-not-prunekit", ["nn", "compact-info", "{plain}"], "prunekit"),
    ("ci-bad-json", ["nn", "compact-info", "{bad_json}"], "PATH"),
    ("ci-no-tensors", ["nn", "compact-info", "{no_tensors}"], "PATH"),
    ("ci-huge-header", ["nn", "compact-info", "{huge_header}"], "PATH"),
    # nn structured prune / groups
    ("st-checkpoint-missing", ["nn", "structured", "prune", "--checkpoint", "{dir}/no.pt"],
     "does not exist"),
    ("st-checkpoint-text", ["nn", "structured", "prune", "--checkpoint", "{text}"],
     "--checkpoint"),
    ("st-checkpoint-list", ["nn", "structured", "prune", "--checkpoint", "{list}"],
     "not a state_dict"),
    ("st-checkpoint-tensor", ["nn", "structured", "prune", "--checkpoint", "{tensor}"],
     "not a state_dict"),
    ("st-checkpoint-keys", ["nn", "structured", "prune", "--checkpoint", "{wrong_keys}"],
     "missing keys"),
    ("st-checkpoint-shape", ["nn", "structured", "prune", "--checkpoint", "{wrong_shape}"],
     "shape mismatch"),
    ("st-checkpoint-pickle", ["nn", "structured", "prune", "--checkpoint", "{pickle}"],
     "pickled"),
    ("st-checkpoint-dir", ["nn", "structured", "prune", "--checkpoint", "{folder}"],
     "directory"),
    ("st-ratio-big", ["nn", "structured", "prune", "--ratio", "1.5"], "--ratio"),
    ("st-ratio-nan", ["nn", "structured", "prune", "--ratio", "nan"], "--ratio"),
    ("st-target-macs", ["nn", "structured", "prune", "--target-macs", "-1"], "--target-macs"),
    ("st-criterion", ["nn", "structured", "prune", "--criterion", "bogus"], "fpgm"),
    ("st-allocation", ["nn", "structured", "prune", "--allocation", "random"], "uniform"),
    ("st-attention", ["nn", "structured", "prune", "--attention", "channels"], "head_dim"),
    ("st-dataset-mismatch", ["nn", "structured", "prune", "--dataset", "mnist"], "--data"),
    ("st-dataset-bogus", ["nn", "structured", "prune", "--dataset", "cifar"], "digits"),
    ("st-ignore", ["nn", "structured", "prune", "--ignore", "nope"], "--ignore"),
    ("st-out-devnull", ["nn", "structured", "prune", "--out", "/dev/null"], "--out"),
    ("st-out-directory", ["nn", "structured", "prune", "--out", "{dir}"], "directory"),
    ("st-plan-parent-file", ["nn", "structured", "prune", "--plan", "{file_child}"], "--plan"),
    ("st-report-long", ["nn", "structured", "prune", "--report", "{long}"], "255 bytes"),
    ("st-same-outputs", ["nn", "structured", "prune", "--out", "{dir}/a.pt", "--plan",
                         "{dir}/a.pt"], "same file"),
    ("st-lr", ["nn", "structured", "prune", "--lr", "0"], "--lr"),
    ("st-round-to", ["nn", "structured", "prune", "--round-to", "0"], "--round-to"),
    ("st-model", ["nn", "structured", "prune", "--model", "resnet99"], "resnet18"),
    ("gr-model", ["nn", "structured", "groups", "--model", "nope"], "accepted values"),
    ("gr-ignore", ["nn", "structured", "groups", "--model", "digits-cnn", "--ignore", "zz"],
     "--ignore"),
    # llm / nn oneshot
    ("llm-method", ["llm", "--method", "bogus"], "wanda"),
    ("export-format", ["export", "digits-cnn", "--format", "tflite"], "--format"),
    ("export-quantize", ["export", "digits-cnn", "--quantize", "int4"], "--quantize"),
    ("export-missing-model", ["export", "{dir}/nope.pt"], "neither a built-in"),
    ("export-out-dir", ["export", "digits-cnn", "-o", "{dir}"], "--output"),
    ("export-out-devnull", ["export", "digits-cnn", "-o", "/dev/null"], "--output"),
    ("export-same-files", ["export", "digits-cnn", "-o", "{dir}/m.onnx", "--report",
                           "{dir}/m.onnx"], "same file"),
    ("os-sparsity", ["nn", "oneshot", "--sparsity", "2"], "--sparsity"),
    ("llm-pattern", ["llm", "--pattern", "9:3"], "--pattern"),
    ("llm-n-samples", ["llm", "--n-samples", "0"], "--n-samples"),
    ("llm-threads", ["llm", "--threads", "-1"], "--threads"),
    ("llm-model-missing", ["llm", "--model", "{dir}/nothere"], "config.json"),
    ("llm-model-no-config", ["llm", "--model", "{model_no_config}"], "config.json"),
    ("llm-model-bad-config", ["llm", "--model", "{model_bad_config}"], "not valid JSON"),
    ("llm-calibration-missing", ["llm", "--calibration", "{dir}/no.txt"], "does not exist"),
    ("llm-calibration-dir", ["llm", "--calibration", "{folder}"], "directory"),
    ("llm-output-devnull", ["llm", "--output", "/dev/null"], "--output"),
    ("llm-json-dir", ["llm", "--json", "{dir}"], "--json"),
    ("llm-same-outputs", ["llm", "--output", "{dir}/x.st", "--json", "{dir}/x.st"],
     "same file"),
    # demo
    ("demo-threads-0", ["demo", "--threads", "0"], "threads"),
    ("demo-threads-absurd", ["demo", "--threads", "99999"], "--threads"),
    ("demo-seed", ["demo", "--seed", "-5"], "--seed"),
    ("demo-out-file", ["demo", "-o", "{ok}"], "--output-dir"),
    ("demo-out-devnull", ["demo", "--output-dir", "/dev/null"], "--output-dir"),
    ("demo-out-parent-file", ["demo", "-o", "{file_child}"], "is a file"),
    # --max-drop on tree / ensemble
    ("tree-max-drop-1", ["tree", "--max-drop", "1"], "[0, 1)"),
    ("tree-max-drop-negative", ["tree", "--max-drop", "-0.1"], "--max-drop"),
    ("tree-max-drop-nan", ["tree", "--max-drop", "nan"], "--max-drop"),
    ("tree-max-drop-text", ["tree", "--max-drop", "lots"], "--max-drop"),
    ("tree-relative-alone", ["tree", "--relative"], "--relative needs --max-drop"),
    ("ens-max-drop-inf", ["ensemble", "--max-drop", "inf"], "--max-drop"),
    ("ens-max-drop-2", ["ensemble", "--max-drop", "2"], "[0, 1)"),
    ("ens-relative-alone", ["ensemble", "--relative"], "--relative needs --max-drop"),
    # nn sensitivity
    ("sens-model", ["nn", "sensitivity", "--model", "resnet18"], "digits-cnn"),
    ("sens-kind", ["nn", "sensitivity", "--kind", "heads"], "weights, groups"),
    ("sens-proxy", ["nn", "sensitivity", "--proxy", "fisher"], "loss, taylor"),
    ("sens-taylor-groups", ["nn", "sensitivity", "--kind", "groups", "--proxy", "taylor"],
     "--kind weights"),
    ("sens-grid-empty", ["nn", "sensitivity", "--grid", ",,"], "names nothing"),
    ("sens-grid-text", ["nn", "sensitivity", "--grid", "0.5,half"], "not a number"),
    ("sens-grid-1", ["nn", "sensitivity", "--grid", "0.5,1"], "(0, 1)"),
    ("sens-grid-0", ["nn", "sensitivity", "--grid", "0"], "--grid"),
    ("sens-grid-nan", ["nn", "sensitivity", "--grid", "nan"], "--grid"),
    ("sens-epochs-negative", ["nn", "sensitivity", "--epochs", "-1"], "--epochs"),
    ("sens-max-batches-0", ["nn", "sensitivity", "--max-batches", "0"], "--max-batches"),
    ("sens-out-file", ["nn", "sensitivity", "--out", "{ok}"], "--out"),
    ("sens-out-devnull", ["nn", "sensitivity", "--out", "/dev/null"], "--out"),
]


@pytest.fixture(autouse=True)
def _never_replace_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net: if an output check regressed, a root test run would rename onto /dev/null."""
    import stat

    real = os.replace

    def guarded(src, dst, *args, **kwargs):
        try:
            mode = os.stat(dst).st_mode
        except OSError:
            mode = 0
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise AssertionError(f"refusing to replace the device {dst!r}")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", guarded)


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the console-script entry point on ``argv``; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["prunekit", *argv])
    with pytest.raises(SystemExit) as info:
        cli.main()
    captured = capsys.readouterr()
    return int(info.value.code), captured.out, captured.err


def assert_one_error_line(code: int, out: str, err: str, expected: str = "") -> str:
    assert code == 2, (out, err)
    assert "Traceback" not in out + err and "╭" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]
    return lines[0]


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_invocation_is_one_error_line(argv, expected, files, monkeypatch, capsys) -> None:
    if "/dev/zero" in argv and not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    args = [a.format(**files) for a in argv]
    before = set(os.listdir(files["dir"]))
    code, out, err = run_main(args, monkeypatch, capsys)
    assert_one_error_line(code, out, err, expected)
    assert set(os.listdir(files["dir"])) == before  # nothing written, not even a temp file


def test_debug_option_and_env_show_the_traceback(monkeypatch, capsys) -> None:
    code, _, err = run_main(["--debug", "tree", "--methods", ",,"], monkeypatch, capsys)
    assert code == 2 and "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: --methods")
    monkeypatch.setenv("PRUNEKIT_DEBUG", "1")
    code, _, err = run_main(["tree", "--methods", ",,"], monkeypatch, capsys)
    assert code == 2 and "Traceback" in err
    monkeypatch.setenv("PRUNEKIT_DEBUG", "0")
    code, out, err = run_main(["tree", "--methods", ",,"], monkeypatch, capsys)
    assert_one_error_line(code, out, err, "--methods")


def test_unexpected_exception_is_one_line_exit_1(monkeypatch, capsys) -> None:
    from prunekit.trees import cli as tree_cli

    def boom(**_kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(tree_cli, "run_comparison", boom)
    code, out, err = run_main(["tree", "--out", "unused-dir"], monkeypatch, capsys)
    assert code == 1
    assert err == ("error: unexpected RuntimeError: boom second line (run 'prunekit --debug ...'"
                   " or set PRUNEKIT_DEBUG=1 for the traceback)\n")
    code, _, err = run_main(["--debug", "tree"], monkeypatch, capsys)
    assert code == 1 and "Traceback" in err and "RuntimeError: boom" in err
    assert not Path("unused-dir").exists()


def test_os_error_is_an_expected_failure(monkeypatch, capsys) -> None:
    from prunekit.trees import cli as tree_cli

    def full(**_kwargs):
        raise OSError(28, "No space left on device", "/data/out/report.html")

    monkeypatch.setattr(tree_cli, "run_comparison", full)
    code, out, err = run_main(["tree", "--out", "unused-dir"], monkeypatch, capsys)
    line = assert_one_error_line(code, out, err)
    assert line == "error: No space left on device: '/data/out/report.html'"


def test_ctrl_c_exits_130_with_one_line_and_no_outputs(tmp_path, monkeypatch, capsys) -> None:
    import prunekit.trees

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prunekit.trees, "prune_tree", interrupt)
    out = tmp_path / "rep"
    code, _, err = run_main(["tree", "--data", "iris", "--out", str(out), "-q"], monkeypatch,
                            capsys)
    assert code == 130 and err == "interrupted\n"
    assert not out.exists() and os.listdir(tmp_path) == []


def test_ctrl_c_while_writing_leaves_no_partial_outputs(tmp_path, monkeypatch, capsys) -> None:
    from prunekit.report import Report

    def interrupt(self, path):
        Path(path).write_text("{half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Report, "write_json", interrupt)
    out = tmp_path / "rep"
    code, _, err = run_main(["tree", "--data", "iris", "--methods", "rep", "--out", str(out),
                             "-q"], monkeypatch, capsys)
    assert code == 130 and err == "interrupted\n"
    assert not out.exists() or os.listdir(out) == []  # no report.html without its json


def test_read_only_destination_is_refused_before_the_work(tmp_path, monkeypatch, capsys) -> None:
    import tempfile

    from prunekit import _cli_common

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_cli_common.tempfile, "mkstemp", denied)
    code, out, err = run_main(["tree", "--out", str(tmp_path / "o")], monkeypatch, capsys)
    line = assert_one_error_line(code, out, err, "--out")
    assert "cannot write" in line and "Permission denied" in line
    monkeypatch.setattr(_cli_common.tempfile, "mkstemp", tempfile.mkstemp)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_for_real(tmp_path, monkeypatch, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, out, err = run_main(["ensemble", "--out", str(ro / "x")], monkeypatch, capsys)
        assert_one_error_line(code, out, err, "cannot write")
    finally:
        ro.chmod(0o755)


def test_no_arguments_prints_help(monkeypatch, capsys) -> None:
    code, out, err = run_main([], monkeypatch, capsys)
    assert "Usage" in out + err and "Traceback" not in out + err


def test_library_warnings_print_once_as_one_line(monkeypatch, capsys) -> None:
    import warnings

    from prunekit.errors import InvalidParameterError
    from prunekit.trees import cli as tree_cli

    def noisy(**_kwargs):
        for _ in range(3):
            warnings.warn("the same thing\nagain", UserWarning, stacklevel=1)
        raise InvalidParameterError("stop")

    monkeypatch.setattr(tree_cli, "run_comparison", noisy)
    code, _, err = run_main(["tree", "--out", "unused-dir"], monkeypatch, capsys)
    assert code == 2
    assert err == "warning: UserWarning: the same thing again\nerror: stop\n"


def test_model_folder_that_transformers_cannot_load(tmp_path, monkeypatch, capsys) -> None:
    """Any loader exception (e.g. safetensors' own SafetensorError) is a one-line input error."""
    from types import SimpleNamespace

    from prunekit.nn.oneshot import _hf

    class SafetensorError(Exception):
        pass

    def fail(*_args, **_kwargs):
        raise SafetensorError("Error while deserializing header: header too small")

    fake = SimpleNamespace(AutoConfig=SimpleNamespace(from_pretrained=fail))
    monkeypatch.setattr(_hf, "import_transformers", lambda: fake)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    code, out, err = run_main(["llm", "--model", str(tmp_path)], monkeypatch, capsys)
    line = assert_one_error_line(code, out, err, "cannot load it with transformers")
    assert "SafetensorError" in line
