"""CIFAR-10-C generated here (`nares.data.corruption_ops`, `nares.data.make_cifar10c`), on the real offline test images.

- every corruption reproduces the reference generator (hendrycks/robustness make_cifar_c.py) byte for byte when
  it is given the reference's random draws; closed forms (brightness, contrast, saturate, pixelate, JPEG), the
  noise statistics at CIFAR-10-C's constants, blurs of a constant image, ImageMagick's motion-blur taps;
- severity and mean |x_c − x| on real images (monotone except where CIFAR-10-C's own constants are not);
- the generated folder: official layout, manifest, seeding (per cell and per image), bad input, checksums
  verified on read, the readers' fallback and `corruption_set_info`, `nares data make-cifar10c`;
- the `corruptions` evaluation of a tiny trained run on a set generated from the real test subset.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from factory.cli import main
from nares.constants import CORRUPTIONS
from nares.data import corruption_ops as ops
from nares.data.cifar10c_manifest import read_manifest
from nares.data.corruptions import (
    check_corruptions,
    corruption_set_info,
    corruptions_available,
    corruptions_folder,
    iter_corruptions,
    open_corruptions,
)
from nares.data.make_cifar10c import corrupt_images, image_rng, make_cifar10c
from nares.data.readers import read_npz_subset
from nares.errors import DataError

# sha256 (first 32 hex digits) of make_cifar_c.py's uint8 outputs for test images 0 and 1, severities 1..5 in that
# order (image 0 then 1 within a severity), numpy's global state seeded with 1000·severity + image before each
# call. Computed by running the reference's functions (with `channel_axis` for `multichannel`, np.float64 and
# np.frombuffer for the names numpy 2 removed) under numpy 2.4.6, scipy 1.17.1, opencv 5.1.0, Pillow 13.0.0,
# scikit-image 0.26 and Wand 0.7.2 with ImageMagick 6.9.11-60 Q16; impulse noise with scikit-image 0.14's
# salt-and-pepper draws (`np.random.choice` with p = [amount, 1 − amount], then [½, ½]), which later versions
# draw from a generator of their own.
REFERENCE_SHA256 = {
    "gaussian_noise": "ff853f5e732a42e585bb9bca493520b0",
    "shot_noise": "62196ac47ad74cc2a56e63c90a7e616e",
    "impulse_noise": "9b8899e29085857c7245d86776a9e8e4",
    "speckle_noise": "d590df9cd62b9544301c227a6cfe2c78",
    "defocus_blur": "5ee6d05a0d7c995e917cfe26750fc958",
    "glass_blur": "40ca64d1d782c450e80e1445dcf70170",
    "motion_blur": "a3a9890b46c4e26e6c516a0832c68a6a",
    "zoom_blur": "79dd9b8e5a9c6d75fff4c4769bd3ecaa",
    "gaussian_blur": "51f4083b462c148b84a452ce975ecdef",
    "snow": "1e35bbd74c5ef4a94929ebaad8e64bf2",
    "frost": "3e10127879073bacdadf04d87dd306e2",
    "fog": "077e62638972dc8b589951c33d053017",
    "brightness": "bd75826a647419ebb9beb6e7d9d0d89d",
    "contrast": "c298cda7837151ebd11b27ab22faaafb",
    "elastic_transform": "69809fb678d411860785681419475bf3",
    "pixelate": "2dabecb5e56531ff814050b9096b3e25",
    "jpeg_compression": "567e2dfb869655e1cde0a5889ad16632",
    "spatter": "31ed4b038e2afaee3d676fd31e923dc3",
    "saturate": "2769f9625aa038d589a49c5e1901499c",
}


class ReferenceDraws:
    """The random draws make_cifar_c.py makes from numpy's global state, served in the order our functions ask.

    Same calls, same order, except glass blur: the reference draws (dx, dy) pixel by pixel while visiting
    h, w = 31 … 2 (descending); ours asks for the whole (2, 30, 30) block at once.
    """

    def __init__(self, seed: int) -> None:
        self.rs = np.random.RandomState(seed)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self.rs.normal(loc, scale, size)

    def poisson(self, lam):
        return self.rs.poisson(lam)

    def random(self, size=None):
        return self.rs.random_sample(size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self.rs.uniform(low, high, size)

    def integers(self, low, high=None, size=None):
        if size == (2, 30, 30):
            out = np.empty(size, np.int64)
            for h in range(31, 1, -1):
                for w in range(31, 1, -1):
                    out[:, h - 2, w - 2] = self.rs.randint(low, high, size=(2,))
            return out
        return self.rs.randint(low) if high is None else self.rs.randint(low, high, size)


@pytest.fixture(scope="module")
def real_x(subset_npz: Path) -> np.ndarray:
    """The first 64 real CIFAR-10 test images (uint8 HWC)."""
    return read_npz_subset(subset_npz)["test"][0][:64]


def one_line(call, *needles: str) -> str:
    with pytest.raises(DataError) as e:
        call()
    msg = str(e.value)
    assert msg and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# ---- each corruption against the reference and against closed forms ------------------------------------

@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_reproduces_the_reference_generator_byte_for_byte(name, real_x):
    h = hashlib.sha256()
    for s in range(1, 6):
        for i in range(2):
            out = ops.corrupt(name, s, real_x[i], ReferenceDraws(1000 * s + i))
            assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
            h.update(out.tobytes())
    assert h.hexdigest()[:32] == REFERENCE_SHA256[name]


def _img(*pixels: tuple[int, int, int]) -> np.ndarray:
    """A 32×32 image tiled with `pixels` (row-major, repeating)."""
    flat = np.array([pixels[i % len(pixels)] for i in range(32 * 32)], np.uint8)
    return flat.reshape(32, 32, 3)


def truncated(exact: float) -> set[int]:
    """The values the reference's `np.uint8(x)` can give for an x that equals `exact` in real arithmetic: ⌊exact⌋,
    and also exact − 1 when exact is an integer (the float computed may land just below it)."""
    if abs(exact - round(exact)) < 1e-9:
        return {round(exact), round(exact) - 1}
    return {math.floor(exact)}


def assert_truncated(out: np.ndarray, exact: list[float]) -> None:
    assert len(out) == len(exact) and all(int(o) in truncated(e) for o, e in zip(out, exact, strict=True)), (out, exact)


def test_brightness_adds_to_v_of_hsv():
    # a grey (v, v, v) becomes 255·min(v/255 + c, 1); a colour is scaled by min(V + c, 1)/V (hue and saturation
    # kept); truncated to uint8
    x = _img((100, 100, 100), (200, 100, 50), (250, 250, 250))
    for s, c in enumerate((0.05, 0.1, 0.15, 0.2, 0.3), start=1):
        out = ops.corrupt("brightness", s, x, None)
        assert_truncated(out[0, 0], [100 + 255 * c] * 3)
        assert out[0, 2].tolist() == [255] * 3  # V clipped at 1
        scale = min(200 + 255 * c, 255) / 200
        assert_truncated(out[0, 1], [200 * scale, 100 * scale, 50 * scale])
    assert [int(ops.corrupt("brightness", s, x, None)[0, 0, 0]) for s in (1, 2, 3, 5)] == [112, 125, 138, 176]


def test_contrast_scales_about_each_channel_mean():
    # channel means 100.5 (R: 0 and 201), 50 (G: 0 and 100), 255 (B); out = ⌊(x − m)·c + m⌋
    x = _img((0, 0, 255), (201, 100, 255))
    for s, c in enumerate((0.75, 0.5, 0.4, 0.3, 0.15), start=1):
        out = ops.corrupt("contrast", s, x, None)
        assert out[0, 0].tolist() == [int(np.floor(100.5 - 100.5 * c)), int(np.floor(50 - 50 * c)), 255]
        assert out[0, 1].tolist() == [int(np.floor(100.5 + 100.5 * c)), int(np.floor(50 + 50 * c)), 255]
    assert ops.corrupt("contrast", 1, x, None)[0, :2].tolist() == [[25, 12, 255], [175, 87, 255]]


def test_saturate_scales_s_of_hsv():
    x = _img((205, 205, 205), (200, 100, 50))
    # severities 1-3 (S·a): a grey stays grey; severities 4-5 (S·a + b) tint it with hue 0: (v, v(1−b), v(1−b))
    for s in (1, 2, 3):
        assert ops.corrupt("saturate", s, x, None)[0, 0].tolist() == [205] * 3
    assert ops.corrupt("saturate", 4, x, None)[0, 0].tolist() == [205, 184, 184]  # 205·0.9 = 184.5
    assert_truncated(ops.corrupt("saturate", 5, x, None)[0, 0], [205, 164, 164])  # 205·0.8
    # (200, 100, 50): V = 200, S = 0.75, hue 1/18 (sector 0, f = 1/3): (V, V(1 − (2/3)·S'), V(1 − S'))
    # severity 3: S' = min(1.125, 1) = 1 → (200, 66.7, 0); severity 2: S' = 0.075 → (200, 190, 185)
    assert ops.corrupt("saturate", 3, x, None)[0, 1].tolist() == [200, 66, 0]
    assert_truncated(ops.corrupt("saturate", 2, x, None)[0, 1], [200, 190, 185])
    assert_truncated(ops.corrupt("saturate", 1, x, None)[0, 1], [200, 200 * (1 - 2 / 3 * 0.225), 200 * (1 - 0.225)])


def _box_resize(a: np.ndarray, n: int) -> np.ndarray:
    """Pillow's BOX resampling of a square float image to n×n: output pixel j is the mean of the input pixels whose
    centres i + ½ lie in (c − h, c + h], c = (j + ½)·m/n, h = max(m/n, 1)/2 (one pixel when enlarging)."""
    m = a.shape[0]
    w = np.zeros((n, m))
    for j in range(n):
        centre, half = (j + 0.5) * m / n, max(m / n, 1) / 2
        for i in range(m):
            w[j, i] = float(centre - half < i + 0.5 <= centre + half)
    w /= w.sum(1, keepdims=True)
    return np.einsum("ji,ikc,lk->jlc", w, a, w)


def test_pixelate_is_two_box_resamplings(real_x):
    for s, c in enumerate((0.95, 0.9, 0.85, 0.75, 0.65), start=1):
        out = ops.corrupt("pixelate", s, real_x[0], None).astype(float)
        expected = _box_resize(_box_resize(real_x[0].astype(float), int(32 * c)), 32)
        assert np.abs(out - expected).max() <= 1.0  # Pillow resamples uint8 in fixed point and rounds
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert (ops.corrupt("pixelate", 5, flat, None) == 77).all()


def test_jpeg_uses_the_cifar_qualities(real_x):
    def roundtrip(quality: int) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(real_x[3]).save(buf, "JPEG", quality=quality)
        return np.asarray(Image.open(buf).convert("RGB"))

    for s, q in enumerate((80, 65, 58, 50, 40), start=1):
        out = ops.corrupt("jpeg_compression", s, real_x[3], None)
        assert np.array_equal(out, roundtrip(q)) and not np.array_equal(out, roundtrip(q + 1))
    flat = np.full((32, 32, 3), 128, np.uint8)  # one DC coefficient per block: exact at any quality
    assert all((ops.corrupt("jpeg_compression", s, flat, None) == 128).all() for s in range(1, 6))


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_noise_statistics_at_the_cifar_constants(severity):
    """On a grey of value 128 (u = 128/255), over 20 images (61,440 values) drawn as the generator draws them."""
    u = 128 / 255
    x = np.full((32, 32, 3), 128, np.uint8)

    def noise(name: str) -> np.ndarray:
        out = np.stack([ops.corrupt(name, severity, x, image_rng(0, name, severity, i)) for i in range(20)])
        return out.astype(np.float64) / 255

    # truncation to uint8 lowers the mean by half a level; its variance (1/255)²/12 is negligible here
    g = noise("gaussian_noise")
    sigma = ops.CONSTANTS["gaussian_noise"][severity - 1]
    assert abs(g.std() - sigma) < 0.02 * sigma and abs(g.mean() - (u - 0.5 / 255)) < 4 * sigma / np.sqrt(g.size)
    sp = noise("speckle_noise")
    sigma = ops.CONSTANTS["speckle_noise"][severity - 1]
    assert abs(sp.std() - u * sigma) < 0.02 * u * sigma
    sh = noise("shot_noise")
    c = ops.CONSTANTS["shot_noise"][severity - 1]
    assert abs(sh.std() - np.sqrt(u / c)) < 0.02 * np.sqrt(u / c) and abs(sh.mean() - u) < 0.5 / 255 + 4 * np.sqrt(u / c / sh.size)
    imp = noise("impulse_noise")
    amount, n = ops.CONSTANTS["impulse_noise"][severity - 1], imp.size
    assert set(np.unique(imp * 255).round().astype(int)) == {0, 128, 255}
    flipped = (imp != u).mean()
    assert abs(flipped - amount) < 4 * np.sqrt(amount * (1 - amount) / n)
    assert abs((imp == 1).sum() / (imp != u).sum() - 0.5) < 4 * np.sqrt(0.25 / (amount * n))


@pytest.mark.parametrize("name", ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"])
def test_blurs_keep_a_constant_image_constant(name):
    """One value everywhere: v itself, or v − 1 where the reference's truncation meets a sum of weights just below 1
    (glass, zoom and Gaussian blur; e.g. v = 11 → 10). Defocus and motion blur give v exactly."""
    for v in (0, 11, 29, 128, 200, 255):
        for s in range(1, 6):
            out = ops.corrupt(name, s, np.full((32, 32, 3), v, np.uint8), image_rng(0, name, s, v))
            values = np.unique(out).tolist()
            assert len(values) == 1 and values[0] in (v, v - 1), (v, s, values)
            if name in ("defocus_blur", "motion_blur"):
                assert values == [v]


def test_motion_blur_taps_are_imagemagicks():
    # radius 6, σ 1, angle 0: 13 taps to the right (dx = 0..12), weights ∝ exp(−i²/2); an 8-bit impulse of 255
    # becomes ⌊round(257·255·w_i)/257⌋ left of it: 145, 88, 19, 1 (ImageMagick 6.9.11 through Wand gives these)
    w, dx, dy = ops.motion_blur_taps(6, 1, 0)
    assert len(w) == 13 and dx.tolist() == list(range(13)) and dy.tolist() == [0] * 13
    e = np.exp(-np.arange(13) ** 2 / 2)
    np.testing.assert_allclose(w, e / e.sum())
    img = np.zeros((32, 32), np.uint8)
    img[16, 16] = 255
    out = ops.magick_motion_blur(img, 6, 1, 0)
    assert out[16, 11:18].tolist() == [0, 0, 1, 19, 88, 145, 0] and out.sum() == 145 + 88 + 19 + 1
    w, dx, dy = ops.motion_blur_taps(9, 2.5, 90)  # straight down: 19 taps
    assert len(w) == 19 and dx.tolist() == [0] * 19 and dy.tolist() == list(range(19))
    _, dx, dy = ops.motion_blur_taps(8, 2, -45)  # ⌈i·cos a − ½⌉, ⌈i·sin a − ½⌉
    assert dx.tolist()[:6] == [0, 1, 1, 2, 3, 4] and dy.tolist()[:6] == [0, -1, -1, -2, -3, -4]
    edge = np.zeros((32, 32), np.uint8)
    edge[:, 31] = 200  # the last column repeats beyond the border
    assert ops.magick_motion_blur(edge, 6, 1, 0)[:, 31].tolist() == [200] * 32


def test_frost_textures_come_from_the_installed_package():
    textures = ops.frost_textures()
    assert [t.shape for t in textures] == [(120, 180, 3), (63, 112, 3), (63, 112, 3), (70, 105, 3), (99, 132, 3)]
    assert all(t.dtype == np.uint8 for t in textures) and "frost6.jpg" not in ops.FROST_USED


def test_a_missing_or_different_frost_texture_is_one_line(monkeypatch, tmp_path):
    import importlib.metadata

    ops.frost_textures.cache_clear()
    try:
        with monkeypatch.context() as m:
            m.setitem(ops.FROST_SHA256, "frost3.png", "0" * 64)
            one_line(ops.frost_textures, "frost3.png has sha256 2d0d50b4", f"expected {'0' * 64}", "reinstall")
        ops.frost_textures.cache_clear()

        def absent(name):
            raise importlib.metadata.PackageNotFoundError(name)

        with monkeypatch.context() as m:
            m.setattr(importlib.metadata, "distribution", absent)
            one_line(ops.frost_textures, "frost textures need the package imagecorruptions, which is not installed")
            out = tmp_path / "c"
            one_line(lambda: make_cifar10c(out, limit=1, corruptions=["frost"]), "imagecorruptions")
            assert not out.exists()
    finally:
        ops.frost_textures.cache_clear()


def test_bad_arguments_are_one_line():
    x = np.zeros((32, 32, 3), np.uint8)
    one_line(lambda: ops.corrupt("rain", 1, x, None), "corruption 'rain' is not one of the 19")
    one_line(lambda: ops.corrupt("fog", 6, x, None), "severity 6 is not one of 1, 2, 3, 4, 5")
    one_line(lambda: ops.corrupt("fog", 1, x[:16], None), "image is (16, 32, 3) uint8, expected (32, 32, 3) uint8")


MONOTONE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "zoom_blur",
            "gaussian_blur", "snow", "fog", "brightness", "contrast", "pixelate", "jpeg_compression")


def test_severity_and_mean_change_on_real_images(real_x):
    """mean |x_c − x| over 32 real test images grows with severity for 13 corruptions. For the other 6 CIFAR-10-C's
    constants are not monotone in that measure (the reference gives the same values, see the byte-for-byte
    test); what each one's constants imply is checked instead."""
    x = real_x[:32]
    d = {name: [float(np.abs(corrupt_images(x, name, s, 0).astype(float) - x).mean()) for s in range(1, 6)]
         for name in CORRUPTIONS}
    for name in MONOTONE:
        assert all(b > a for a, b in itertools.pairwise(d[name])), (name, d[name])
    e = d["elastic_transform"]  # the affine jitter shrinks from 0.08·32 to 0.03·32 pixels
    assert all(b < a for a, b in itertools.pairwise(e)), e
    s = d["saturate"]  # S·0.3, S·0.1, S·1.5, S·2 + 0.1, S·2.5 + 0.2
    assert s[2] < s[0] < s[1] < s[3] < s[4], s
    g = d["glass_blur"]  # one shuffle pass at severities 1-3, two at 4-5
    assert max(g[:3]) < min(g[3:]), g
    f = d["frost"]  # image weight 1, 1, 0.9, 0.85, 0.75 against frost 0.2, 0.3, 0.4, 0.4, 0.45
    assert f[0] < f[1] < f[2] and f[3] < f[2], f
    sp = d["spatter"]  # water drops at 1-3, mud at 4-5
    assert sp[0] < sp[1] < sp[2] and sp[3] < sp[4] < sp[2], sp
    m = d["motion_blur"]  # (radius, σ) = (6,1), (6,1.5), (6,2), (8,2), (9,2.5)
    assert m[0] < m[1] < m[2] < m[4] and m[3] < m[4], m


