"""The lecture's three strain-field candidates (NN1, NN2, NN3), parameter counts as in the slides.

Every convolution is 3×3 with padding 1 and is *preceded* by a BatchNorm over its input channels
(the lecture's ordering); LeakyReLU follows every convolution except the last of a network. The
network works in normalized units: input ``[N, 1, 32, 32]`` encoded modulus, output
``[N, 3, 32, 32]`` encoded strain (see :mod:`training.normalization`).

==================  =====  ===========  ==========================================
registry name       slide  parameters   structure
==================  =====  ===========  ==========================================
``course-cnn``      NN2    38,405       1 → 32 → 64 → 32 → 3
``course-unet``     NN1    94,978       U-Net [1, 32, 64], bottleneck 64 → 64
``course-unet-cnn`` NN3    154,471      that U-Net ending in 64 channels, then 64 → 32 → 16 → 3
==================  =====  ===========  ==========================================
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from microstrain.conventions import N_STRAIN


def bn_conv(c_in: int, c_out: int) -> list[nn.Module]:
    """BatchNorm over the input channels, then a 3×3 convolution (size-preserving)."""
    return [nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)]


class FeedForwardCNN(nn.Sequential):
    """Plain stack of BN → conv (→ LeakyReLU) layers: ``[N, c0, H, W] -> [N, c_last, H, W]``."""

    def __init__(self, channels: Sequence[int] = (1, 32, 64, 32, N_STRAIN)) -> None:
        layers: list[nn.Module] = []
        pairs = list(itertools.pairwise(channels))
        for i, (c_in, c_out) in enumerate(pairs):
            layers += bn_conv(c_in, c_out)
            if i < len(pairs) - 1:
                layers.append(nn.LeakyReLU())
        super().__init__(*layers)


class CourseUNet(nn.Module):
    """The lecture's small U-Net with one convolution per block.

    Channel list ``[1, c1, c2]``: encoder blocks 1 → c1 (32×32) and c1 → c2 (16×16), bottleneck
    c2 → c2 (8×8), decoder c2 + c2 → c1 (16×16), and the last block sees the first encoder's
    features *and* the raw input again: c1 + c1 + 1 → ``out_channels`` (32×32). 2×2 max pooling
    down, bilinear ×2 up, skips by concatenation.
    """

    def __init__(
        self,
        channels: Sequence[int] = (1, 32, 64),
        out_channels: int = N_STRAIN,
        final_activation: bool = False,
    ) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.enc1 = nn.Sequential(*bn_conv(c0, c1), nn.LeakyReLU())
        self.enc2 = nn.Sequential(*bn_conv(c1, c2), nn.LeakyReLU())
        self.bottleneck = nn.Sequential(*bn_conv(c2, c2), nn.LeakyReLU())
        self.dec2 = nn.Sequential(*bn_conv(c2 + c2, c1), nn.LeakyReLU())
        last: list[nn.Module] = bn_conv(c1 + c1 + c0, out_channels)
        if final_activation:
            last.append(nn.LeakyReLU())
        self.dec1 = nn.Sequential(*last)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1(x)  # [N, c1, 32, 32]
        s2 = self.enc2(F.max_pool2d(s1, 2))  # [N, c2, 16, 16]
        b = self.bottleneck(F.max_pool2d(s2, 2))  # [N, c2, 8, 8]
        d2 = self.dec2(torch.cat([self._up(b), s2], dim=1))  # [N, c1, 16, 16]
        return self.dec1(torch.cat([self._up(d2), s1, x], dim=1))  # [N, out, 32, 32]


class CourseUNetCNN(nn.Sequential):
    """NN3: the course U-Net ending in ``width`` channels + LeakyReLU, then a feed-forward CNN."""

    def __init__(
        self,
        channels: Sequence[int] = (1, 32, 64),
        width: int = 64,
        head: Sequence[int] = (32, 16, N_STRAIN),
    ) -> None:
        super().__init__(
            CourseUNet(channels, out_channels=width, final_activation=True),
            FeedForwardCNN((width, *head)),
        )


def course_cnn() -> nn.Module:
    """NN2: four BN→conv layers 1 → 32 → 64 → 32 → 3 (38,405 parameters)."""
    return FeedForwardCNN()


def course_unet() -> nn.Module:
    """NN1: U-Net [1, 32, 64] with five convolutions (94,978 parameters)."""
    return CourseUNet()


def course_unet_cnn() -> nn.Module:
    """NN3: U-Net followed by three convolutions 64 → 32 → 16 → 3 (154,471 parameters)."""
    return CourseUNetCNN()
