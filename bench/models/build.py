"""Export the bench suite to ONNX: ``python bench/models/build.py --out DIR [--only a,b] [--force]``.

Every model gets random weights from a fixed seed, a dynamic batch axis, and is checked
against PyTorch through onnxruntime before it is kept. ``DIR/manifest.json`` lists each
model's file and input specs (shape without batch, dtype, vocabulary of token ids), which
``bench/run.py`` uses to make the same inputs for every engine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED = 20240601


def example_inputs(spec, batch: int, seed: int) -> list[np.ndarray]:
    """Seeded inputs for ``spec``: token ids inside the vocabulary, floats ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for inp in spec.inputs:
        shape = (batch, *inp.shape)
        if inp.vocab is not None:
            arrays.append(rng.integers(0, inp.vocab, size=shape).astype(inp.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(inp.dtype))
    return arrays


def export(spec, path: Path, index: int) -> dict:
    """Export one model, verify it against PyTorch, return its manifest entry."""
    import onnxruntime as ort
    import torch
    from zoo import randomize_batchnorm

    torch.manual_seed(SEED + index)
    generator = torch.Generator().manual_seed(SEED + index)
    model = spec.make().eval()
    with torch.no_grad():
        randomize_batchnorm(model, generator)
    sample = tuple(torch.from_numpy(a) for a in example_inputs(spec, 2, SEED))
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = tuple({0: batch} for _ in spec.inputs)  # by position: forward()'s own arg names vary
    names = [inp.name for inp in spec.inputs]
    started = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's internal FutureWarnings are not ours
        torch.onnx.export(model, sample, str(path), dynamo=True, input_names=names, output_names=["output"],
                          dynamic_shapes=dynamic, external_data=False, verbose=False)
    seconds = time.perf_counter() - started
    check = example_inputs(spec, 3, SEED + 1)
    with torch.no_grad():
        expected = model(*(torch.from_numpy(a) for a in check)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, dict(zip(names, check, strict=True)))[0]
    error = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
        raise SystemExit(f"error: {spec.name}: onnxruntime differs from PyTorch by {error:.3g}")
    params = sum(p.numel() for p in model.parameters())
    return {
        "name": spec.name,
        "file": path.name,
        "description": spec.description,
        "tags": list(spec.tags),
        "parameters": int(params),
        "inputs": [asdict(inp) for inp in spec.inputs],
        "export_seconds": round(seconds, 2),
        "max_abs_error_vs_torch": error,
    }


def main(argv: list[str] | None = None) -> int:
    from zoo import SUITE

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notices
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for the .onnx files and manifest.json")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--force", action="store_true", help="re-export models whose file exists")
    args = parser.parse_args(argv)
    wanted = [n for n in args.only.split(",") if n]
    unknown = set(wanted) - {s.name for s in SUITE}
    if unknown:
        print(f"error: unknown model(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    for index, spec in enumerate(SUITE):
        if wanted and spec.name not in wanted:
            continue
        path = args.out / f"{spec.name}.onnx"
        if path.exists() and spec.name in manifest["models"] and not args.force:
            print(f"{spec.name}: kept {path} (use --force to re-export)")
            continue
        entry = export(spec, path, index)
        manifest["models"][spec.name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{spec.name}: {entry['parameters']:,} parameters -> {path} "
              f"(max |onnx - torch| = {entry['max_abs_error_vs_torch']:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
