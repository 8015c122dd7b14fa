"""The bench suite's models as PyTorch modules, with random (seeded) weights.

Each entry of ``SUITE`` says how to build the module and what one input batch looks like;
``build.py`` exports them to ONNX with a dynamic batch axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class InputSpec:
    """One model input: shape without the batch axis, dtype, and for token ids the vocabulary."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    vocab: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    make: Callable[[], nn.Module]
    inputs: tuple[InputSpec, ...]
    description: str
    tags: tuple[str, ...] = field(default=())


class TinyClassifier(nn.Module):
    """The seed's style: Embedding + Conv1D + global max pooling + Dense (~52k parameters).

    Sized as the issue describes it: ~50k parameters (most in the embedding table) and a
    compute of a few µs (0.2 MFLOP at batch 1), so the per-call overhead is what the bench
    compares. (The first version, Conv1D 32->64 and Dense 128, was 0.8 MFLOP: 6.7 µs at
    this machine's measured peak alone, more than the 3x bar's whole budget.)
    """

    def __init__(self, vocab: int = 3000, dim: int = 16, filters: int = 32, classes: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.conv = nn.Conv1d(dim, filters, kernel_size=3, padding=1)
        self.hidden = nn.Linear(filters, 64)
        self.out = nn.Linear(64, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).transpose(1, 2)  # [batch, dim, seq]
        x = torch.relu(self.conv(x)).amax(dim=2)
        return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=-1)


class Mlp(nn.Module):
    """784-256-128-10 with ReLU."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MnistCnn(nn.Module):
    """The classic MNIST CNN: two 3x3 convolutions, max pooling, two dense layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = torch.flatten(nn.functional.max_pool2d(x, 2), 1)
        return torch.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3))
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 layout (BasicBlock x [2, 2, 2, 2]) at 224x224, 1000 classes."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [*conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class MobileNet(nn.Module):
    """MobileNet v1 layout: 3x3 stem, 13 depthwise-separable blocks with ReLU6, 1000 classes."""

    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [*conv_bn(3, 32, 3, 2), nn.ReLU6()]
        cin = 32
        for cout, stride in self.BLOCKS:
            layers += [*conv_bn(cin, cin, 3, stride, groups=cin), nn.ReLU6(), *conv_bn(cin, cout, 1), nn.ReLU6()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer written out (no fused PyTorch fast path)."""

    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * (hidden // self.heads) ** -0.5
        attended = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.norm1(x + self.proj(attended))
        return self.norm2(x + self.ffn(x))


class BertEncoder(nn.Module):
    """BERT-style encoder: token + position embeddings, 6 layers, hidden 384, 12 heads."""

    def __init__(self, vocab: int = 8192, seq: int = 128, hidden: int = 384, heads: int = 12, layers: int = 6):
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Parameter(torch.randn(seq, hidden) * 0.02)
        self.norm = nn.LayerNorm(hidden)
        self.layers = nn.Sequential(*[EncoderLayer(hidden, heads, 4 * hidden) for _ in range(layers)])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.layers(self.norm(self.tokens(input_ids) + self.positions))


class LstmText(nn.Module):
    """Embedding + one-layer LSTM + Dense on the last hidden state."""

    def __init__(self, vocab: int = 5000, dim: int = 128, hidden: int = 128, classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.out(h[-1])


def randomize_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics, so BatchNorm is not an identity."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) * 0.5 + 0.75)
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=generator) * 0.5 + 0.75)
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=generator) * 0.1)


SUITE: tuple[ModelSpec, ...] = (
    ModelSpec("tiny_classifier", TinyClassifier, (InputSpec("tokens", (64,), "int64", vocab=3000),),
              "Embedding(3000,16) + Conv1D(32,k3) + global max pool + Dense 64 + Dense 4", ("tiny",)),
    ModelSpec("mlp", Mlp, (InputSpec("x", (784,)),), "MLP 784-256-128-10", ("dense",)),
    ModelSpec("mnist_cnn", MnistCnn, (InputSpec("image", (1, 28, 28)),), "MNIST CNN: 2 conv + maxpool + 2 dense",
              ("cnn",)),
    ModelSpec("resnet18", ResNet18, (InputSpec("image", (3, 224, 224)),), "ResNet-18 layout at 224x224", ("cnn",)),
    ModelSpec("mobilenet", MobileNet, (InputSpec("image", (3, 224, 224)),),
              "MobileNet v1 layout (depthwise-separable) at 224x224", ("cnn",)),
    ModelSpec("bert_encoder", BertEncoder, (InputSpec("input_ids", (128,), "int64", vocab=8192),),
              "BERT-style encoder: 6 layers, hidden 384, 12 heads, sequence 128", ("transformer",)),
    ModelSpec("lstm_text", LstmText, (InputSpec("tokens", (64,), "int64", vocab=5000),),
              "Embedding(5000,128) + LSTM(128) + Dense 2", ("rnn",)),
)


def by_name(name: str) -> ModelSpec:
    for spec in SUITE:
        if spec.name == name:
            return spec
    raise KeyError(name)
