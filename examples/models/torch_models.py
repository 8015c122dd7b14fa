"""Small PyTorch models for import and end-to-end tests.

Each factory takes no arguments and returns a seeded ``nn.Module`` in eval
mode. ``MODELS`` maps a model's name to its factory and its inputs (name ->
shape at batch 2, dtype), which is what ``irc import --input-shape`` needs:

    irc import examples.models.torch_models:mlp --input-shape input:2,16 --dynamic-batch -o mlp.onnx

Input names are forward's argument names (``input`` for an ``nn.Sequential``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from irc.frontends.source import avoid_llvm_clash


def _seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """Same weights on every call; BatchNorm running stats made non-trivial."""

    def factory() -> nn.Module:
        torch.manual_seed(0)
        module = build()
        for layer in module.modules():
            if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 1.5)
                nn.init.uniform_(layer.weight, 0.5, 1.5)
                nn.init.uniform_(layer.bias, -0.5, 0.5)
        return module.eval()

    factory.__name__ = build.__name__
    factory.__doc__ = build.__doc__
    return factory


@_seeded
def mlp() -> nn.Module:
    """x (B, 16) -> (B, 10): Linear, ReLU, Linear, ReLU, Linear."""
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))


@_seeded
def cnn_bn() -> nn.Module:
    """x (B, 3, 16, 16) -> (B, 10): two Conv+BatchNorm+ReLU stages, pooling, a classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs with BatchNorm, a projected shortcut when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@_seeded
def resnet_block() -> nn.Module:
    """x (B, 8, 16, 16) -> (B, 16, 8, 8): a basic block with stride 2, then one with identity shortcut."""
    return nn.Sequential(BasicBlock(8, 16, stride=2), BasicBlock(16, 16))


@_seeded
def depthwise_separable() -> nn.Module:
    """x (B, 8, 16, 16) -> (B, 16, 16, 16): depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())


class LSTMClassifier(nn.Module):
    """x (B, 6, 8) -> (B, 4): a one-layer LSTM, the last step through a linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(x)
        return self.head(seq[:, -1])


@_seeded
def lstm() -> nn.Module:
    """See LSTMClassifier."""
    return LSTMClassifier()


@_seeded
def transformer_encoder() -> nn.Module:
    """x (B, 6, 16) -> (B, 6, 16): nn.TransformerEncoderLayer (2 heads, batch_first, no dropout)."""
    return nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0,
                                      batch_first=True)


class TwoInTwoOut(nn.Module):
    """image (B, 3, 8, 8) and features (B, 5) -> logits (B, 4) and embedding (B, 6)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.proj = nn.Linear(5, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.relu(self.conv(image)).mean(dim=(2, 3))
        embedding = pooled * torch.sigmoid(self.proj(features))
        return self.head(embedding), embedding


@_seeded
def two_in_two_out() -> nn.Module:
    """See TwoInTwoOut."""
    return TwoInTwoOut()


def flatten(result) -> list[torch.Tensor]:
    """A forward result as a flat list of tensors (tuples and lists in order)."""
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in flatten(item)]
    return [result]


@dataclass(frozen=True)
class ModelSpec:
    """A factory and its inputs: name -> shape at batch 2 (float32 unless dtypes says)."""

    factory: Callable[[], nn.Module]
    inputs: dict[str, tuple[int, ...]]

    def input_shape_args(self) -> list[str]:
        """The ``--input-shape`` values for ``irc import``."""
        return [f"{name}:{','.join(map(str, shape))}" for name, shape in self.inputs.items()]

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(seed)
        return tuple(torch.randn((batch, *shape[1:]), generator=generator)
                     for shape in self.inputs.values())


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(mlp, {"input": (2, 16)}),
    "cnn_bn": ModelSpec(cnn_bn, {"input": (2, 3, 16, 16)}),
    "resnet_block": ModelSpec(resnet_block, {"input": (2, 8, 16, 16)}),
    "depthwise_separable": ModelSpec(depthwise_separable, {"input": (2, 8, 16, 16)}),
    "lstm": ModelSpec(lstm, {"x": (2, 6, 8)}),
    "transformer_encoder": ModelSpec(transformer_encoder, {"src": (2, 6, 16)}),
    "two_in_two_out": ModelSpec(two_in_two_out, {"image": (2, 3, 8, 8), "features": (2, 5)}),
}
"""Every model by name; the spec for `irc import` is examples.models.torch_models:<name>."""


def export_pt2(name: str, path, dynamic_batch: bool = True) -> None:
    """Save MODELS[name] as an ExportedProgram (.pt2) with torch.export.save."""
    if "tensorflow" in sys.modules:
        avoid_llvm_clash()  # torch.export would load Triton, whose LLVM clashes with TensorFlow's
    spec = MODELS[name]
    module = spec.factory()
    args = spec.example_inputs()
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} for _ in args)
    program = torch.export.export(module, args, dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