# ---- the generated folder -------------------------------------------------------------------------------

@pytest.fixture
def env(tmp_path, data_dir, monkeypatch) -> tuple[Path, Path]:
    """(data root without CIFAR-10-C, $NARES_HOME), both private to the test."""
    root, home = tmp_path / "data", tmp_path / "home"
    root.mkdir()
    (root / "cifar10").symlink_to(data_dir / "cifar10")
    monkeypatch.setenv("NARES_DATA_DIR", str(root))
    monkeypatch.setenv("NARES_HOME", str(home))
    return root, home


def test_layout_labels_and_manifest(env, real_x, subset_npz):
    root, _ = env
    out = root.parent / "c10c"
    names = ("fog", "brightness")
    m = make_cifar10c(out, limit=6, seed=3, corruptions=names)
    assert sorted(p.name for p in out.iterdir()) == ["brightness.npy", "fog.npy", "labels.npy", "manifest.json"]
    y = np.load(out / "labels.npy")
    labels = read_npz_subset(subset_npz)["test"][1]
    assert y.dtype == np.uint8 and y.tolist() == labels[:6].tolist() * 5
    for name in names:
        x = np.load(out / f"{name}.npy")
        assert x.dtype == np.uint8 and x.shape == (30, 32, 32, 3)
        for s in range(1, 6):
            assert np.array_equal(x[6 * (s - 1):6 * s], corrupt_images(real_x[:6], name, s, 3))
    assert m == {**read_manifest(out), "folder": str(out), "seconds": m["seconds"]}
    assert m["seed"] == 3 and m["per_severity"] == 6 and m["corruptions"] == ["fog", "brightness"]
    assert m["source"]["source"] == "subset" and m["source"]["images"] == 6 and m["source"]["first_index"] == 0
    assert m["source"]["path"] == str(root / "cifar10" / "cifar10_prefix_subset.npz")
    for f, entry in m["files"].items():
        assert entry == {"sha256": hashlib.sha256((out / f).read_bytes()).hexdigest(), "bytes": (out / f).stat().st_size}
    text = "".join(f"{f} {m['files'][f]['sha256']}\n" for f in sorted(m["files"]))
    assert m["set_id"] == hashlib.sha256(text.encode()).hexdigest()
    assert m["generator_version"] == 1 and "make_cifar_c.py" in m["reference"] and len(m["deviations"]) == 3
    assert set(m["libraries"]) == {"numpy", "scipy", "opencv", "pillow", "imagecorruptions"}
    assert not [p for p in out.parent.iterdir() if ".staging-" in p.name or ".old-" in p.name]


