"""The 19 CIFAR-10-C corruptions, one 32×32 RGB uint8 image at a time, at CIFAR-10-C's own severity constants.

Owns the corruption functions, their constants and the few image helpers they share (HSV conversion, the
defocus disk, the clipped zoom, the plasma fractal, an ImageMagick-equivalent motion blur, the frost
textures). Imports numpy, scipy, Pillow and OpenCV (`opencv-python-headless`) only; must not import torch,
Prefect, Ray, S3 code or any other part of `nares` except `nares.errors`.

Source of the algorithms and constants: the generator that made the published CIFAR-10-C,
hendrycks/robustness `ImageNet-C/create_c/make_cifar_c.py` (Apache-2.0), with its CIFAR parameters (not
ImageNet-C's). The reference's own behaviour is kept where it is surprising, because it is what the
published files hold:
- every result is converted with `np.uint8(float)`, i.e. truncated, not rounded;
- glass blur's "swap" of two numpy pixel views is a copy: pixel (h, w) takes the value of (h+dy, w+dx),
  with dx, dy drawn from {-1, 0} (`randint(-1, 1)` excludes 1); rows and columns 0 and 1 are never written;
- frost draws its texture from frost1..frost5 (`randint(5)`), never frost6;
- impulse noise flips each value (per channel) with probability `amount`, half to 0 and half to 1
  (scikit-image's `random_noise(mode="s&p")` since 2016);
- spatter casts its liquid layer (×255) to uint8 without clipping: values above 255 wrap modulo 256.

Where this module deviates from the reference (documented in `DEVIATIONS`):
- randomness comes from the `numpy.random.Generator` the caller passes (the reference draws from numpy's
  unseeded global state), so every image is reproducible;
- motion blur (the `motion_blur` corruption and the streaks of `snow`) is computed here, not by ImageMagick
  through Wand: the same one-sided Gaussian kernel of 2·⌈radius⌉+1 taps (`GetOptimalKernelWidth1D`,
  `GetMotionBlurKernel` of ImageMagick 6), the same integer tap offsets (ceil(i·cos a − ½), ceil(i·sin a − ½)),
  edge-replicated borders (ImageMagick's default virtual-pixel method) and ImageMagick's quantisation (the
  sum rounded to a 16-bit quantum q, read back from the 8-bit PNG as ⌊q/257⌋). Checked byte for byte against
  ImageMagick 6.9.11-60 Q16 through Wand 0.7.2; the ImageMagick that made the published files is not known,
  and one whose 8-bit output rounds instead would differ by at most 1 per value. The `imagecorruptions`
  package's Wand-free motion blur uses the same taps but keeps the float sum (no quantisation), so it differs
  from ImageMagick by up to 1 per value;
- spatter (severities 1–3) adds no spatter when its drop layer is all zero (the reference divides by zero
  there and stores NaNs cast to uint8).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from nares.errors import DataError

SIZE = 32  # CIFAR images are SIZE × SIZE × 3

# The CIFAR-10-C constants of make_cifar_c.py, severity 1..5 (index 0..4).
CONSTANTS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),                       # σ of N(0, σ) added in [0, 1]
    "shot_noise": (500, 250, 100, 75, 50),                                   # photons: Poisson(x·c)/c
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),                         # salt-and-pepper amount
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),                         # σ of x·N(0, σ)
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),   # (disk radius, alias σ)
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # (σ, max δ, iterations)
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),               # (radius, σ)
    "zoom_blur": tuple(np.arange(1, stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)),  # zoom factors
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),                              # σ
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),  # (mean, σ, zoom, threshold,
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),  # blur radius, blur σ,
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),                           # image weight)
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),    # (image weight, frost weight)
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),           # (fog weight, wibble decay)
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),                               # added to V of HSV
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),                                 # factor about the channel mean
    "elastic_transform": tuple((SIZE * a, SIZE * b, SIZE * c) for a, b, c in  # (α, σ, affine jitter) in pixels
                               ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                                (0.1, 0.03, 0.03))),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),                               # downscale factor (BOX)
    "jpeg_compression": (80, 65, 58, 50, 40),                                # JPEG quality
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),  # (mean, σ, blur σ, threshold,
                (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1),  # intensity, mud?)
                (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),        # S ← S·a + b
}

DEVIATIONS: tuple[str, ...] = (
    "seeded: every image draws from its own numpy Generator (the reference uses numpy's unseeded global state)",
    "motion blur (motion_blur, snow): ImageMagick 6 MotionBlurImage's kernel, offsets, edge pixels and Q16 "
    "rounding computed in numpy instead of calling ImageMagick through Wand",
    "spatter (severities 1-3): an all-zero drop layer adds nothing (the reference divides by zero and writes "
    "NaNs there)",
)

# sha256 of the frost textures of make_cifar_c.py (hendrycks/robustness ImageNet-C/create_c/frost*), which the
# `imagecorruptions` package ships byte-identical.
FROST_PACKAGE = "imagecorruptions"
FROST_SHA256: dict[str, str] = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
    "frost6.jpg": "1f92b2f48408748085b68dd81d816ef239f42cef3029c25d041fcb6760fb4f25",
}
FROST_USED = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # randint(5): never frost6

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


# ---- shared helpers -------------------------------------------------------------------------------------

def to_uint8(v: np.ndarray) -> np.ndarray:
    """The reference's `np.uint8(result)`: values in [0, 255] truncated toward zero (clipped first)."""
    return np.clip(v, 0, 255).astype(np.uint8)


