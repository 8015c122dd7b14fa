"""`irc import` as a user meets it: options, every source kind, errors as one line with exit 2."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from fe_helpers import (
    ROOT,
    assert_close,
    assert_one_line_error,
    assert_valid_import,
    ort_outputs,
    run_cli,
    run_subprocess,
)
from onnx import TensorProto, helper, numpy_helper

from irc.errors import IrcError
from irc.ir import to_onnx

HEAVY = ("tensorflow", "torch", "keras", "tf2onnx", "onnxscript")


# -- start-up ---------------------------------------------------------------------------


def test_cli_and_frontends_import_no_framework():
    """`irc --help` and `import irc.frontends` must not load TensorFlow or PyTorch."""
    code = ("import sys, irc.cli, irc.frontends, irc.frontends.report, irc.frontends.check; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_import_help_lists_every_option():
    run = run_subprocess("import", "--help")
    assert run.returncode == 0, run.stderr
    for option in ("--framework", "--signature", "--input-shape", "--dynamic-batch", "--opset",
                   "--no-check", "--atol", "--rtol", "--force", "--json", "-o"):
        assert option in run.stdout


# -- end to end in a subprocess -------------------------------------------------------------


def test_keras_file_subprocess(tmp_path: Path):
    from examples.models.keras_models import save, two_in_two_out

    model = two_in_two_out()
    src = save(model, tmp_path / "two.keras")
    out = tmp_path / "two.onnx"
    run = run_subprocess("import", src, "-o", out)
    assert run.returncode == 0, run.stderr
    assert "check at batch 2" in run.stderr
    assert "logits: max abs" in run.stderr and "score: max abs" in run.stderr
    onnx_model = assert_valid_import(out)
    assert [o.name for o in onnx_model.graph.output] == ["logits", "score"]


def test_torch_spec_subprocess(tmp_path: Path):
    out = tmp_path / "mlp.onnx"
    run = run_subprocess("import", "examples.models.torch_models:mlp", "--input-shape", "input:2,16",
                         "--dynamic-batch", "-o", out)
    assert run.returncode == 0, run.stderr
    assert "output_0: max abs" in run.stderr
    assert_valid_import(out)


def test_unsupported_tf_op_names_op_and_node(tmp_path: Path):
    out = tmp_path / "u.onnx"
    run = run_subprocess("import", "fe_specs_tf:unsupported", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "BesselI0e", "bessel_i0e", "hint")
    assert "Tensorflow op" not in run.stderr  # tf2onnx's own log lines stay quiet
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pickles_are_never_loaded(tmp_path: Path, suffix: str):
    """A pickle that would create a file when unpickled: refused, and the file never appears."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    src = tmp_path / f"model{suffix}"
    src.write_bytes(pickle.dumps(Payload()))
    run = run_subprocess("import", src, "-o", tmp_path / "out.onnx")
    assert_one_line_error(run.stderr, run.returncode, "arbitrary code", "pkg.module:", ".pt2")
    assert not marker.exists()
    run = run_subprocess("import", src, "--framework", "torch", "-o", tmp_path / "out.onnx")
    assert_one_line_error(run.stderr, run.returncode, "arbitrary code")
    assert not marker.exists()


# -- TensorFlow sources ----------------------------------------------------------------------


def test_keras_factory_spec(tmp_path: Path):
    out = tmp_path / "two.onnx"
    run = run_cli("import", "examples.models.keras_models:two_in_two_out", "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert [i["name"] for i in summary["inputs"]] == ["image", "features"]
    assert [o["name"] for o in summary["outputs"]] == ["logits", "score"]
    assert summary["check"][0]["ok"]
    assert_valid_import(out)


def test_sequential_model_file(tmp_path: Path):
    """A Sequential model has no output_names: outputs are named after their layers."""
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2, name="scores")])
    model.save(tmp_path / "seq.keras")
    out = tmp_path / "seq.onnx"
    run = run_cli("import", tmp_path / "seq.keras", "-o", out)
    assert run.returncode == 0, run.stderr
    onnx_model = assert_valid_import(out)
    assert [o.name for o in onnx_model.graph.output] == ["scores"]
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    assert_close([model(x).numpy()], ort_outputs(out, {onnx_model.graph.input[0].name: x}))
    unbuilt = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(IrcError, match="no defined inputs"):
        import irc.frontends

        irc.frontends.load(unbuilt)


