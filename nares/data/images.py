"""`ImageSet`: a labelled set of CIFAR images held as one uint8 CHW tensor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nares.errors import DataError


@dataclass(frozen=True)
class ImageSet:
    """Images `x` uint8 [N,3,H,W] (CHW) and labels `y` int64 [N], with a name such as "cifar10/test"."""

    x: torch.Tensor
    y: torch.Tensor
    name: str

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.ndim != 4 or self.x.shape[1] != 3:
            raise DataError(f"{self.name}: images are {tuple(self.x.shape)} {self.x.dtype}, expected [N,3,H,W] uint8")
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise DataError(f"{self.name}: labels are {tuple(self.y.shape)} {self.y.dtype}, expected [{len(self.x)}] int64")

    @classmethod
    def from_hwc(cls, x: np.ndarray, y: np.ndarray, name: str) -> ImageSet:
        """From numpy uint8 [N,H,W,3] (the files' layout) and integer labels; copies into CHW order."""
        y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name}: labels have dtype {y.dtype}, expected an integer dtype")
        xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))
        return cls(xt, torch.from_numpy(y.astype(np.int64)), name)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.x.to(device), self.y.to(device), self.name)

    def float01(self) -> torch.Tensor:
        """The images as float32 in [0, 1] (the model's input range; there is no normalisation)."""
        return self.x.float().div_(255)

    def take(self, indices: torch.Tensor | np.ndarray | slice, name: str | None = None) -> ImageSet:
        """The images at `indices` (a slice or an index array), in that order."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.int64, device=self.x.device)
        return ImageSet(self.x[indices].contiguous(), self.y[indices].contiguous(), name or self.name)

    def head(self, limit: int | None) -> ImageSet:
        """The first `limit` images (all when None); a limit beyond the set's size is an error."""
        if limit is None:
            return self
        if not 0 < limit <= len(self):
            raise DataError(f"{self.name}: limit {limit} is outside 1..{len(self)}")
        return self.take(slice(0, limit))
