"""The PyTorch models of the optimize benchmark: five torchvision-style CNNs and two
transformer encoders, small enough to export in seconds (random weights, no download).
BatchNorm running statistics are randomized so folding them is not a no-op."""

from __future__ import annotations

import torch
from torch import nn


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


class ResNetS(nn.Module):
    """ResNet-18 layout at reduced width."""

    def __init__(self, width=16, classes=10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn(3, w, 7, 2), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(conv_bn(cin, mid, 1, act=nn.ReLU6),
                                  conv_bn(mid, mid, 3, stride, groups=mid, act=nn.ReLU6),
                                  nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_res else y


class MobileNetV2S(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        cfg = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (64, 2, 6), (96, 1, 6)]
        layers, cin = [conv_bn(3, 16, 3, 2, act=nn.ReLU6)], 16
        for cout, stride, expand in cfg:
            layers.append(InvertedResidual(cin, cout, stride, expand))
            cin = cout
        layers.append(conv_bn(cin, 128, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, classes))

    def forward(self, x):
        x = self.features(x).mean([2, 3])
        return self.classifier(x)


class VGGS(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        cfg, layers, cin = [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, "M"], [], 3
        for c in cfg:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(conv_bn(cin, c))
                cin = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(),
                                        nn.Dropout(), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(),
                                  nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


class DenseNetS(nn.Module):
    def __init__(self, growth=8, classes=10):
        super().__init__()
        layers, c = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
        for block in range(3):
            for _ in range(4):
                layers.append(DenseLayer(c, growth))
                c += growth
            if block < 2:
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class ShuffleUnit(nn.Module):
    def __init__(self, c, groups=2):
        super().__init__()
        self.groups = groups
        half = c // 2
        self.branch = nn.Sequential(conv_bn(half, half, 1), conv_bn(half, half, 3, groups=half, act=nn.Identity),
                                    conv_bn(half, half, 1))

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        y = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = y.shape
        return y.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleNetS(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = conv_bn(3, 32, 3, 2)
        self.units = nn.Sequential(*[ShuffleUnit(32) for _ in range(4)])
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(self.units(self.stem(x)).mean([2, 3]))


class TorchEncoder(nn.Module):
    """nn.TransformerEncoder: 2 layers, d=64, 4 heads, GELU, batch first."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x)


class BertS(nn.Module):
    """A BERT-style encoder written out by hand: embeddings, attention, LayerNorm, GELU MLP."""

    def __init__(self, vocab=100, d=64, heads=4, layers=2, seq=16):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, seq, d) * 0.02)
        self.heads = heads
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "qkv": nn.Linear(d, 3 * d), "out": nn.Linear(d, d), "ln1": nn.LayerNorm(d),
            "ff1": nn.Linear(d, 4 * d), "ff2": nn.Linear(4 * d, d), "ln2": nn.LayerNorm(d)})
            for _ in range(layers))
        self.pool = nn.Linear(d, d)

    def forward(self, ids):
        x = self.tok(ids) + self.pos[:, : ids.shape[1]]
        b, s, d = x.shape
        for blk in self.blocks:
            q, k, v = blk["qkv"](x).split(d, dim=-1)
            q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
            att = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
            y = (att @ v).transpose(1, 2).reshape(b, s, d)
            x = blk["ln1"](x + blk["out"](y))
            x = blk["ln2"](x + blk["ff2"](nn.functional.gelu(blk["ff1"](x))))
        return torch.tanh(self.pool(x[:, 0]))


IMAGE = (1, 3, 64, 64)
MODELS = {
    "resnet_s": (lambda: _randomize_bn(ResNetS(), 1), lambda: torch.randn(*IMAGE)),
    "mobilenetv2_s": (lambda: _randomize_bn(MobileNetV2S(), 2), lambda: torch.randn(*IMAGE)),
    "vgg_s": (lambda: _randomize_bn(VGGS(), 3), lambda: torch.randn(*IMAGE)),
    "densenet_s": (lambda: _randomize_bn(DenseNetS(), 4), lambda: torch.randn(*IMAGE)),
    "shufflenet_s": (lambda: _randomize_bn(ShuffleNetS(), 5), lambda: torch.randn(*IMAGE)),
    "torch_encoder": (lambda: TorchEncoder().eval(), lambda: torch.randn(2, 16, 64)),
    "bert_s": (lambda: BertS().eval(), lambda: torch.randint(0, 100, (2, 16))),
}


def export(name: str, path: str) -> None:
    """Export MODELS[name] with the dynamo exporter (batch dimension dynamic)."""
    factory, example = MODELS[name]
    torch.manual_seed(0)
    model = factory()
    x = example()
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, dynamo=True, dynamic_shapes=({0: batch},),
                          input_names=["input"], output_names=["output"], verbose=False)
