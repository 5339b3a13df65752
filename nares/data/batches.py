"""`DeviceBatches`: a batch iterator that keeps the whole uint8 set on the model's device.

Random crop (zero padding) and horizontal flip are one batched gather per batch, no per-sample Python.
Order and augmentation of an epoch are drawn up front from a `torch.Generator` on the device seeded
from (seed, epoch), so they are a pure function of (seed, epoch, device type): a run resumed at an
epoch boundary sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from nares.data.images import ImageSet
from nares.errors import DataError


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of an epoch: the first 64-bit word of numpy's SeedSequence([seed, epoch])."""
    if seed < 0 or epoch < 0:
        raise DataError(f"seed {seed} and epoch {epoch} must be non-negative")
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])


def crop_flip(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, flip: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image of `x` [B,C,H,W] after zero-padding by `padding`, then mirror it where `flip`.

    Sample b's output pixel (i, j) is input pixel (i + dy[b] − padding, j + dx[b] − padding) (zero
    outside the image), with j replaced by W−1−j first when flip[b]. dx, dy ∈ [0, 2·padding].
    """
    b, c, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (padding, padding, padding, padding)) if padding else x
    i = torch.arange(h, device=dev)
    j = torch.arange(w, device=dev)
    rows = dy.view(b, 1) + i.view(1, h)                                             # [B,H]
    cols = dx.view(b, 1) + torch.where(flip.view(b, 1), (w - 1 - j).view(1, w), j.view(1, w))  # [B,W]
    bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
    ci = torch.arange(c, device=dev).view(1, c, 1, 1)
    return xp[bi, ci, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


class DeviceBatches:
    """Iterate `(x, y)`: x float32 [B,3,H,W] in [0,1] on `device`, y int64; `len()` is the number of batches."""

    def __init__(
        self,
        images: ImageSet,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        shuffle: bool,
        drop_last: bool,
        augment: bool,
        crop_padding: int = 4,
        flip: bool = True,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size {batch_size} must be at least 1")
        if crop_padding < 0:
            raise DataError(f"crop_padding {crop_padding} must be non-negative")
        self.images = images.to(device) if device is not None else images
        self.device = self.images.device
        self.batch_size = batch_size
        self.shuffle, self.drop_last, self.augment = shuffle, drop_last, augment
        self.crop_padding, self.flip = crop_padding, flip
        self.seed, self.channels_last = seed, channels_last
        self.epoch = 0
        epoch_seed(seed, 0)  # validates the seed

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration's order and augmentation those of `epoch`."""
        epoch_seed(self.seed, epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _draws(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        n, dev = len(self.images), self.device
        g = torch.Generator(device=dev)
        g.manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(n, generator=g, device=dev) if self.shuffle else torch.arange(n, device=dev)
        if not self.augment:
            return order, None, None, None
        span = 2 * self.crop_padding + 1
        dx = torch.randint(span, (n,), generator=g, device=dev)
        dy = torch.randint(span, (n,), generator=g, device=dev)
        flips = torch.rand(n, generator=g, device=dev) < 0.5
        return order, dx, dy, flips if self.flip else torch.zeros_like(flips)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, dx, dy, flips = self._draws()
        x_all, y_all = self.images.x, self.images.y
        for k in range(len(self)):
            sl = slice(k * self.batch_size, (k + 1) * self.batch_size)
            idx = order[sl]
            xb = x_all[idx]
            if dx is not None:
                xb = crop_flip(xb, dx[sl], dy[sl], flips[sl], self.crop_padding)
            xb = xb.float().div_(255)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, y_all[idx]