def test_each_cell_depends_only_on_seed_and_image(env):
    root, _ = env
    a = make_cifar10c(root.parent / "a", limit=4, seed=0, corruptions=["fog"])
    make_cifar10c(root.parent / "b", limit=7, seed=0, corruptions=["snow", "fog", "contrast"])
    again = make_cifar10c(root.parent / "c", limit=4, seed=0, corruptions=["fog"])
    other = make_cifar10c(root.parent / "d", limit=4, seed=1, corruptions=["fog"])
    fa, fb = np.load(root.parent / "a" / "fog.npy"), np.load(root.parent / "b" / "fog.npy")
    for s in range(5):  # the first 4 rows of every severity block of the larger set
        assert np.array_equal(fa[4 * s:4 * s + 4], fb[7 * s:7 * s + 4])
    assert again["set_id"] == a["set_id"] and other["set_id"] != a["set_id"]
    assert not np.array_equal(np.load(root.parent / "d" / "fog.npy"), fa)


def test_bad_arguments_fail_before_any_work(env, tmp_path):
    out = tmp_path / "never"
    one_line(lambda: make_cifar10c(out, seed=-1), "seed -1 is not an integer >= 0")
    one_line(lambda: make_cifar10c(out, corruptions=["rain"]), "corruption 'rain' is not one of the 19")
    one_line(lambda: make_cifar10c(out, corruptions=[]), "no corruption named")
    one_line(lambda: make_cifar10c(out, corruptions=["fog", "fog"]), "corruption 'fog' is named twice")
    one_line(lambda: make_cifar10c(out, limit=0), "limit 0 is not an integer >= 1")
    one_line(lambda: make_cifar10c(out, limit=1018, corruptions=["fog"]), "limit 1018 is outside 1..1017")
    one_line(lambda: make_cifar10c(out, source="imagenet"), "source 'imagenet' is not one of subset, cifar10")
    one_line(lambda: make_cifar10c(out, source="cifar10", corruptions=["fog"]), "cifar-10-python.tar.gz does not exist")
    assert not out.exists()
    official = tmp_path / "official"
    official.mkdir()
    np.save(official / "fog.npy", np.zeros((5, 32, 32, 3), np.uint8))
    one_line(lambda: make_cifar10c(official, limit=2, corruptions=["fog"]), str(official),
             "holds files but no generated set's manifest.json")
    assert [p.name for p in official.iterdir()] == ["fog.npy"]


