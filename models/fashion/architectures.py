"""Three small CNNs for 1x112x112 Fashion-MNIST canvases, one per architecture family.

- ``vgg``: plain conv / ReLU / max-pool stacks and two fully connected layers.
- ``resnet``: a strided stem and max pool, three residual blocks (identity and 1x1-projection shortcuts,
  residual Add), global average pooling, one fully connected layer.
- ``inception``: a stem, two Inception modules (1x1, 3x3, 5x5 and pool branches joined by
  Concat), global average pooling, one fully connected layer.

BatchNorm layers are folded into the convolutions when exported in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VGGStyle(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 12),
            nn.MaxPool2d(2),  # 56
            conv_bn_relu(12, 24),
            nn.MaxPool2d(2),  # 28
            conv_bn_relu(24, 48),
            nn.MaxPool2d(2),  # 14
            conv_bn_relu(48, 64),
            nn.MaxPool2d(2),  # 7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(128, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(cin, cout, 3, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetStyle(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 16, 5, 2),
            nn.MaxPool2d(2),  # 28
            ResidualBlock(16, 32, 1),  # projection shortcut
            ResidualBlock(32, 64, 2),  # 14
            ResidualBlock(64, 64, 1),  # identity shortcut
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c1: int, c3: tuple[int, int], c5: tuple[int, int], cp: int) -> None:
        super().__init__()
        self.b1 = conv_bn_relu(cin, c1, 1)
        self.b3 = nn.Sequential(conv_bn_relu(cin, c3[0], 1), conv_bn_relu(c3[0], c3[1], 3))
        self.b5 = nn.Sequential(conv_bn_relu(cin, c5[0], 1), conv_bn_relu(c5[0], c5[1], 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn_relu(cin, cp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class InceptionStyle(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 24, 5, 2),
            nn.MaxPool2d(2),  # 28
            InceptionModule(24, 16, (16, 24), (8, 12), 12),  # 64 channels
            nn.MaxPool2d(2),  # 14
            InceptionModule(64, 32, (24, 48), (12, 24), 24),  # 128 channels
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


ARCHITECTURES = {"vgg": VGGStyle, "resnet": ResNetStyle, "inception": InceptionStyle}
