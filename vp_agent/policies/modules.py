"""Network blocks shared by the policies: the image encoder and the conditional 1-D temporal U-Net."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.skip = (nn.Identity() if cin == cout and stride == 1
                     else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(groups, cout)))

    def forward(self, x):
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.skip(x))


class SpatialSoftmax(nn.Module):
    """Expected 2-D image coordinates of ``num_kp`` learned keypoints (Levine et al.; robomimic, DP)."""

    def __init__(self, channels: int, num_kp: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, num_kp, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        logits = self.proj(x).flatten(2)  # (B, K, H*W)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device),
                                torch.linspace(-1, 1, w, device=x.device), indexing="ij")
        grid = torch.stack([xs.flatten(), ys.flatten()], -1)  # (H*W, 2)
        return (logits.softmax(-1) @ grid).flatten(1)  # (B, K*2)


class ImageEncoder(nn.Module):
    """A small ResNet (GroupNorm, as DP replaces BatchNorm) with a spatial-softmax head -> ``out_dim``."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), num_kp: int = 32, out_dim: int = 128):
        super().__init__()
        # Stride-2 stem, then one block per width (the first keeps resolution): 64 px -> 8x8 features.
        layers, cin = [nn.Conv2d(3, channels[0], 3, 2, 1), nn.GroupNorm(8, channels[0]), nn.ReLU()], channels[0]
        for i, c in enumerate(channels):
            layers.append(ResBlock(cin, c, stride=1 if i == 0 else 2))
            cin = c
        self.trunk = nn.Sequential(*layers)
        # No ReLU after the projection (robomimic and DP have none): with one, every feature of the trained
        # BC went dead (constant zero) and the policy acted blind from state and text alone.
        self.head = nn.Sequential(SpatialSoftmax(cin, num_kp), nn.Linear(num_kp * 2, out_dim))
        self.out_dim = out_dim

    def forward(self, images):  # (B, 3, H, W) in [0, 1]
        # Frames arrive as permuted HWC arrays (channels_last strides); on the CPU GroupNorm over channels_last
        # runs ~10x slower than over contiguous NCHW and bf16 convolutions gain less (measured in
        # docs/performance.md), so the trunk always gets a contiguous tensor.
        return self.head(self.trunk((images * 2 - 1).contiguous()))


def seeded_noise(seeds, *shapes: tuple[int, ...], device=None) -> list[torch.Tensor]:
    """Standard normal noise of each of ``shapes`` for every row, row ``i`` drawn (shapes in order) from its
    own generator seeded with ``seeds[i]``: one tensor (len(seeds), *shape) per shape."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return [torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device) for shape in shapes]


STATE_SOURCES = ("state", "privileged")


def check_observation_config(config) -> None:
    """Shared checks of what a policy reads: an image, a state, or both."""
    if config.state_source not in STATE_SOURCES:
        raise ValueError(f"unknown state_source {config.state_source!r}; known: {', '.join(STATE_SOURCES)}")
    if not (config.use_image or config.use_state):
        raise ValueError("a policy must read something: set use_image or use_state")


def random_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Independent random ``size`` x ``size`` crops of (B, C, H, W) images (DP's augmentation)."""
    b, _, h, w = images.shape
    if size >= min(h, w):
        return images
    ys = torch.randint(0, h - size + 1, (b,))
    xs = torch.randint(0, w - size + 1, (b,))
    return torch.stack([img[:, y:y + size, x:x + size] for img, y, x in zip(images, ys, xs)])


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    _, _, h, w = images.shape
    y, x = (h - size) // 2, (w - size) // 2
    return images[:, :, y:y + size, x:x + size]


# --------------------------------------------------------------------------- Diffusion Policy's 1-D U-Net
class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        args = t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], -1)


class Conv1dBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 8):
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())


class CondResBlock1d(nn.Module):
    """Residual temporal conv block whose features are scaled and shifted by the condition (FiLM)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int = 5, groups: int = 8):
        super().__init__()
        self.block1 = Conv1dBlock(cin, cout, kernel, groups)
        self.block2 = Conv1dBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, cond):
        h = self.block1(x)
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(h * (1 + scale) + shift)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Chi et al.'s conditional U-Net over an action sequence (B, T, A), FiLM-conditioned on a global vector.

    ``down_dims`` sets the width per level; T must be divisible by 2**(len(down_dims)-1).
    """

    def __init__(self, action_dim: int, cond_dim: int, down_dims=(64, 128, 256), kernel: int = 5,
                 step_embed_dim: int = 128, groups: int = 8):
        super().__init__()
        self.step_embed = nn.Sequential(SinusoidalPosEmb(step_embed_dim), nn.Linear(step_embed_dim, 4 * step_embed_dim),
                                        nn.Mish(), nn.Linear(4 * step_embed_dim, step_embed_dim))
        cdim = step_embed_dim + cond_dim
        dims = [action_dim, *down_dims]
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([CondResBlock1d(a, b, cdim, kernel, groups),
                                            CondResBlock1d(b, b, cdim, kernel, groups),
                                            nn.Conv1d(b, b, 3, 2, 1) if not last else nn.Identity()]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([CondResBlock1d(mid, mid, cdim, kernel, groups),
                                  CondResBlock1d(mid, mid, cdim, kernel, groups)])
        self.up = nn.ModuleList()
        for i, (b, a) in enumerate(zip(reversed(down_dims[1:]), reversed(down_dims[:-1]))):
            self.up.append(nn.ModuleList([CondResBlock1d(2 * b, a, cdim, kernel, groups),
                                          CondResBlock1d(a, a, cdim, kernel, groups),
                                          nn.ConvTranspose1d(a, a, 4, 2, 1)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel, groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample, timestep, cond):  # sample (B, T, A), timestep (B,), cond (B, C)
        x = sample.transpose(1, 2)
        c = torch.cat([self.step_embed(timestep), cond], -1)
        skips = []
        for res1, res2, down in self.down:
            x = res2(res1(x, c), c)
            skips.append(x)
            x = down(x)
        for block in self.mid:
            x = block(x, c)
        for res1, res2, up in self.up:
            x = torch.cat([x, skips.pop()], 1)
            x = up(res2(res1(x, c), c))
        return self.final(x).transpose(1, 2)
