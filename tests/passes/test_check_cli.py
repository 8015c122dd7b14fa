"""The before/after checker, bisection, and `irc optimize` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from corpus import ONNX_DATA
from onnx import helper
from pass_helpers import F, model, rand

from irc.check import bisect, check_models
from irc.errors import IrcError
from irc.passes import REGISTRY, PassResult
from irc.passes.command import parse_size, run_optimize
from irc.passes.manager import register
from irc.passes.util import is_std

SQUEEZENET = ONNX_DATA / "light" / "light_squeezenet.onnx"


def irc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irc.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def broken_pass():
    """A pass that turns every Sigmoid into a Tanh: wrong on purpose."""

    @register("break_sigmoid", 2, "test only: a wrong rewrite")
    def run(graph, ctx):
        result = PassResult()
        for op in graph.ops:
            if is_std(op, "Sigmoid"):
                op.op_type = "Tanh"
                result.note(f"broke {op.name}")
        return result

    yield "break_sigmoid"
    del REGISTRY["break_sigmoid"]


def _sigmoid_model(path):
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"], name="relu0"),
             helper.make_node("Sigmoid", ["r"], ["s"], name="the_sigmoid"),
             helper.make_node("Add", ["s", "b"], ["y"])]
    m = model(nodes, [("x", F, ["N", 4])], [("y", F, ["N", 4])], {"b": rand(4)})
    onnx.save(m, path)
    return m


def test_checker_detects_a_wrong_rewrite_and_bisect_names_pass_and_node(tmp_path, broken_pass):
    src = tmp_path / "m.onnx"
    m = _sigmoid_model(src)
    wrong = onnx.ModelProto()
    wrong.CopyFrom(m)
    wrong.graph.node[2].op_type = "Tanh"
    assert check_models(m, m).ok
    assert not check_models(m, wrong).ok
    result = bisect(str(src), 2, passes=["shapes", "noop", broken_pass, "dce"])
    assert not result.ok
    assert result.first_bad_pass == broken_pass
    assert "the_sigmoid" in result.first_bad_node


def test_run_optimize_refuses_to_keep_a_wrong_result(tmp_path, broken_pass):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    _sigmoid_model(src)
    with pytest.raises(IrcError, match="first diverging pass: break_sigmoid at node Tanh the_sigmoid"):
        run_optimize(src, out, level=2, passes=f"shapes,{broken_pass}", skip=None, check=True,
                     bisect=True, fold_limit=None)
    assert not out.exists()
    report, _ = run_optimize(src, out, level=2, passes=f"shapes,{broken_pass}", skip=None,
                             check=False, bisect=False, fold_limit=None)
    assert out.exists() and report.nodes_after == 4


def test_parse_size():
    assert parse_size("256M") == 256 << 20 and parse_size("2g") == 2 << 30
    assert parse_size("1000") == 1000 and parse_size("1.5KiB") == 1536
    with pytest.raises(IrcError):
        parse_size("lots")


def test_cli_optimize_report_json_and_force(tmp_path):
    out = tmp_path / "sq.onnx"
    r = irc("optimize", SQUEEZENET, "-o", out, "--json", "--report")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["nodes_before"] == 105 and report["nodes_after"] < 70
    assert report["check"]["ok"] is True
    assert "Δ nodes" in r.stderr and "checked" in r.stderr
    onnx.checker.check_model(onnx.load(out))
    r = irc("optimize", SQUEEZENET, "-o", out)
    assert r.returncode == 2 and "already exists" in r.stderr
    r = irc("optimize", SQUEEZENET, "-o", out, "--force", "--level", "1", "--no-check")
    assert r.returncode == 0 and "not checked" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--level", "5"], "--level"),
    (["--passes", "fold,bogus"], "unknown pass"),
    (["--fold-limit", "huge"], "--fold-limit"),
])
def test_cli_optimize_bad_flags_are_one_line_errors(tmp_path, args, needle):
    r = irc("optimize", SQUEEZENET, "-o", tmp_path / "x.onnx", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_optimize_missing_file(tmp_path):
    r = irc("optimize", tmp_path / "nope.onnx", "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_random_inputs_keep_indices_in_range(tmp_path):
    from irc.ir import from_onnx
    from irc.oracle import random_inputs

    nodes = [helper.make_node("Gather", ["table", "idx"], ["g"], axis=0),
             helper.make_node("Log", ["p"], ["l"])]
    m = model(nodes, [("idx", onnx.TensorProto.INT64, ["N", 9]), ("p", F, [50])],
              [("g", F, ["N", 9, 3]), ("l", F, [50])], {"table": rand(7, 3)})
    feeds = random_inputs(from_onnx(m), seed=1)
    assert feeds["idx"].min() >= 0 and feeds["idx"].max() < 7 and feeds["idx"].max() > 2
    assert (feeds["p"] > 0).all()
    assert np.isfinite(np.log(feeds["p"])).all()
