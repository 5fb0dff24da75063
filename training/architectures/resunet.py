"""Residual U-Net with coordinate channels: the stronger candidate of this package.

Why this shape: the strain field of an elastic composite is non-local (a fiber cluster shields or
loads the whole band it sits in), so the network needs a receptive field covering the whole
32×32 image, which the U-Net reaches cheaply by working at 32, 16, 8 and 4 pixels. Residual blocks
with GroupNorm train stably at batch sizes down to one (BatchNorm does not); ``norm="batch"``
trades that for speed: in eval mode a BatchNorm is a fixed per-channel affine map, which the
ONNX export folds into the convolution before it, so onnxruntime runs Conv+ReLU as one fused
node, where each GroupNorm costs reshapes, an InstanceNormalization and layout conversions
(measured in docs/training.md, "BatchNorm + ReLU for speed"). The boundary conditions of SPEC §1
are not translation invariant (rollers on the left and bottom edges, load on the right, free
top), so the pixel coordinates x and y are fed as two extra input channels.

Shapes: ``[N, 1, 32, 32]`` normalized modulus -> ``[N, 3, 32, 32]`` normalized strain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from microstrain.conventions import GRID, N_STRAIN
from training.architectures import layers


@dataclass(frozen=True)
class ResUNetConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels per level, finest (32×32) first
    blocks: int | tuple[int, ...] = 1  # residual blocks per level on each side of the U: one
    # count for every level, or one per level, finest first (as ``widths``)
    coords: bool = True  # append x, y pixel-centre coordinates as input channels
    groups: int = 8  # GroupNorm groups (each width must be divisible by it)
    activation: str = "gelu"
    norm: str = "group"  # "group" (GroupNorm of ``groups``) or "batch" (BatchNorm)
    # SPEC §11's periodic cell: circular padding and periodic upsampling, so the network is
    # exactly equivariant under whole-pixel shifts by multiples of its coarsest pixel and takes
    # any n x n image (n a multiple of that pixel); it has no coordinates to see
    periodic: bool = False
    out_channels: int = N_STRAIN  # 9 for the periodic model's three unit cases


def pixel_coordinates(grid: int = GRID) -> torch.Tensor:
    """x and y of the pixel centres on the unit square in the SPEC §2 image layout.

    Returns ``[1, 2, grid, grid]``: channel 0 is x (grows along columns), channel 1 is y (row 0 is
    the top, y near 1).
    """
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid  # [grid]
    x = centres.view(1, grid).expand(grid, grid)  # [grid, grid]
    y = (1.0 - centres).view(grid, 1).expand(grid, grid)  # [grid, grid]
    return torch.stack([x, y]).unsqueeze(0)


NORMS = ("group", "batch")


def padding_mode(cfg: ResUNetConfig) -> Literal["circular", "zeros"]:
    return "circular" if cfg.periodic else "zeros"


def upsample(h: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Bilinear ×2 ``[N, C, H, W]`` -> ``[N, C, 2H, 2W]``; ``periodic``: of the periodic
    continuation (one wrapped pixel each side, upsampled, two output pixels cropped), so the
    edges see their neighbours across the cell boundary instead of a clamped border."""
    if not periodic:
        return F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
    wrapped = F.pad(h, (1, 1, 1, 1), mode="circular")  # [N, C, H + 2, W + 2]
    up = F.interpolate(wrapped, scale_factor=2, mode="bilinear", align_corners=False)
    return up[..., 2:-2, 2:-2]