def test_a_changed_file_is_refused_in_one_line(env, capsys):
    _, home = env
    make_cifar10c(None, limit=3, seed=0)  # all 19 into $NARES_HOME/data/cifar10-c
    folder = home / "data" / "cifar10-c"
    check_corruptions()
    f = folder / "fog.npy"
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0x01  # one pixel bit: header, size and labels stay valid
    f.write_bytes(bytes(raw))
    msg = one_line(check_corruptions, str(f), "has sha256", "but", "manifest.json lists", "make-cifar10c")
    one_line(lambda: next(iter_corruptions(names=["fog"])), str(f))
    assert main(["data", "info"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"nares: error: {msg}"]
    row = next(line for line in captured.out.splitlines() if line.startswith("cifar10-c-generated"))
    assert row.split()[1] == "corrupt"
    (folder / "manifest.json").write_text("{not json")
    one_line(check_corruptions, "manifest.json is not a readable manifest")


def test_readers_fall_back_to_the_generated_set(env, real_x):
    root, home = env
    assert not corruptions_available() and corruption_set_info()["source"] == "absent"
    m = make_cifar10c(limit=4, seed=5)
    generated = home / "data" / "cifar10-c"
    assert m["folder"] == str(generated) and corruptions_folder() == generated and corruptions_available()
    info = corruption_set_info(verify=True)
    assert info["source"] == "generated" and info["set_id"] == m["set_id"] and info["seed"] == 5
    assert info["per_severity"] == 4 and info["source_images"]["images"] == 4 and info["corruptions"] == list(CORRUPTIONS)
    cells = {(n, s): imgs for n, s, imgs in iter_corruptions(names=["snow"], severities=(2,))}
    snow = corrupt_images(real_x[:4], "snow", 2, 5)
    assert np.array_equal(cells["snow", 2].x.permute(0, 2, 3, 1).numpy(), snow)
    # an explicit data root is read alone
    assert not corruptions_available(root) and corruption_set_info(root)["source"] == "absent"
    # the data root's complete official set wins over the generated one
    from tests.test_data_readers import write_cifar10c

    write_cifar10c(root / "cifar10-c", per=3)
    assert corruptions_folder() == root / "cifar10-c"
    assert corruption_set_info() == {"source": "official", "folder": str(root / "cifar10-c"), "per_severity": 3,
                                     "reference": corruption_set_info()["reference"]}
    assert len(open_corruptions(names=["fog"])["fog"][1]) == 15


def test_more_corruptions_join_a_set_of_the_same_seed_and_images(env, tmp_path):
    out = tmp_path / "set"
    first = make_cifar10c(out, limit=3, seed=2, corruptions=["fog", "contrast"])
    fog = (out / "fog.npy").read_bytes()
    second = make_cifar10c(out, limit=3, seed=2, corruptions=["snow"])
    assert second["corruptions"] == ["snow", "fog", "contrast"]
    assert (out / "fog.npy").read_bytes() == fog and second["files"]["fog.npy"] == first["files"]["fog.npy"]
    one_line(lambda: make_cifar10c(out, limit=3, seed=9, corruptions=["frost"]), "holds a generated set with seed 2, not 9")
    one_line(lambda: make_cifar10c(out, limit=4, seed=2, corruptions=["frost"]), "per_severity 3, not 4")
    assert read_manifest(out)["corruptions"] == ["snow", "fog", "contrast"]


def test_cli_make_cifar10c(env, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "make-cifar10c", "--out", str(out), "--limit", "2", "--seed", "4",
                 "--corruptions", "contrast", "pixelate", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    manifest = json.loads((out / "manifest.json").read_text())
    assert lines[0] == f"cifar10-c (generated): 2 corruptions x 5 severities x 2 images of {manifest['source']['dataset']} in {out}"
    assert lines[1].startswith(f"set_id {manifest['set_id']}, seed 4, generator version 1, ")
    assert main(["data", "make-cifar10c", "--out", str(out), "--corruptions", "rain"]) == 2
    assert capsys.readouterr().err.startswith("nares: error: corruption 'rain' is not one of the 19")
    assert main(["data", "make-cifar10c", "--out", str(tmp_path / "x"), "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == "nares: error: limit 0 is not an integer >= 1"


# ---- the corruptions evaluation on a generated set ---------------------------------------------------------

@pytest.mark.slow
def test_corruption_evaluation_on_a_set_generated_from_the_real_test_subset(env, tmp_path_factory, data_dir):
    """A tiny trained run; CIFAR-10-C generated from the first 64 real test images; `evaluate_run` finds it
    through the readers' fallback and its 19 × 5 cells equal a direct forward pass on the generated arrays."""
    from nares.data import load_splits
    from nares.evaluate import evaluate_run
    from nares.evaluate.runner import load_model
    from nares.train import train_arch
    from nares.train.checkpoints import checkpoint_path
    from tests.test_train_resume import ARCH, micro_cfg

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = micro_cfg()
        n = 64
        cfg["data"]["corruption_limit"] = n
        out = tmp_path_factory.mktemp("c10c-eval")
        splits = load_splits(cfg["data"], root=data_dir, seed=0)
        train_arch(ARCH, cfg, out, device="cpu", splits=splits, progress=False)
        m = make_cifar10c(limit=n, seed=0)  # into $NARES_HOME/data/cifar10-c
        res = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=["corruptions"])
        assert res["computed"] == ["corruptions"] and res["skipped"] == {}
        cell = res["cells"]["corruptions"]
        assert list(cell) == list(CORRUPTIONS) and all(list(v) == ["1", "2", "3", "4", "5"] for v in cell.values())
        model = load_model(checkpoint_path(out, "best"), torch.device("cpu"), channels_last=False)
        folder = Path(m["folder"])
        y = torch.from_numpy(np.load(folder / "labels.npy")[:n].astype(np.int64))
        accs = []
        for name in CORRUPTIONS:
            images = np.load(folder / f"{name}.npy")
            for s in range(1, 6):
                x = torch.from_numpy(images[n * (s - 1):n * s]).permute(0, 3, 1, 2).float().div(255)
                with torch.no_grad():
                    logits = model(x)
                correct = int((logits.argmax(1) == y).sum())
                assert round(cell[name][str(s)]["acc"] * n) == correct, (name, s)
                loss = torch.nn.functional.cross_entropy(logits, y).item()
                assert cell[name][str(s)]["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5)
                accs.append(correct / n)
        assert len(accs) == 95 and len(set(accs)) > 1  # the corruptions really differ
        assert corruption_set_info()["set_id"] == m["set_id"]
    finally:
        torch.set_num_threads(before)


def test_the_set_read_is_part_of_the_hash_of_the_cells_that_read_it(env):
    """A corruption cell computed on a generated set does not count for the official files or another generated
    set (its evaluation hash names the set); cells that read no CIFAR-10-C keep their hash."""
    from nares.config import load_preset
    from nares.data.corruptions import corruption_set_info
    from nares.train.runtime import evaluation_hash

    cfg = load_preset("tiny")
    readers, others = ("corruptions", "corruptions_cm"), ("pgd", "complexity", "jacobian")

    def hashes():
        return {m: evaluation_hash(cfg, m) for m in (*readers, *others)}

    absent = hashes()
    make_cifar10c(None, limit=2, seed=0)
    first = hashes()
    set_id = corruption_set_info()["set_id"]
    shutil.rmtree(Path(corruption_set_info()["folder"]))
    make_cifar10c(None, limit=2, seed=1)
    second = hashes()
    assert corruption_set_info()["set_id"] != set_id
    for m in readers:
        assert len({absent[m], first[m], second[m]}) == 3, m
    for m in others:
        assert absent[m] == first[m] == second[m], m


def test_a_release_card_names_the_generated_set(env):
    """The card of a release holding a corruption evaluation says which CIFAR-10-C its numbers come from."""
    from nares.release import _corruption_line, corruption_provenance

    assert corruption_provenance({"pgd": [1]}) is None  # no evaluation reads CIFAR-10-C: nothing to say
    assert corruption_provenance({"corruptions": [1]})["source"] == "absent"
    made = make_cifar10c(None, limit=2, seed=7)
    info = corruption_provenance({"corruptions_cm": [1]})
    assert info["source"] == "generated" and info["set_id"] == made["set_id"] and info["seed"] == 7
    line = _corruption_line(info)
    assert line.startswith("- Corruption set: GENERATED here, not the official files: nares.data.make_cifar10c")
    assert f"set_id `{made['set_id']}`" in line and "from 2 images of cifar10-subset/test" in line
