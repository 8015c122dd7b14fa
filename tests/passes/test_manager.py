"""The pass manager: levels, pass selection, fixed point, report, subgraphs."""

import pytest
from onnx import helper
from pass_helpers import F, assert_same, model, ops, optimized, rand

from irc.errors import IrcError
from irc.ir import from_onnx
from irc.passes import REGISTRY, optimize, pipeline


def _chain():
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Mul", ["a", "one"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    import numpy as np
    return model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], {"one": np.ones((), np.float32)})


def test_levels_are_nested_and_level0_does_nothing():
    one, two, three = pipeline(1), pipeline(2), pipeline(3)
    assert set(one) < set(two) < set(three)
    assert pipeline(0) == []
    m = _chain()
    g, after = optimized(m, level=0)
    assert ops(after) == ops(m)


def test_unknown_pass_and_bad_level_are_user_errors():
    with pytest.raises(IrcError, match="unknown pass"):
        pipeline(2, passes=["nope"])
    with pytest.raises(IrcError, match="unknown pass"):
        pipeline(2, skip=["nope"])
    with pytest.raises(IrcError, match="level"):
        pipeline(9)


def test_selected_passes_and_skip():
    _, after = optimized(_chain(), passes=["shapes", "noop"])
    assert ops(after) == ["Relu"]
    _, after = optimized(_chain(), skip=["noop"])
    assert "Identity" in ops(after) and "Mul" in ops(after)


def test_report_counts_and_fixed_point():
    g = from_onnx(_chain())
    report = optimize(g)
    assert (report.nodes_before, report.nodes_after) == (3, 1)
    assert report.rounds >= 2  # the last round changes nothing
    stats = report.per_pass["noop"]
    assert stats.nodes_delta == -2 and 1 <= stats.runs <= report.rounds
    d = report.as_dict()
    assert {p["name"] for p in d["per_pass"]} == set(report.passes)
    assert all(p["seconds"] >= 0 for p in d["per_pass"])


def test_recurses_into_if_branches():
    import numpy as np
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t0"]),
                              helper.make_node("Add", ["t0", "zero"], ["t1"])], "then", [],
                             [helper.make_tensor_value_info("t1", F, [2])])
    els = helper.make_graph([helper.make_node("Neg", ["x"], ["e0"])], "else", [],
                            [helper.make_tensor_value_info("e0", F, [2])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els)
    m = model([node], [("c", 9, []), ("x", F, [2])], [("y", F, [2])],
              {"zero": np.zeros(2, np.float32)})
    g, after = optimized(m, level=1)
    if_node = after.graph.node[0]
    assert if_node.op_type == "If"
    then_ops = [n.op_type for n in if_node.attribute[0].g.node]
    assert then_ops == [] or "Identity" not in then_ops
    for c in (True, False):
        assert_same(m, after, {"c": np.array(c), "x": rand(2)})


def test_every_registered_pass_has_a_level_and_doc():
    pipeline(3)
    for spec in REGISTRY.values():
        assert 1 <= spec.level <= 3 and spec.doc


def test_debug_mode_validates_after_every_pass():
    g = from_onnx(_chain())
    report = optimize(g, 3, debug=True)
    assert report.nodes_after == 1
