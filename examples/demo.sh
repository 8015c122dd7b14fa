#!/usr/bin/env bash
# The end-to-end job on the bundled example: import -> optimize -> emit -> build -> verify.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
mkdir -p "$out"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/.cargo-target}"

step() { printf '\n== %s\n' "$*"; }

step "import a PyTorch nn.Module (checked against PyTorch)"
irc import examples.digits_cnn:digits_cnn --input-shape image:2,1,28,28 --dynamic-batch \
    -o "$out/digits.onnx" --force
irc inspect "$out/digits.onnx"

step "optimize (every rewrite checked against onnxruntime)"
irc optimize "$out/digits.onnx" -o "$out/digits.opt.onnx" --force --report

step "emit a Rust crate"
irc emit "$out/digits.opt.onnx" --target rust --name digits -o "$out/crate" --force

step "build it"
cargo build --release --quiet --manifest-path "$out/crate/Cargo.toml"

step "verify it against onnxruntime (batch 1 and 8)"
irc verify "$out/digits.opt.onnx" -o "$out/crate" --force --batch 1
irc verify "$out/digits.opt.onnx" -o "$out/crate" --force --batch 8

step "run the crate's own CLI"
python3 -c "import numpy as np; np.save('$out/image.npy', np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32))"
"$CARGO_TARGET_DIR/release/digits" --input "image=$out/image.npy" --output-dir "$out/outputs"
cat "$out/outputs/outputs.json"; echo
"$CARGO_TARGET_DIR/release/digits" --input "image=$out/image.npy" --bench 200 | tail -n 1
echo "demo: ok (crate in $out/crate)"