def wrap_uint8(v: np.ndarray) -> np.ndarray:
    """`v.astype(np.uint8)` of non-negative floats as numpy does it on x86-64, made explicit: truncated, then
    taken modulo 256 (280.7 → 24). The reference casts spatter's liquid layer this way without clipping it."""
    return (np.floor(v).astype(np.int64) % 256).astype(np.uint8)


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) / 255.0


def _gaussian(x: np.ndarray, sigma: float, *, channels: bool, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's `filters.gaussian` on a float image: σ on the two spatial axes, none across channels."""
    sigmas = (sigma, sigma, 0.0) if channels else (sigma, sigma)
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """HSV (hexcone model, all in [0, 1]) of RGB floats in [0, 1]; the hue of a grey is 0.

    Where two channels share the maximum, blue's formula wins over green's and green's over red's
    (scikit-image's order).
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    grey = delta == 0
    safe = np.where(grey, 1.0, delta)
    s = np.where(grey, 0.0, delta / np.where(v == 0, 1.0, v))
    h = np.where(b == v, 4.0 + (r - g) / safe, np.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = np.where(grey, 0.0, (h / 6.0) % 1.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """RGB floats of HSV floats (the inverse of `rgb_to_hsv`)."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector_f = np.floor(h * 6.0)
    f = h * 6.0 - sector_f
    sector = sector_f.astype(np.int64) % 6
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return np.take_along_axis(table, sector[None, ..., None].repeat(3, axis=-1), axis=0)[0]


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus kernel: a pixel disk of `radius` on a 17×17 grid (radius ≤ 8), normalised, then smoothed by a
    3×3 Gaussian of σ `alias_blur` (OpenCV, reflect-101 borders)."""
    half, ksize = (8, 3) if radius <= 8 else (math.ceil(radius), 5)
    coords = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(coords, coords)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, (ksize, ksize), sigmaX=alias_blur)


def clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the central ⌈h/factor⌉ square of `img` [h,h,C] by `factor` (linear), cut back to its centre h×h."""
    h = img.shape[0]
    crop = math.ceil(h / factor)
    top = (h - crop) // 2
    zoomed = ndimage.zoom(img[top:top + crop, top:top + crop], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim:trim + h, trim:trim + h]


def plasma_fractal(rng: np.random.Generator, size: int = SIZE, wibble_decay: float = 3.0) -> np.ndarray:
    """A size × size height map in [0, 1] by the diamond-square algorithm (wrapping borders).

    The reference's amplitudes: each new point is the mean of its four neighbours plus w·U(−w, w), with w
    starting at 100 and divided by `wibble_decay` at every halving of the step.
    """
    if size & (size - 1):
        raise ValueError(f"plasma size {size} is not a power of two")
    hmap = np.zeros((size, size))
    step, wibble = size, 100.0

    def noisy_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = hmap[0::step, 0::step]
        around = corners + np.roll(corners, -1, axis=0)
        around = around + np.roll(around, -1, axis=1)
        hmap[half::step, half::step] = noisy_mean(around)
        centres, corners = hmap[half::step, half::step], hmap[0::step, 0::step]
        hmap[0::step, half::step] = noisy_mean(centres + np.roll(centres, 1, axis=0)
                                               + corners + np.roll(corners, -1, axis=1))
        hmap[half::step, 0::step] = noisy_mean(centres + np.roll(centres, 1, axis=1)
                                               + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= wibble_decay
    hmap -= hmap.min()
    return hmap / hmap.max()


def motion_blur_taps(radius: float, sigma: float, angle_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, dx, dy) of ImageMagick 6's MotionBlurImage: 2·⌈radius⌉+1 taps i = 0, 1, … of weight
    ∝ exp(−i²/2σ²) (normalised), at integer offsets dx = ⌈i·cos a − ½⌉, dy = ⌈i·sin a − ½⌉ (x right, y down)."""
    if radius <= 0:  # ImageMagick then derives a width from σ; CIFAR-10-C never asks for that
        raise ValueError(f"motion blur radius {radius} must be > 0")
    width = int(2 * math.ceil(radius) + 1)
    sigma = max(abs(sigma), 1e-12)
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i * i) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    weights /= weights.sum()
    a = math.radians(angle_deg)
    px, py = width * math.sin(a), width * math.cos(a)
    norm = math.hypot(px, py)
    dx = np.ceil(i * py / norm - 0.5).astype(np.int64)
    dy = np.ceil(i * px / norm - 0.5).astype(np.int64)
    return weights, dx, dy


def magick_motion_blur(img: np.ndarray, radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """ImageMagick 6 (Q16, non-HDRI) `MotionBlurImage` of a uint8 image [H,W] or [H,W,C], read back as 8 bits.

    out(x, y) = Σ_i w_i · in(x + dx_i, y + dy_i), coordinates clamped to the image (edge pixels); the sum of
    8-bit values v·257 is rounded to a 16-bit quantum q, and the 8-bit PNG that Wand reads back holds ⌊q / 257⌋
    (ImageMagick 6.9.11-60 Q16 through Wand 0.7.2 gives exactly these bytes for every value of 60 blurred
    CIFAR images).
    """
    if img.dtype != np.uint8:
        raise ValueError(f"motion blur expects a uint8 image, got {img.dtype}")
    weights, dx, dy = motion_blur_taps(radius, sigma, angle_deg)
    h, w = img.shape[:2]
    rows = np.clip(np.arange(h)[:, None] + dy[None, :], 0, h - 1)
    cols = np.clip(np.arange(w)[:, None] + dx[None, :], 0, w - 1)
    src = img.astype(np.float64) * 257.0
    acc = np.zeros(img.shape, dtype=np.float64)
    for k in range(len(weights)):
        acc += weights[k] * src[rows[:, k]][:, cols[:, k]]
    quantum = np.floor(np.clip(acc, 0, 65535) + 0.5).astype(np.int64)  # ClampToQuantum
    return (quantum // 257).astype(np.uint8)


@lru_cache(maxsize=1)
def frost_textures() -> tuple[np.ndarray, ...]:
    """The five frost textures the reference draws from, RGB uint8, scaled by 0.2 (OpenCV, linear).

    Read from the installed `imagecorruptions` package (never copied into this repository) and checked against
    the sha256 of the reference's files; a missing or different file is one DataError line.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(FROST_PACKAGE)
    except metadata.PackageNotFoundError:
        raise DataError(f"frost textures need the package {FROST_PACKAGE}, which is not installed: "
                        f"`uv pip install --no-deps {FROST_PACKAGE}==1.1.2`") from None
    out = []
    for name in FROST_USED:
        path = Path(str(dist.locate_file(f"{FROST_PACKAGE}/frost/{name}")))
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"frost texture {path} cannot be read ({e.strerror}); reinstall {FROST_PACKAGE}") from None
        digest = hashlib.sha256(raw).hexdigest()
        if digest != FROST_SHA256[name]:
            raise DataError(f"frost texture {path} has sha256 {digest}, expected {FROST_SHA256[name]} "
                            f"(the reference's {name}); reinstall {FROST_PACKAGE}==1.1.2")
        bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"frost texture {path} is not a readable image")
        small = cv2.resize(bgr, (0, 0), fx=0.2, fy=0.2)
        out.append(np.ascontiguousarray(small[..., ::-1]))
    return tuple(out)


