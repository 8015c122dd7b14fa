"""The 9 light model-zoo CNNs shipped in the onnx package, folded, emitted into one crate, at 1e-4 relative."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from irc.oracle import Tolerance, compare

from .conftest import needs_cargo, run_models

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
NAMES = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
         "squeezenet", "vgg19", "zfnet512"]


@pytest.fixture(scope="session")
def zoo_results(tmp_path_factory):
    models = {f"m_{n}": onnx.load(LIGHT / f"light_{n}.onnx") for n in NAMES}
    return run_models(models, tmp_path_factory.mktemp("zoo"), "irc_test_zoo")


@needs_cargo
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_light_model_matches_onnxruntime(zoo_results, name):
    case, expected = zoo_results[f"m_{name}"]
    assert case.error is None, f"{case.stage}: {case.error}"
    actual = dict(zip(case.output_names, case.outputs, strict=True))
    for d in compare(expected, actual, Tolerance(atol=1e-5, rtol=1e-4)):
        assert d.ok, f"{d.name}: max_abs={d.max_abs} max_rel={d.max_rel} {d.detail}"
