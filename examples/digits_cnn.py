"""The bundled example of `make demo`: a small MNIST-size CNN in PyTorch.

Weights are random but seeded; the point of the demo is the pipeline, which
must preserve whatever the weights are.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """image (B, 1, 28, 28) -> logits (B, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
                                        nn.Linear(64, 10))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))


def digits_cnn() -> nn.Module:
    """The demo model, seeded, in eval mode, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = DigitsCNN()
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 1.5)
    return model.eval()
