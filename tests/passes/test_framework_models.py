"""The frontends' own PyTorch and Keras models, imported, then optimized at levels 2
and 3: onnx.checker passes and onnxruntime gives the same outputs before and after."""

from __future__ import annotations

import onnx
import pytest

from examples.models.torch_models import MODELS as TORCH_MODELS
from irc import oracle
from irc.ir import from_onnx, to_onnx
from irc.passes import optimize

KERAS = ("dense", "conv2d", "separable_conv2d", "layer_normalization", "concatenate")


def _check_levels(model: onnx.ModelProto) -> None:
    feeds = oracle.random_inputs(from_onnx(model), seed=0)
    expected = oracle.run(model, feeds, optimize=False)
    for level in (2, 3):
        graph = from_onnx(model)
        report = optimize(graph, level)
        after = to_onnx(graph)
        onnx.checker.check_model(after)
        assert report.nodes_after <= report.nodes_before
        actual = oracle.run(after, feeds, optimize=False)
        bad = [d for d in oracle.compare(expected, actual) if not d.ok]
        assert not bad, f"level {level}: {bad}"


@pytest.mark.parametrize("name", list(TORCH_MODELS))
def test_torch_models(name):
    from irc.frontends import load

    shapes = TORCH_MODELS[name].input_shape_args()
    graph = load(f"examples.models.torch_models:{name}", input_shapes=shapes, dynamic_batch=True,
                 check=False)
    _check_levels(to_onnx(graph))


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    from examples.models.keras_models import LAYER_MODELS, save

    root = tmp_path_factory.mktemp("keras_for_passes")
    return {name: save(LAYER_MODELS[name].factory(), root / f"{name}.keras") for name in KERAS}


@pytest.mark.parametrize("name", KERAS)
def test_keras_models(name, keras_files):
    from irc.frontends import load

    graph = load(str(keras_files[name]), check=False)
    _check_levels(to_onnx(graph))