def test_keras_dict_inputs_and_outputs(tmp_path: Path):
    """A functional model built on dicts: inputs by tensor name, outputs named by their keys."""
    import keras

    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    model = keras.Model({"a": a, "b": b}, {"zeta": keras.layers.Dense(1)(joined),
                                           "alpha": keras.layers.Dense(2)(joined)})
    model.save(tmp_path / "dicts.keras")
    out = tmp_path / "dicts.onnx"
    run = run_cli("import", tmp_path / "dicts.keras", "-o", out)
    assert run.returncode == 0, run.stderr
    onnx_model = assert_valid_import(out)
    names = [o.name for o in onnx_model.graph.output]
    assert sorted(names) == ["alpha", "zeta"]
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((4, 3)).astype(np.float32),
             "b": rng.standard_normal((4, 2)).astype(np.float32)}
    expected = model(feeds)
    assert_close([expected[n].numpy() for n in names], ort_outputs(out, feeds))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_lambda_code_is_never_deserialized(tmp_path: Path, suffix: str):
    import keras

    marker = tmp_path / "pwned"
    x = keras.Input((3,), name="x")
    # The path is a literal inside the lambda's code, so the saved bytecode carries the trap.
    trap = eval(f"lambda t: t * 2 + float(__import__('pathlib').Path({str(marker)!r}).touch() or 0)")
    model = keras.Model(x, keras.layers.Lambda(trap)(x))
    marker.unlink()  # building the model ran it once
    model.save(tmp_path / f"lam{suffix}")
    run = run_cli("import", tmp_path / f"lam{suffix}", "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "Lambda", "pkg.module:factory")
    assert not marker.exists()


def test_tf_function_without_signature_needs_shapes(tmp_path: Path):
    out = tmp_path / "affine.onnx"
    run = run_cli("import", "fe_specs_tf:affine", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "--input-shape x:")
    run = run_cli("import", "fe_specs_tf:affine", "--input-shape", "x:2,3", "--input-shape", "y:2,3",
                  "--dynamic-batch", "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert summary["ok"] and sorted(o["name"] for o in summary["outputs"]) == ["diff", "sum"]
    assert summary["inputs"][0]["shape"][1] == 3 and isinstance(summary["inputs"][0]["shape"][0], str)
    assert_valid_import(out)
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    y = np.ones((5, 3), np.float32)
    result = dict(zip([o["name"] for o in summary["outputs"]], ort_outputs(out, {"x": x, "y": y}),
                      strict=True))
    assert_close([x * 2 + y, x - y], [result["sum"], result["diff"]])


def test_tf_function_input_shape_fixes_batch(tmp_path: Path):
    out = tmp_path / "signed.onnx"
    run = run_cli("import", "fe_specs_tf:signed", "--input-shape", "features:4,3", "-o", out)
    assert run.returncode == 0, run.stderr
    model = assert_valid_import(out)
    assert model.graph.input[0].name == "features"
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [4, 3]


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    from examples.models.keras_models import dense, save

    return save(dense(), tmp_path_factory.mktemp("sm") / "dense")


def test_saved_model_unknown_signature_lists_available(saved_model_dir, tmp_path: Path):
    run = run_cli("import", saved_model_dir, "--signature", "predict", "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "'predict'", "serving_default", "--signature")


def test_saved_model_input_shape_and_opset(saved_model_dir, tmp_path: Path):
    out = tmp_path / "dense.onnx"
    run = run_cli("import", saved_model_dir, "--signature", "serving_default", "--input-shape",
                  "x:5,8", "--opset", "17", "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert summary["opset"] == 17 and summary["inputs"][0]["shape"] == [5, 8]
    assert assert_valid_import(out).opset_import[0].version == 17
    run = run_cli("import", saved_model_dir, "--input-shape", "nope:5,8", "-o", out, "--force")
    assert_one_line_error(run.stderr, run.returncode, "'nope'", "'x'")


def test_tf_module_saved_model_with_named_signatures(tmp_path: Path):
    """tf.saved_model.save of a tf.Module with two signatures: --signature picks one."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def score(self, features):
            return {"logits": features @ self.w, "norm": tf.norm(features, axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def embed(self, features):
            return {"embedding": tf.nn.relu(features @ self.w)}

    module = Scorer()
    tf.saved_model.save(module, str(tmp_path / "scorer"),
                        signatures={"score": module.score, "embed": module.embed})
    out = tmp_path / "score.onnx"
    run = run_cli("import", tmp_path / "scorer", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "'serving_default'", "embed, score")
    run = run_cli("import", tmp_path / "scorer", "--signature", "score", "-o", out)
    assert run.returncode == 0, run.stderr
    model = assert_valid_import(out)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["logits", "norm"]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    expected = module.score(tf.constant(x))
    assert_close([expected["logits"].numpy(), expected["norm"].numpy()],
                 ort_outputs(out, {"features": x}))


def test_missing_tensorflow_names_the_extra(monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # what find_spec reports for a missing package
    run = run_cli("import", "fe_specs_tf:signed", "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "tf2onnx", "pip install 'irc[tf]'")


# -- PyTorch sources ---------------------------------------------------------------------------


def test_unsupported_torch_op_names_op_and_node(tmp_path: Path):
    run = run_cli("import", "fe_specs_torch:SingularValues", "--input-shape", "x:2,4,4",
                  "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "aten._linalg_svd", "node", "hint")


def test_batch_specialized_model_refuses_dynamic_batch(tmp_path: Path):
    out = tmp_path / "o.onnx"
    run = run_cli("import", "fe_specs_torch:BatchSpecialized", "--input-shape", "x:2,6",
                  "--dynamic-batch", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "batch")
    assert not out.exists()


def test_integer_inputs_with_dtype_suffix(tmp_path: Path):
    out = tmp_path / "emb.onnx"
    run = run_cli("import", "fe_specs_torch:Embedder", "--input-shape", "tokens:2,5:int64",
                  "--dynamic-batch", "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    assert run.json()["inputs"][0]["dtype"] == "int64"
    assert_valid_import(out)
    import torch
    from fe_specs_torch import Embedder

    tokens = np.random.default_rng(0).integers(0, 10, (7, 5)).astype(np.int64)
    with torch.no_grad():
        expected = Embedder()(torch.from_numpy(tokens)).numpy()
    assert_close([expected], ort_outputs(out, {"tokens": tokens}))


def test_torch_dict_outputs_and_batch_one_example(tmp_path: Path):
    """Dict keys name the outputs; a batch of 1 with --dynamic-batch is traced at 2 and stays dynamic."""
    out = tmp_path / "heads.onnx"
    run = run_cli("import", "fe_specs_torch:DictHeads", "--input-shape", "x:1,4", "--dynamic-batch",
                  "-o", out)
    assert run.returncode == 0, run.stderr
    model = assert_valid_import(out)
    assert [o.name for o in model.graph.output] == ["mean", "features"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    import torch
    from fe_specs_torch import DictHeads

    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = DictHeads()(torch.from_numpy(x))
    assert_close([expected["mean"].numpy(), expected["features"].numpy()], ort_outputs(out, {"x": x}))


def test_torch_module_needs_shapes_and_named_args(tmp_path: Path):
    out = tmp_path / "o.onnx"
    run = run_cli("import", "examples.models.torch_models:two_in_two_out", "--input-shape",
                  "image:2,3,8,8", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "'features'", "--input-shape features:")
    run = run_cli("import", "fe_specs_torch:varargs_model", "--input-shape", "x:2,3", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "*args")


def test_missing_torch_names_the_extra(monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    run = run_cli("import", "examples.models.torch_models:mlp", "--input-shape", "input:2,16",
                  "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "onnxscript", "pip install 'irc[torch]'")


# -- the conversion check -----------------------------------------------------------------------


def test_check_over_tolerance_fails_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "enc.onnx"
    args = ["import", "examples.models.torch_models:transformer_encoder", "--input-shape",
            "src:2,6,16", "-o", out]
    run = run_cli(*args, "--atol", "0", "--rtol", "0")
    line = assert_one_line_error(run.stderr, run.returncode, "conversion check failed", "output_0",
                                 "--atol")
    assert "max abs" in line and "max abs" in run.stderr.split(line)[0]  # per-output report first
    assert not out.exists()
    run = run_cli(*args, "--atol", "0", "--rtol", "0", "--no-check")
    assert run.returncode == 0, run.stderr
    assert "check at batch" not in run.stderr
    assert_valid_import(out)


def test_python_api_mirrors_cli():
    import irc.frontends

    graph = irc.frontends.load("examples.models.torch_models:mlp", input_shapes={"input": (2, 16)},
                               dynamic_batch=True)
    assert graph.inputs[0].name == "input" and isinstance(graph.inputs[0].shape[0], str)
    onnx.checker.check_model(to_onnx(graph), full_check=True)
    result = irc.frontends.import_model("examples.models.torch_models:mlp", irc.frontends.ImportOptions(
        input_shapes=["input:2,16"], dynamic_batch=True, check_batches=(1, 7)))
    assert [r.batch for r in result.checks] == [1, 7] and result.ok
    from examples.models.keras_models import two_in_two_out
    from examples.models.torch_models import MODELS

    keras_graph = irc.frontends.load(two_in_two_out())  # model objects work too
    assert [v.name for v in keras_graph.outputs] == ["logits", "score"]
    torch_graph = irc.frontends.load(MODELS["lstm"].factory(), input_shapes=["x:2,6,8"])
    assert torch_graph.inputs[0].shape == (2, 6, 8)
    with pytest.raises(IrcError, match="conversion check failed"):
        irc.frontends.load("examples.models.torch_models:transformer_encoder",
                           input_shapes=["src:2,6,16"], atol=0.0, rtol=0.0)


# -- ONNX files ----------------------------------------------------------------------------------


def _opset12_model(path: Path, external: bool = False) -> None:
    """ReduceMean with an axes attribute and Split with a split attribute: both inputs by opset 18."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Split", ["h"], ["a", "b"], axis=1, split=[1, 3]),
        helper.make_node("Add", ["a", "m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=7)
    onnx.save(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=0)


def test_onnx_opset_conversion_checked(tmp_path: Path):
    src, out = tmp_path / "m12.onnx", tmp_path / "m18.onnx"
    _opset12_model(src)
    run = run_cli("import", src, "--opset", "18", "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert summary["opset"] == 18 and summary["check"][0]["ok"] and "opset 12 -> 18" in summary["notes"]
    feeds = {"x": np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)}
    assert_valid_import(out)
    assert_close(ort_outputs(src, feeds), ort_outputs(out, feeds))


def test_onnx_with_external_data_kept_as_is(tmp_path: Path):
    src, out = tmp_path / "ext.onnx", tmp_path / "out.onnx"
    _opset12_model(src, external=True)
    assert (tmp_path / "ext.onnx.data").exists()
    run = run_cli("import", src, "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert summary["opset"] == 12 and summary["check"] == []
    feeds = {"x": np.ones((2, 6), np.float32)}
    assert_valid_import(out)
    assert_close(ort_outputs(src, feeds), ort_outputs(out, feeds), atol=0, rtol=0)


def test_onnx_rejects_framework_options(tmp_path: Path):
    src = tmp_path / "m.onnx"
    _opset12_model(src)
    run = run_cli("import", src, "--dynamic-batch", "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "--dynamic-batch")


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,needles", [
    (["examples.models.torch_models:mlp", "--input-shape", "input:2,x"], ["'x'", "integer"]),
    (["examples.models.torch_models:mlp", "--input-shape", "input:2,16:complex"], ["dtype"]),
    (["examples.models.torch_models:mlp", "--framework", "caffe"], ["--framework", "pytorch"]),
    (["no_such_module_xyz:model"], ["cannot import module"]),
    (["examples.models.torch_models:no_such_model"], ["no attribute"]),
    (["fe_specs_tf:not_a_model"], ["not an nn.Module"]),
    (["fe_specs_tf:needs_arguments"], ["no arguments"]),
    (["model.caffemodel"], ["no such file"]),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args, needles):
    run = run_cli("import", *args, "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, *needles)
    assert not (tmp_path / "o.onnx").exists()


def test_unknown_suffix_and_plain_directory(tmp_path: Path):
    weird = tmp_path / "model.caffemodel"
    weird.write_bytes(b"\0")
    run = run_cli("import", weird, "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "--framework")
    run = run_cli("import", tmp_path, "--framework", "tf", "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "SavedModel")


def test_refuses_to_overwrite(tmp_path: Path):
    out = tmp_path / "o.onnx"
    out.write_bytes(b"precious")
    run = run_cli("import", "examples.models.torch_models:mlp", "--input-shape", "input:2,16",
                  "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "--force")
    assert out.read_bytes() == b"precious"
