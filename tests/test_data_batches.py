"""Device-resident batches: crop/flip correctness against hand-shifted images, seeding, batching."""

from __future__ import annotations

import pytest
import torch

from nares.data import DeviceBatches, ImageSet, crop_flip
from nares.errors import DataError


def shifted(img: torch.Tensor, dx: int, dy: int, pad: int) -> torch.Tensor:
    """Reference crop by slicing: output (i, j) = input (i + dy − pad, j + dx − pad), zero outside."""
    _, h, w = img.shape
    sy, sx = dy - pad, dx - pad
    out = torch.zeros_like(img)
    out[:, max(0, -sy):min(h, h - sy), max(0, -sx):min(w, w - sx)] = img[:, max(0, sy):min(h, h + sy), max(0, sx):min(w, w + sx)]
    return out


def random_set(n: int, seed: int = 0, size: int = 32) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)  # no zero pixels
    return ImageSet(x, torch.arange(n) % 10, "random")


def test_crop_flip_small_hand_computed_case():
    x = torch.tensor([[[[1, 2], [3, 4]]]], dtype=torch.uint8)  # one 1-channel 2×2 image
    def one(dx: int, dy: int, flip: bool) -> list:
        return crop_flip(x, torch.tensor([dx]), torch.tensor([dy]), torch.tensor([flip]), padding=1)[0, 0].tolist()
    assert one(0, 0, False) == [[0, 0], [0, 1]]
    assert one(2, 2, False) == [[4, 0], [0, 0]]
    assert one(1, 0, False) == [[0, 0], [1, 2]]
    assert one(1, 1, True) == [[2, 1], [4, 3]]
    assert one(0, 1, True) == [[1, 0], [3, 0]]


def test_crop_equals_hand_shift_with_zero_fill():
    x = random_set(4, size=8).x
    dx, dy = torch.tensor([0, 4, 8, 6]), torch.tensor([0, 4, 2, 8])
    out = crop_flip(x, dx, dy, torch.zeros(4, dtype=torch.bool), padding=4)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for b in range(4):
        assert torch.equal(out[b], shifted(x[b], int(dx[b]), int(dy[b]), 4))
    assert torch.equal(out[1], x[1])  # offset (4, 4) is the identity
    # offset (0, 0): the top 4 rows and left 4 columns are zero fill, the rest is the image shifted by 4
    assert out[0, :, :4].sum() == 0 and out[0, :, :, :4].sum() == 0
    assert torch.equal(out[0, :, 4:, 4:], x[0, :, :4, :4])


def test_flip_equals_torch_flip_of_the_crop():
    x = random_set(3, size=8).x
    dx, dy = torch.tensor([4, 1, 7]), torch.tensor([4, 3, 0])
    flips = torch.ones(3, dtype=torch.bool)
    out = crop_flip(x, dx, dy, flips, padding=4)
    plain = crop_flip(x, dx, dy, ~flips, padding=4)
    assert torch.equal(out, torch.flip(plain, dims=[3]))
    assert torch.equal(out[0], torch.flip(x[0], dims=[2]))


def test_augmented_batches_differ_per_sample_and_keep_pixels():
    imgs = random_set(64)
    same = ImageSet(imgs.x[:1].expand(64, -1, -1, -1).contiguous(), torch.zeros(64, dtype=torch.int64), "same")
    x, _y = next(iter(DeviceBatches(same, 64, shuffle=False, drop_last=True, augment=True, seed=5)))
    assert x.dtype == torch.float32 and x.shape == (64, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert len({v.numpy().tobytes() for v in x}) > 40  # 81 offsets × 2 flips: 64 copies of one image nearly all differ
    # each output is some (dx, dy, flip) view of the source image
    src = same.x[0]
    views = {}
    for dx in range(9):
        for dy in range(9):
            base = shifted(src, dx, dy, 4)
            views[(dx, dy, False)] = base
            views[(dx, dy, True)] = torch.flip(base, dims=[2])
    for v in (x * 255).round().to(torch.uint8):
        assert any(torch.equal(v, ref) for ref in views.values())


def test_same_seed_and_epoch_reproduce_other_epoch_differs():
    imgs = random_set(100)
    a = DeviceBatches(imgs, 32, shuffle=True, drop_last=True, augment=True, seed=7)
    b = DeviceBatches(imgs, 32, shuffle=True, drop_last=True, augment=True, seed=7)
    b.set_epoch(3)
    first_e3 = [(x.clone(), y.clone()) for x, y in b]
    a.set_epoch(3)
    again = list(a)
    assert len(again) == len(first_e3) == 3
    for (x1, y1), (x2, y2) in zip(first_e3, again, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    b.set_epoch(4)
    assert not torch.equal(next(iter(b))[0], first_e3[0][0])
    c = DeviceBatches(imgs, 32, shuffle=True, drop_last=True, augment=True, seed=8)
    c.set_epoch(3)
    assert not torch.equal(next(iter(c))[0], first_e3[0][0])


def test_plain_batches_cover_the_set_in_order():
    imgs = random_set(10)
    it = DeviceBatches(imgs, 4, shuffle=False, drop_last=False, augment=False)
    batches = list(it)
    assert len(it) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([x for x, _ in batches]), imgs.float01())
    assert torch.cat([y for _, y in batches]).tolist() == imgs.y.tolist()
    assert len(DeviceBatches(imgs, 4, shuffle=True, drop_last=True, augment=False)) == 2
    shuffled = next(iter(DeviceBatches(imgs, 10, shuffle=True, drop_last=False, augment=False, seed=1)))[1]
    assert sorted(shuffled.tolist()) == sorted(imgs.y.tolist()) and shuffled.tolist() != imgs.y.tolist()


def test_options_channels_last_no_flip_and_bad_args():
    imgs = random_set(8)
    x, _ = next(iter(DeviceBatches(imgs, 8, device="cpu", shuffle=False, drop_last=True, augment=True,
                                    channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    no_aug = DeviceBatches(imgs, 8, shuffle=False, drop_last=True, augment=True, crop_padding=0, flip=False)
    assert torch.equal(next(iter(no_aug))[0], imgs.float01())
    with pytest.raises(DataError, match="batch_size 0 must be at least 1"):
        DeviceBatches(imgs, 0, shuffle=False, drop_last=True, augment=False)
    with pytest.raises(DataError, match="seed -1 and epoch 0 must be non-negative"):
        DeviceBatches(imgs, 2, shuffle=False, drop_last=True, augment=False, seed=-1)
