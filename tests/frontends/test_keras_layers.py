"""Every Keras layer of the seed's table (and more), saved in every format the layer allows,
imported with the CLI and checked against Keras itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from fe_helpers import assert_close, assert_valid_import, ort_outputs, run_cli

# TensorFlow/Keras are installed by `make install`: a missing one fails here, never skips.
from examples.models.keras_models import LAYER_MODELS, sample_inputs, save

SUFFIX = {"keras": ".keras", "saved_model": "", "h5": ".h5", "tflite": ".tflite"}


def _formats(case) -> list[str]:
    return ["keras", "saved_model"] + (["h5"] if case.h5 else []) + (["tflite"] if case.tflite else [])


CASES = [(name, fmt) for name, case in LAYER_MODELS.items() for fmt in _formats(case)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each model built once and saved once per format: name -> (model, {format: path})."""
    root = tmp_path_factory.mktemp("keras_models")
    models = {}
    for name, case in LAYER_MODELS.items():
        model = case.factory()
        paths = {fmt: save(model, root / f"{name}{SUFFIX[fmt]}", tflite_batch=case.tflite_batch)
                 for fmt in _formats(case)}
        models[name] = (model, paths)
    return models


def _keras_outputs(model, feeds) -> list:
    result = model([feeds[t.name] for t in model.inputs] if len(model.inputs) > 1
                   else feeds[model.inputs[0].name], training=False)
    result = result if isinstance(result, (list, tuple)) else [result]
    return [r.numpy() for r in result]


@pytest.mark.parametrize("name,fmt", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_keras_layer_imports(saved, tmp_path: Path, name: str, fmt: str):
    model, paths = saved[name]
    out = tmp_path / f"{name}.onnx"
    run = run_cli("import", paths[fmt], "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert summary["framework"] == "tensorflow" and summary["ok"] and summary["written"]
    assert summary["check"] and summary["check"][0]["batch"] in (1, 2)
    onnx_model = assert_valid_import(out)
    # The user's input names survive every format (signatures of SavedModel and TFLite sort them);
    # outputs keep Keras names where the file has them.
    names = [t.name for t in model.inputs]
    assert [i.name for i in onnx_model.graph.input] == (sorted(names) if fmt in ("saved_model", "tflite") else names)
    if fmt in ("keras", "h5"):
        assert [o.name for o in onnx_model.graph.output] == list(model.output_names)
    batch = LAYER_MODELS[name].tflite_batch if fmt == "tflite" and LAYER_MODELS[name].tflite_batch else 3
    feeds = sample_inputs(model, batch=batch, seed=7)
    assert_close(_keras_outputs(model, feeds), ort_outputs(out, feeds))
