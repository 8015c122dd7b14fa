"""PyTorch models imported with the CLI from a module spec and from a .pt2 ExportedProgram,
with a dynamic batch checked against PyTorch at batch 1, 2 and 7."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fe_helpers import (
    assert_close,
    assert_one_line_error,
    assert_valid_import,
    ort_outputs,
    run_cli,
)

from examples.models.torch_models import MODELS, export_pt2, flatten

BATCHES = (1, 2, 7)


@pytest.fixture(scope="module")
def pt2_files(tmp_path_factory):
    """Every model exported once with torch.export (dynamic batch) and saved as .pt2."""
    root = tmp_path_factory.mktemp("pt2")
    paths = {}
    for name in MODELS:
        paths[name] = root / f"{name}.pt2"
        export_pt2(name, paths[name])
    return paths


def _check_dynamic_batch(name: str, out: Path) -> None:
    """The ONNX model has a symbolic batch and matches the PyTorch module at every batch size."""
    spec = MODELS[name]
    model = assert_valid_import(out)
    for value in model.graph.input:
        assert value.type.tensor_type.shape.dim[0].dim_param, f"{value.name}: batch is not symbolic"
    module = spec.factory()
    for batch in BATCHES:
        args = spec.example_inputs(batch=batch, seed=batch)
        with torch.no_grad():
            expected = [t.numpy() for t in flatten(module(*args))]
        feeds = {name: a.numpy() for name, a in zip(spec.inputs, args, strict=True)}
        actual = ort_outputs(out, feeds)
        assert all(a.shape[0] == batch for a in actual)
        assert_close(expected, actual, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_module_spec_import(tmp_path: Path, name: str):
    out = tmp_path / f"{name}.onnx"
    shapes = [arg for shape in MODELS[name].input_shape_args() for arg in ("--input-shape", shape)]
    run = run_cli("import", f"examples.models.torch_models:{name}", *shapes, "--dynamic-batch",
                  "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    summary = run.json()
    assert summary["framework"] == "pytorch" and summary["ok"] and summary["opset"] == 18
    assert [i["name"] for i in summary["inputs"]] == list(MODELS[name].inputs)
    _check_dynamic_batch(name, out)


@pytest.mark.parametrize("name", list(MODELS))
def test_pt2_import(pt2_files, tmp_path: Path, name: str):
    out = tmp_path / f"{name}.onnx"
    run = run_cli("import", pt2_files[name], "-o", out)
    assert run.returncode == 0, run.stderr
    assert "check at batch 2" in run.stderr and "FAIL" not in run.stderr
    _check_dynamic_batch(name, out)


def test_static_pt2_cannot_be_made_dynamic(tmp_path: Path):
    """A program exported with a fixed batch keeps its shape guards: a clear error, no file."""
    pt2 = tmp_path / "mlp_static.pt2"
    export_pt2("mlp", pt2, dynamic_batch=False)
    out = tmp_path / "mlp.onnx"
    run = run_cli("import", pt2, "--dynamic-batch", "-o", out)
    assert_one_line_error(run.stderr, run.returncode, "fixed batch size", "dynamic_shapes")
    assert not out.exists()
    run = run_cli("import", pt2, "-o", out)
    assert run.returncode == 0, run.stderr
    model = assert_valid_import(out)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_static_batch_without_dynamic_flag(tmp_path: Path):
    out = tmp_path / "mlp.onnx"
    run = run_cli("import", "examples.models.torch_models:mlp", "--input-shape", "input:3,16",
                  "-o", out)
    assert run.returncode == 0, run.stderr
    model = assert_valid_import(out)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 16]
    feeds = {"input": np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)}
    with torch.no_grad():
        expected = MODELS["mlp"].factory()(torch.from_numpy(feeds["input"])).numpy()
    assert_close([expected], ort_outputs(out, feeds))


class _Trap:
    """Unpickling this creates the file at ``path``: proof that code from the model ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _booby_trapped_pt2(src: Path, dst: Path, marker: Path) -> None:
    """A real .pt2 whose sample inputs are replaced by a pickle that runs code when loaded."""
    import io
    import zipfile

    payload = io.BytesIO()
    torch.save(((_Trap(marker),), {}), payload)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("sample_inputs/model.pt"):
                data = payload.getvalue()
            zout.writestr(item, data)


def test_pt2_never_runs_pickled_code(pt2_files, tmp_path: Path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt2"
    _booby_trapped_pt2(pt2_files["mlp"], evil, marker)
    # Plain torch.export.load falls back to full unpickling and runs the payload (in a child).
    code = f"import torch; torch.export.load({str(evil)!r})"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert marker.exists(), "the trap did not fire: the test would prove nothing"
    marker.unlink()
    run = run_cli("import", evil, "-o", tmp_path / "o.onnx")
    assert_one_line_error(run.stderr, run.returncode, "never pickled Python objects")
    assert not marker.exists()
