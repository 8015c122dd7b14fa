"""End to end: every Keras and PyTorch example model, imported by irc's frontends, emitted into one
crate, built by cargo and compared with onnxruntime on the imported model."""

from __future__ import annotations

import pytest

from irc.oracle import compare

from .conftest import needs_cargo, run_models

keras_models = pytest.importorskip("examples.models.keras_models")
torch_models = pytest.importorskip("examples.models.torch_models")


def _import_keras(name: str, root):
    from irc.frontends import load
    from irc.ir.onnx_io import to_onnx

    path = keras_models.save(keras_models.LAYER_MODELS[name].factory(), root / f"{name}.keras")
    return to_onnx(load(str(path), check=False))


def _import_torch(name: str):
    from irc.frontends import load
    from irc.ir.onnx_io import to_onnx

    spec = torch_models.MODELS[name]
    graph = load(f"examples.models.torch_models:{name}", input_shapes=spec.input_shape_args(),
                 dynamic_batch=True, check=False)
    return to_onnx(graph)


KERAS = sorted(keras_models.LAYER_MODELS)
TORCH = sorted(torch_models.MODELS)


@pytest.fixture(scope="session")
def frontend_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontend_models")
    models = {f"m_keras_{n}": _import_keras(n, root) for n in KERAS}
    models.update({f"m_torch_{n}": _import_torch(n) for n in TORCH})
    return run_models(models, root / "crate", "irc_test_frontends")


# Models the Rust backend cannot emit yet, with the reason (strict: a fix must remove the entry).
NOT_YET: dict[str, str] = {}


def _param(key: str):
    if key in NOT_YET:
        return pytest.param(key, marks=pytest.mark.xfail(reason=NOT_YET[key], strict=True))
    return key


@needs_cargo
@pytest.mark.slow
@pytest.mark.parametrize("key", [_param(f"keras_{n}") for n in KERAS] + [_param(f"torch_{n}") for n in TORCH])
def test_frontend_model_emits_and_matches(frontend_results, key):
    case, expected = frontend_results[f"m_{key}"]
    assert case.error is None, f"{case.stage}: {case.error}"
    actual = dict(zip(case.output_names, case.outputs, strict=True))
    for d in compare(expected, actual):
        assert d.ok, f"{d.name}: max_abs={d.max_abs} max_rel={d.max_rel} {d.detail}"