# ---- the corruptions: (uint8 [32,32,3], severity 1..5, rng) -> float or uint8 image in [0, 255] --------------

def _c(name: str, severity: int):
    return CONSTANTS[name][severity - 1]


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = _c("gaussian_noise", severity)
    u = _unit(x)
    return np.clip(u + rng.normal(0.0, c, u.shape), 0, 1) * 255


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = _c("shot_noise", severity)
    return np.clip(rng.poisson(_unit(x) * c) / c, 0, 1) * 255


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount = _c("impulse_noise", severity)
    u = _unit(x)
    flipped = rng.random(u.shape) < amount
    salt = rng.random(u.shape) < 0.5
    u[flipped & salt] = 1.0
    u[flipped & ~salt] = 0.0
    return np.clip(u, 0, 1) * 255


def speckle_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = _c("speckle_noise", severity)
    u = _unit(x)
    return np.clip(u + u * rng.normal(0.0, c, u.shape), 0, 1) * 255


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(_gaussian(_unit(x), _c("gaussian_blur", severity), channels=True), 0, 1) * 255


def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma, delta, iterations = _c("glass_blur", severity)
    img = to_uint8(_gaussian(_unit(x), sigma, channels=True) * 255)
    # The reference visits h, w = 32−δ … δ+1 in descending order and copies pixel (h+dy, w+dx) into (h, w),
    # dx, dy ∈ [−δ, δ−1]. With δ = 1 (all CIFAR severities) every source is visited after its destination,
    # so one pass equals copying from the image as it was before the pass.
    if delta != 1:
        raise ValueError(f"glass blur is implemented for a maximum shift of 1 (CIFAR-10-C), not {delta}")
    span = np.arange(delta + 1, SIZE - delta + 1)
    rows, cols = np.meshgrid(span, span, indexing="ij")
    for _ in range(iterations):
        shift = rng.integers(-delta, delta, size=(2, *rows.shape))  # dx, dy
        before = img.copy()
        img[rows, cols] = before[rows + shift[1], cols + shift[0]]
    return np.clip(_gaussian(img / 255.0, sigma, channels=True), 0, 1) * 255


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias = _c("defocus_blur", severity)
    return np.clip(cv2.filter2D(_unit(x), -1, disk_kernel(radius, alias)), 0, 1) * 255


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = _c("motion_blur", severity)
    return magick_motion_blur(np.ascontiguousarray(x, dtype=np.uint8), radius, sigma, rng.uniform(-45, 45))


