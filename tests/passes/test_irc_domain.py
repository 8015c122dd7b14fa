"""Level 3: irc-domain fusions, each checked in onnxruntime through its function body."""

import math

import numpy as np
import pytest
from onnx import helper
from pass_helpers import F, assert_same, model, ops, optimized, rand

ACTS = {"Relu": {}, "Sigmoid": {}, "Tanh": {}, "LeakyRelu": {"alpha": 0.3},
        "HardSigmoid": {"alpha": 0.3, "beta": 0.4}, "Clip": {}}


@pytest.mark.parametrize("act", list(ACTS))
def test_conv_activation(act):
    ins = ["c", "lo", "hi"] if act == "Clip" else ["c"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node(act, ins, ["y"], **ACTS[act])]
    inits = {"w": rand(4, 3, 3, 3, seed=1), "lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
    m = model(nodes, [("x", F, [1, 3, 8, 8])], [("y", F, [1, 4, 4, 4])], inits, opset=17)
    g, after = optimized(m, level=3)
    assert ops(after) == [f"Conv{act}"] and after.graph.node[0].domain == "irc"
    assert {f.name for f in after.functions} == {f"Conv{act}"}
    assert_same(m, after)


def test_gemm_and_matmul_activation():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1, alpha=0.5),
             helper.make_node("Relu", ["g"], ["r"]),
             helper.make_node("MatMul", ["r", "v"], ["m"]),
             helper.make_node("LeakyRelu", ["m"], ["y"], alpha=0.2)]
    m = model(nodes, [("x", F, [2, 4])], [("y", F, [2, 3])], {"w": rand(5, 4), "v": rand(5, 3)}, opset=17)
    _, after = optimized(m, level=3)
    assert ops(after) == ["GemmRelu", "MatMulLeakyRelu"]
    assert_same(m, after)


def _layernorm_nodes(use_pow=True, affine=True):
    nodes = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
             helper.make_node("Sub", ["x", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]) if use_pow else helper.make_node("Mul", ["d", "d"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n" if affine else "y"])]
    if affine:
        nodes += [helper.make_node("Mul", ["n", "gamma"], ["s"]), helper.make_node("Add", ["s", "beta"], ["y"])]
    return nodes


@pytest.mark.parametrize("opset,use_pow,affine", [(13, True, True), (13, False, False), (17, True, True)])
def test_layernorm_from_decomposition(opset, use_pow, affine):
    inits = {"two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32),
             "gamma": rand(8, seed=1), "beta": rand(8, seed=2)}
    if opset >= 18:
        raise AssertionError("ReduceMean with axes attribute needs opset < 18")
    m = model(_layernorm_nodes(use_pow, affine), [("x", F, ["N", 5, 8])], [("y", F, ["N", 5, 8])], inits, opset=opset)
    _, after = optimized(m, level=3)
    assert ops(after) == ["LayerNormalization"]
    assert after.graph.node[0].domain == ("" if opset >= 17 else "irc")
    assert_same(m, after)


def _gelu_erf_nodes(variant):
    head = [helper.make_node("Div", ["x", "sqrt2"], ["a"]), helper.make_node("Erf", ["a"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["t"])]
    if variant == 0:
        return head + [helper.make_node("Mul", ["x", "t"], ["u"]), helper.make_node("Mul", ["u", "half"], ["y"])]
    if variant == 1:
        return head + [helper.make_node("Mul", ["x", "half"], ["h"]), helper.make_node("Mul", ["h", "t"], ["y"])]
    return head + [helper.make_node("Mul", ["t", "half"], ["u"]), helper.make_node("Mul", ["x", "u"], ["y"])]


def _gelu_tanh_nodes():
    return [helper.make_node("Pow", ["x", "three"], ["c"]), helper.make_node("Mul", ["c", "k"], ["kc"]),
            helper.make_node("Add", ["x", "kc"], ["i"]), helper.make_node("Mul", ["i", "s"], ["a"]),
            helper.make_node("Tanh", ["a"], ["e"]), helper.make_node("Add", ["e", "one"], ["t"]),
            helper.make_node("Mul", ["x", "t"], ["u"]), helper.make_node("Mul", ["u", "half"], ["y"])]


GELU_INITS = {"sqrt2": np.array(math.sqrt(2), np.float32), "one": np.array(1.0, np.float32),
              "half": np.array(0.5, np.float32), "three": np.array(3.0, np.float32),
              "k": np.array(0.044715, np.float32), "s": np.array(math.sqrt(2 / math.pi), np.float32)}


@pytest.mark.parametrize("opset", [13, 20])
@pytest.mark.parametrize("form", ["erf0", "erf1", "erf2", "tanh"])
def test_gelu(form, opset):
    nodes = _gelu_tanh_nodes() if form == "tanh" else _gelu_erf_nodes(int(form[-1]))
    m = model(nodes, [("x", F, [2, 7])], [("y", F, [2, 7])], GELU_INITS, opset=opset)
    _, after = optimized(m, level=3)
    want = "Gelu" if opset >= 20 or form != "tanh" else "GeluTanh"
    assert ops(after) == [want]
    assert after.graph.node[0].domain == ("" if opset >= 20 else "irc")
    assert_same(m, after)


def test_level2_leaves_activations_alone():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    m = model(nodes, [("x", F, [1, 3, 4, 4])], [("y", F, [1, 2, 2, 2])], {"w": rand(2, 3, 3, 3)})
    _, after = optimized(m, level=2)
    assert ops(after) == ["Conv", "Relu"] and not after.functions


def test_elementwise_chain_fuses_into_one_op():
    nodes = [helper.make_node("Mul", ["s", "x"], ["a"]),
             helper.make_node("Add", ["a", "b"], ["c"]),
             helper.make_node("Sigmoid", ["c"], ["d"]),
             helper.make_node("Sub", ["d", "b"], ["e"]),
             helper.make_node("Div", ["b", "e"], ["y"])]  # running value on the right of Div: stops
    inits = {"s": rand(1, 6, seed=1), "b": rand(4, 6, seed=2)}
    m = model(nodes, [("x", F, [4, 6])], [("y", F, [4, 6])], inits, opset=17)
    _, after = optimized(m, level=3)
    assert ops(after) == ["Elementwise_Mul_Add_Sigmoid_Sub", "Div"]
    assert list(after.graph.node[0].input)[0] == "x"
    assert_same(m, after)


def test_broadcasting_step_ends_a_chain():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "b"], ["y"])]
    m = model(nodes, [("x", F, [1, 6])], [("y", F, [4, 6])], {"b": rand(4, 6)}, opset=17)
    _, after = optimized(m, level=3)
    assert ops(after) == ["Relu", "Add"]