def normalization(kind: str, channels: int, groups: int) -> nn.Module:
    """GroupNorm (``min(groups, channels)`` groups) or BatchNorm over ``channels``."""
    if kind == "group":
        return nn.GroupNorm(min(groups, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose from {list(NORMS)}")


class ResBlock(nn.Module):
    """norm → act → conv3×3 → norm → act → conv3×3 plus a (1×1 projected) identity path."""

    def __init__(self, c_in: int, c_out: int, cfg: ResUNetConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(
            normalization(cfg.norm, c_in, cfg.groups),
            layers.activation(cfg.activation),
            nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding_mode(cfg)),
            normalization(cfg.norm, c_out, cfg.groups),
            layers.activation(cfg.activation),
            nn.Conv2d(c_out, c_out, 3, padding=1, padding_mode=padding_mode(cfg)),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def level_blocks(cfg: ResUNetConfig) -> tuple[int, ...]:
    """Residual blocks of each level, finest first (``cfg.blocks`` spread over the levels)."""
    counts = (cfg.blocks,) * len(cfg.widths) if isinstance(cfg.blocks, int) else cfg.blocks
    if (
        isinstance(counts, str)
        or len(counts) != len(cfg.widths)
        or not all(isinstance(c, int) and c >= 1 for c in counts)
    ):
        raise ValueError(
            f"blocks must be a positive count or one per level ({len(cfg.widths)}), "
            f"got {cfg.blocks!r}"
        )
    return tuple(counts)


def _stage(c_in: int, c_out: int, cfg: ResUNetConfig, n_blocks: int) -> nn.Sequential:
    blocks = [ResBlock(c_in, c_out, cfg)]
    blocks += [ResBlock(c_out, c_out, cfg) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


class ResUNet(nn.Module):
    """U-Net of residual stages; level ``l`` works at ``32 / 2**l`` pixels with ``widths[l]``."""

    coords: torch.Tensor

    def __init__(self, cfg: ResUNetConfig | None = None, in_channels: int = 1) -> None:
        super().__init__()
        cfg = cfg or ResUNetConfig()
        self.cfg = cfg
        w = cfg.widths
        n = level_blocks(cfg)
        if GRID % 2 ** (len(w) - 1):
            raise ValueError(f"{len(w)} levels do not fit a {GRID}-pixel grid")
        if cfg.coords:
            self.register_buffer("coords", pixel_coordinates(), persistent=False)
        c_in = in_channels + (2 if cfg.coords else 0)
        if cfg.periodic and cfg.coords:
            raise ValueError("a periodic network has no coordinates: set coords false")
        self.stem = nn.Conv2d(c_in, w[0], 3, padding=1, padding_mode=padding_mode(cfg))
        self.down = nn.ModuleList(_stage(w[i], w[i], cfg, n[i]) for i in range(len(w) - 1))
        self.pool_proj = nn.ModuleList(nn.Conv2d(w[i], w[i + 1], 1) for i in range(len(w) - 1))
        self.bottom = _stage(w[-1], w[-1], cfg, n[-1])
        self.up_proj = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 1) for i in range(len(w) - 1))
        self.up = nn.ModuleList(_stage(2 * w[i], w[i], cfg, n[i]) for i in range(len(w) - 1))
        self.head = nn.Sequential(
            normalization(cfg.norm, w[0], cfg.groups),
            layers.activation(cfg.activation),
            nn.Conv2d(w[0], cfg.out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.coords:
            coords = self.coords.expand(x.shape[0], -1, -1, -1)  # [N, 2, 32, 32]
            x = torch.cat([x, coords], dim=1)  # [N, 3, 32, 32]
        h = self.stem(x)  # [N, w0, 32, 32]
        skips = []
        for stage, proj in zip(self.down, self.pool_proj, strict=True):
            h = stage(h)
            skips.append(h)
            h = proj(F.avg_pool2d(h, 2))  # [N, w_{l+1}, H/2, W/2]
        h = self.bottom(h)
        for level in reversed(range(len(skips))):
            if self.cfg.periodic:
                # a 1x1 convolution commutes with the (periodic) bilinear upsampling, whose
                # weights sum to one: projecting first convolves a quarter of the pixels and
                # wraps and resizes w_l channels instead of w_{l+1} (the same function; the
                # uniaxial graph keeps its order, so its shipped export stays bit-identical)
                h = upsample(self.up_proj[level](h), periodic=True)  # [N, w_l, H, W]
            else:
                h = self.up_proj[level](upsample(h, periodic=False))  # [N, w_l, H, W]
            h = self.up[level](torch.cat([h, skips[level]], dim=1))
        return self.head(h)  # [N, 3, 32, 32]


def res_unet(
    widths: Sequence[int] = ResUNetConfig.widths,
    blocks: int | Sequence[int] = ResUNetConfig.blocks,
    coords: bool = ResUNetConfig.coords,
    groups: int = ResUNetConfig.groups,
    activation: str = ResUNetConfig.activation,
    norm: str = ResUNetConfig.norm,
    periodic: bool = ResUNetConfig.periodic,
    out_channels: int = ResUNetConfig.out_channels,
) -> nn.Module:
    """Residual U-Net with coordinate channels; the keyword arguments are :class:`ResUNetConfig`."""
    layers.activation(activation)  # an unknown name fails here, before any layer is built
    normalization(norm, 1, 1)  # likewise an unknown norm
    counts = blocks if isinstance(blocks, int | str) else tuple(blocks)  # a str is refused below
    config = ResUNetConfig(
        tuple(widths), counts, coords, groups, activation, norm, periodic, out_channels
    )
    return ResUNet(config)