def zoom_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factors = _c("zoom_blur", severity)
    u = (np.asarray(x) / 255.0).astype(np.float32)
    acc = np.zeros_like(u)
    for f in factors:
        acc += clipped_zoom(u, f)
    return np.clip((u + acc) / (len(factors) + 1), 0, 1) * 255


def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    mean, sd, zoom, threshold, radius, sigma, keep = _c("snow", severity)
    u = (np.asarray(x) / 255.0).astype(np.float32)
    layer = rng.normal(mean, sd, u.shape[:2])
    layer = clipped_zoom(layer[..., None], zoom)
    layer[layer < threshold] = 0
    flakes = to_uint8(np.clip(layer[..., 0], 0, 1) * 255)
    streaks = magick_motion_blur(flakes, radius, sigma, rng.uniform(-135, -45)) / 255.0
    streaks = streaks[..., None]
    grey = cv2.cvtColor(u, cv2.COLOR_RGB2GRAY)[..., None]
    u = keep * u + (1 - keep) * np.maximum(u, grey * 1.5 + 0.5)
    return np.clip(u + streaks + np.rot90(streaks, k=2), 0, 1) * 255


def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    image_w, frost_w = _c("frost", severity)
    textures = frost_textures()
    tex = textures[int(rng.integers(len(textures)))]
    top = int(rng.integers(0, tex.shape[0] - SIZE))
    left = int(rng.integers(0, tex.shape[1] - SIZE))
    patch = tex[top:top + SIZE, left:left + SIZE].astype(np.float64)
    return np.clip(image_w * np.asarray(x, dtype=np.float64) + frost_w * patch, 0, 255)


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    weight, decay = _c("fog", severity)
    u = _unit(x)
    top = u.max()
    u += weight * plasma_fractal(rng, SIZE, decay)[:SIZE, :SIZE, None]
    return np.clip(u * top / (top + weight), 0, 1) * 255


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    hsv = rgb_to_hsv(_unit(x))
    hsv[..., 2] = np.clip(hsv[..., 2] + _c("brightness", severity), 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1) * 255


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = _c("contrast", severity)
    u = _unit(x)
    means = u.mean(axis=(0, 1), keepdims=True)
    return np.clip((u - means) * c + means, 0, 1) * 255


