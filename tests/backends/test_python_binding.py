"""`irc emit --python`: the PyO3 binding builds with maturin and matches onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.oracle import run


def _two_in_two_out(path):
    """Token ids through an embedding table plus a dense feature vector; scores and argmax."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((10, 6)).astype(np.float32), "table"),
             numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "w")]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], name="embed"),
             helper.make_node("Add", ["emb", "dense"], ["mixed"], name="mix"),
             helper.make_node("MatMul", ["mixed", "w"], ["scores"], name="head"),
             helper.make_node("ArgMax", ["scores"], ["label"], axis=-1, keepdims=0, name="pick")]
    graph = helper.make_graph(
        nodes, "two_heads",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("binding")
    model = root / "two_heads.onnx"
    _two_in_two_out(model)
    crate = root / "crate"
    emit = subprocess.run([sys.executable, "-m", "irc.cli", "emit", str(model), "--target", "rust",
                           "-o", str(crate), "--python"], capture_output=True, text=True)
    assert emit.returncode == 0, emit.stderr
    assert (crate / "python" / "Cargo.toml").exists()
    from irc.backends.rust.python_binding import build_python_binding

    wheel = build_python_binding(crate, root / "wheels")
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    return model, crate, site


def _in_binding(site, code: str) -> subprocess.CompletedProcess:
    env_path = f"import sys; sys.path.insert(0, {str(site)!r}); "
    return subprocess.run([sys.executable, "-c", env_path + code], capture_output=True, text=True)


def test_binding_matches_onnxruntime(installed, tmp_path):
    model, crate, site = installed
    rng = np.random.default_rng(3)
    # Batch 400: scores (4.8 KB) hand numpy the Rust buffer; smaller outputs are copied.
    for batch in (1, 5, 400):
        feeds = {"ids": rng.integers(0, 10, size=batch).astype(np.int64),
                 "dense": rng.standard_normal((batch, 6)).astype(np.float32)}
        np.savez(tmp_path / "in.npz", **feeds)
        code = (f"import numpy as np, two_heads; d = np.load({str(tmp_path / 'in.npz')!r}); "
                f"m = two_heads.Model.load({str(crate)!r}); "
                f"assert m.input_names == ['ids', 'dense'] and m.output_names == ['scores', 'label']; "
                f"s, l = m.forward(d['ids'], d['dense']); "
                f"s2, l2 = m.forward(d['ids'][::-1].copy()[::-1], np.asfortranarray(d['dense'])); "
                f"assert (s2 == s).all() and (l2 == l).all(); "
                # Read in place (C-contiguous and aligned, also read-only or at an offset into a
                # larger buffer) or copied (unaligned): the same outputs, the inputs untouched.
                f"ro = d['dense'].copy(); ro.flags.writeable = False; before = ro.copy(); "
                f"un = np.frombuffer(b'_' + d['dense'].tobytes(), np.float32, offset=1).reshape(ro.shape); "
                f"assert not un.flags.aligned; "
                f"wide = np.concatenate([d['dense'], d['dense']])\n"
                f"for dense in [ro, un, wide[len(ro):]]:\n"
                f"    s3, l3 = m.forward(d['ids'], dense); assert (s3 == s).all() and (l3 == l).all()\n"
                f"assert (ro == before).all(); "
                f"np.savez({str(tmp_path / 'out.npz')!r}, scores=s, label=l)")
        result = _in_binding(site, code)
        assert result.returncode == 0, result.stderr
        got = np.load(tmp_path / "out.npz")
        want = run(model, feeds)
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)
        assert got["label"].dtype == np.int64
        np.testing.assert_array_equal(got["label"], want["label"])


def test_binding_rejects_wrong_dtype_and_shape(installed):
    _, crate, site = installed
    code = (f"import numpy as np, two_heads, json; m = two_heads.Model.load({str(crate)!r}); errs = []\n"
            "for args in [(np.zeros(2, np.int32), np.zeros((2, 6), np.float32)),\n"
            "             (np.zeros(2, np.int64), np.zeros((2, 7), np.float32))]:\n"
            "    try: m.forward(*args); errs.append(None)\n"
            "    except Exception as e: errs.append([type(e).__name__, str(e)])\n"
            "print(json.dumps(errs))")
    result = _in_binding(site, code)
    assert result.returncode == 0, result.stderr
    dtype_err, shape_err = json.loads(result.stdout)
    assert dtype_err[0] == "TypeError"
    assert shape_err[0] == "ValueError" and "dense" in shape_err[1]
