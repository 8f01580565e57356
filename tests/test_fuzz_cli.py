"""Fuzzing ``prunekit tree`` / ``prunekit ensemble``: random CSV bytes and option values.

Whatever the input, the command exits 0, or exits 2 with exactly one ``error:`` line on stderr;
never a traceback, never another exit code.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunekit import cli

N = int(os.environ.get("PRUNEKIT_FUZZ_EXAMPLES", "12"))  # raise it for a longer local search
FUZZ = settings(derandomize=True, max_examples=N, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.raises(SystemExit) as info:
        cli.main(argv)
    return int(info.value.code), out.getvalue(), err.getvalue()


def check(argv: list[str]) -> int:
    code, out, err = run(argv)
    assert "Traceback" not in out + err, err
    if code != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2, (code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    return code


WEIRD = st.one_of(
    st.sampled_from(["1e400", "-inf", "nan", "NA", "", " ", "abc", "1e39", "3.4e38", "0x10",
                     "1_000", "é", "\u00a01", "?", "1e308"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=4),
)
NUMBER = st.one_of(st.integers(-5, 5).map(str),
                   st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: f"{v:.3g}"))


def _sometimes(draw: st.DrawFn, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


@st.composite
def csv_text(draw: st.DrawFn) -> bytes:
    """Mostly well-formed numeric CSVs with, now and then, a bad cell, row, header or encoding."""
    n_cols = draw(st.integers(2, 4))
    names = ["a", "b", "c", "y"] if _sometimes(draw, 80) else draw(
        st.lists(st.sampled_from(["a", "b", "y", "0", "1", "", "é", "a b", "2.5"]),
                 min_size=n_cols, max_size=n_cols))
    header = names[-n_cols:]
    target = draw(st.sampled_from(["labels", "floats", "strings", "constant"]))
    rows = []
    for i in range(draw(st.integers(0, 30))):
        row = [draw(NUMBER) for _ in range(n_cols - 1)]
        row.append({"labels": str(i % 3), "floats": f"{i * 0.731:.3f}", "strings": "xyz"[i % 3],
                    "constant": "1"}[target])
        if _sometimes(draw, 4):
            row[draw(st.integers(0, n_cols - 1))] = draw(WEIRD)
        if _sometimes(draw, 2):
            row = row[:-1] if draw(st.booleans()) else [*row, "0"]
        rows.append(row)
    sep = "," if _sometimes(draw, 85) else draw(st.sampled_from([";", "\t", "|", " "]))
    text = "\n".join(sep.join(r) for r in [header, *rows])
    encoding = "utf-8" if _sometimes(draw, 80) else draw(
        st.sampled_from(["utf-8-sig", "utf-16", "latin-1", "utf-16-le", "utf-32"]))
    return text.encode(encoding, errors="replace")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(raw=st.one_of(csv_text(), csv_text(), csv_text(), st.binary(max_size=300)))
def test_tree_csv_bytes(raw: bytes, workdir: Path) -> None:
    path = workdir / "in.csv"
    path.write_bytes(raw)
    check(["tree", "--csv", str(path), "--methods", "rep", "--out", str(workdir / "t"), "-q"])


GOOD_CSV = "a,b,y\n" + "\n".join(f"{i * 0.37 % 3:.2f},{(i * 7) % 5},{i % 2}" for i in range(24))

TREE_OPTIONS = {
    "--target": st.one_of(st.sampled_from(["y", "-1", "0", "2", "3", "-4", "b", "Y", " y"]),
                          st.text(max_size=6)),
    "--criterion": st.sampled_from(["gini", "entropy", "log_loss", "squared_error", "poisson",
                                    "x", ""]),
    "--methods": st.one_of(st.sampled_from(["rep", "c45,ccp", "pre_pruning", "mdl,pessimistic",
                                            "min_error", "all", ",,", "mdl,nope", " "]),
                           st.text(max_size=8)),
    "--seed": st.one_of(st.integers(0, 3).map(str),
                        st.sampled_from(["-1", "1e3", "x", "4294967296"])),
}
TREE_DEFAULTS = {"--target": "y", "--criterion": "gini", "--methods": "rep", "--seed": "0"}


@FUZZ
@given(changed=st.lists(st.sampled_from(sorted(TREE_OPTIONS)), max_size=2, unique=True),
       data=st.data())
def test_tree_options(changed: list[str], data: st.DataObject, workdir: Path) -> None:
    path = workdir / "good.csv"
    path.write_text(GOOD_CSV)
    opts = {**TREE_DEFAULTS, **{k: data.draw(TREE_OPTIONS[k], label=k) for k in changed}}
    check(["tree", "--csv", str(path), *[t for kv in opts.items() for t in kv],
           "--out", str(workdir / "t"), "-q"])


ENSEMBLE_OPTIONS = {
    "--model": st.sampled_from(["rf", "et", "bagging", "gb", "hgb", "xgb"]),
    "--n-estimators": st.one_of(st.integers(1, 6).map(str), st.integers(-2, 0).map(str),
                                st.sampled_from(["1e9", "x", ""])),
    "--size": st.one_of(st.sampled_from(["auto", "1", "2", "0.5", "0", "1.5", "nan", "-1",
                                         "inf", "1e400", "x", ""]), st.text(max_size=5)),
    "--methods": st.sampled_from(["reduce_error", "stages", "kappa,accuracy", "margin_distance",
                                  "cluster", "gasen", "all", ",,", "bogus"]),
    "--target": st.sampled_from(["y", "a", "0", "9"]),
}
ENSEMBLE_DEFAULTS = {"--model": "rf", "--n-estimators": "4", "--size": "2",
                     "--methods": "reduce_error", "--target": "y"}


@FUZZ
@given(
    raw=st.one_of(st.just(GOOD_CSV.encode()), csv_text(), st.binary(max_size=200)),
    changed=st.lists(st.sampled_from(sorted(ENSEMBLE_OPTIONS)), max_size=2, unique=True),
    oob=st.booleans(),
    data=st.data(),
)
def test_ensemble_options_and_csv(raw: bytes, changed: list[str], oob: bool,
                                  data: st.DataObject, workdir: Path) -> None:
    path = workdir / "ens.csv"
    path.write_bytes(raw)
    opts = {**ENSEMBLE_DEFAULTS, **{k: data.draw(ENSEMBLE_OPTIONS[k], label=k) for k in changed}}
    argv = ["ensemble", "--csv", str(path), *[t for kv in opts.items() for t in kv],
            "--out", str(workdir / "e"), "-q"]
    check(argv + (["--oob"] if oob else []))


@pytest.fixture(scope="module")
def compact_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from prunekit.nn.io import save_compact
    from prunekit.nn.models import LeNet300100

    path = tmp_path_factory.mktemp("compact") / "m.safetensors"
    save_compact(LeNet300100(in_features=4, n_classes=2), path, metadata={"k": "v"})
    return path.read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1,
                      max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 3000)))
def test_compact_info_on_mutated_files(edits: list[tuple[int, int]], cut: int | None,
                                       compact_bytes: bytes, workdir: Path) -> None:
    """Byte edits in a compact file's header and data: table or one error line, never a crash."""
    raw = bytearray(compact_bytes if cut is None else compact_bytes[:cut])
    for pos, value in edits:
        if pos < len(raw):
            raw[pos] = value
    path = workdir / "mutated.safetensors"
    path.write_bytes(bytes(raw))
    check(["nn", "compact-info", str(path)])