def elastic_transform(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    alpha, sigma, jitter = _c("elastic_transform", severity)
    u = (np.asarray(x) / 255.0).astype(np.float32)
    centre = np.float32([SIZE, SIZE]) // 2
    third = SIZE // 3
    src = np.float32([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    dst = src + rng.uniform(-jitter, jitter, size=src.shape).astype(np.float32)
    u = cv2.warpAffine(u, cv2.getAffineTransform(src, dst), (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT_101)
    dx = (_gaussian(rng.uniform(-1, 1, (SIZE, SIZE)), sigma, channels=False, mode="reflect", truncate=3) * alpha)
    dy = (_gaussian(rng.uniform(-1, 1, (SIZE, SIZE)), sigma, channels=False, mode="reflect", truncate=3) * alpha)
    dx, dy = dx.astype(np.float32)[..., None], dy.astype(np.float32)[..., None]
    rows, cols, chans = np.meshgrid(np.arange(SIZE), np.arange(SIZE), np.arange(3), indexing="ij")
    coords = np.stack([(rows + dy).ravel(), (cols + dx).ravel(), chans.ravel().astype(np.float64)])
    out = ndimage.map_coordinates(u, coords, order=1, mode="reflect").reshape(u.shape)
    return np.clip(out, 0, 1) * 255


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    small = int(SIZE * _c("pixelate", severity))
    img = Image.fromarray(np.asarray(x, dtype=np.uint8))
    img = img.resize((small, small), Image.Resampling.BOX).resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(img)


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(x, dtype=np.uint8)).save(buf, "JPEG", quality=_c("jpeg_compression", severity))
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"))


def spatter(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    mean, sd, blur, threshold, intensity, mud = _c("spatter", severity)
    u = (np.asarray(x) / 255.0).astype(np.float32)
    liquid = _gaussian(rng.normal(mean, sd, u.shape[:2]), blur, channels=False)
    liquid[liquid < threshold] = 0
    if not mud:  # water: pale turquoise drops with bright rims
        drops = wrap_uint8(liquid * 255)
        dist = cv2.distanceTransform(255 - cv2.Canny(drops, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = drops * dist
        top = m.max()
        if top <= 0:
            return np.clip(u, 0, 1) * 255
        m = (m / top * intensity)[..., None]
        colour = np.array([175, 238, 238], np.float32) / 255.0
        return np.clip(u + m * colour, 0, 1) * 255
    m = _gaussian(np.where(liquid > threshold, 1, 0).astype(np.float32), intensity, channels=False)
    m[m < 0.8] = 0
    colour = np.array([63, 42, 20], np.float32) / 255.0 * m[..., None]
    return np.clip(u * (1 - m[..., None]) + colour, 0, 1) * 255


def saturate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    a, b = _c("saturate", severity)
    hsv = rgb_to_hsv(_unit(x))
    hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1) * 255


CORRUPTION_FUNCTIONS: dict[str, Corruption] = {f.__name__: f for f in (
    gaussian_noise, shot_noise, impulse_noise, speckle_noise, defocus_blur, glass_blur, motion_blur, zoom_blur,
    gaussian_blur, snow, frost, fog, brightness, contrast, elastic_transform, pixelate, jpeg_compression, spatter,
    saturate,
)}


def corrupt(name: str, severity: int, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corruption `name` at `severity` (1..5) of one uint8 [32,32,3] image: uint8 [32,32,3], as the reference
    stores it (`np.uint8` of its float result)."""
    if name not in CORRUPTION_FUNCTIONS:
        raise DataError(f"corruption {name!r} is not one of the 19 CIFAR-10-C corruptions")
    if severity not in (1, 2, 3, 4, 5):
        raise DataError(f"severity {severity!r} is not one of 1, 2, 3, 4, 5")
    if image.dtype != np.uint8 or image.shape != (SIZE, SIZE, 3):
        raise DataError(f"image is {image.shape} {image.dtype}, expected (32, 32, 3) uint8")
    return to_uint8(CORRUPTION_FUNCTIONS[name](image, severity, rng))
