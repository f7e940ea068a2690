"""Deterministic photo-like test images, cached as ``.npy``; the user's own photos.

A test image is a real photo that ships inside scikit-image or scikit-learn
(no downloads), upscaled with bicubic interpolation to the target size and given
mild Gaussian sensor noise.  It is written band by band straight into a
``.npy`` file, so a 96 MP image never needs more than a few bands in memory.
Without scikit-learn and scikit-image, ``kmeans_fast.sample.sample_image`` (or,
failing that, a small procedural picture) is the source instead.

The number of distinct colours sets the cost of the histogram path, so it is
measured for every image and printed with the results.  It depends on the
source photo far more than on the noise (see :data:`PHOTO_SOURCES`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

# Bump when the generator changes, so stale cache files are not reused.
GENERATOR_VERSION = 1
NOISE_SIGMA = 1.5          # sensor noise, in 8-bit levels
BAND_ROWS = 512            # rows generated (and counted) at a time

# Sizes in megapixels -> (width, height); 3:2 like most cameras.
SIZES = {
    0.05: (274, 183),
    1: (1224, 816),
    4: (2448, 1632),
    24: (6000, 4000),
    96: (12000, 8000),
}

# Real photos bundled with scikit-image / scikit-learn (name, loader): the first
# one that loads is upscaled.  Distinct colours of each at 24 MP (bicubic, noise
# sigma 1.5): coffee 0.66 M (3:2, like a camera, and in the 0.5-1 M range of real
# 24 MP photos), china 1.78 M, flower 1.15 M, astronaut 1.23 M.
PHOTO_SOURCES = (
    ("scikit-image coffee()", lambda: _skimage_photo("coffee")),
    ("scikit-learn china.jpg", lambda: _sklearn_photo("china.jpg")),
    ("scikit-learn flower.jpg", lambda: _sklearn_photo("flower.jpg")),
    ("scikit-image astronaut()", lambda: _skimage_photo("astronaut")),
)
SOURCES = ("auto", "photo", "sample")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass
class BenchImage:
    """One benchmark image, stored as an (H, W, 3) uint8 RGB ``.npy`` file."""

    name: str
    path: str
    width: int
    height: int
    source: str
    n_distinct: int

    @property
    def megapixels(self):
        return self.width * self.height / 1e6

    @property
    def nbytes(self):
        return self.width * self.height * 3

    def load(self):
        return np.load(self.path)

    def to_dict(self):
        return dict(asdict(self), megapixels=self.megapixels, nbytes=self.nbytes)


# --------------------------------------------------------------------------
# sources (all small: a few hundred pixels a side)
# --------------------------------------------------------------------------
def _sklearn_photo(name):
    from sklearn.datasets import load_sample_image
    return load_sample_image(name)


def _skimage_photo(name):
    import skimage.data
    return getattr(skimage.data, name)()


def _procedural(height, width):
    """Smooth random blobs of colour: a last resort when no photo is importable."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.zeros((height, width, 3))
    for _ in range(24):
        cy, cx, r = rng.random(3) * [1, 1.5, 0.3] + [0, 0, 0.05]
        weight = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
        img += weight[:, :, None] * rng.integers(0, 256, 3)
    img = 255 * img / img.max()
    return img.astype(np.uint8)


def source_photo():
    """The first bundled photo that loads, as (name, (h, w, 3) uint8 RGB), or None."""
    for name, load in PHOTO_SOURCES:
        try:
            photo = np.ascontiguousarray(load()[:, :, :3], dtype=np.uint8)
        except Exception:  # package missing, data file missing, pooch wants a download
            continue
        return name, photo
    return None


def _package_sampler():
    try:
        from kmeans_fast.sample import sample_image
    except ImportError:
        return None
    return sample_image


# --------------------------------------------------------------------------
# generation and caching
# --------------------------------------------------------------------------
def count_distinct(image, band_rows=BAND_ROWS):
    """Number of distinct RGB colours of an (H, W, 3) uint8 image (2**24-bit map)."""
    seen = np.zeros(1 << 24, dtype=bool)
    for y0 in range(0, image.shape[0], band_rows):
        band = image[y0:y0 + band_rows].reshape(-1, 3)
        keys = band[:, 0].astype(np.uint32) << 16
        keys |= band[:, 1].astype(np.uint32) << 8
        keys |= band[:, 2]
        seen[keys] = True
    return int(np.count_nonzero(seen))


def _upscale_band(photo, width, height, y0, y1):
    """Rows y0:y1 of ``cv2.resize(photo, (width, height), INTER_CUBIC)``."""
    import cv2
    sx = photo.shape[1] / width
    sy = photo.shape[0] / height
    # destination -> source, pixel centres aligned as cv2.resize does
    m = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]])
    return cv2.warpAffine(photo, m, (width, y1 - y0),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _write_generated(path, photo, width, height, seed, sigma):
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                    shape=(height, width, 3))
    for y0 in range(0, height, BAND_ROWS):
        y1 = min(height, y0 + BAND_ROWS)
        band = _upscale_band(photo, width, height, y0, y1).astype(np.float32)
        rng = np.random.default_rng([seed, y0])
        band += rng.standard_normal(band.shape, dtype=np.float32) * np.float32(sigma)
        np.rint(band, out=band)
        np.clip(band, 0, 255, out=band)
        out[y0:y1] = band.astype(np.uint8)
    out.flush()
    del out


def _write_sample(path, sampler, width, height, seed):
    np.save(path, sampler(height, width, seed=seed))


def _cached(work, stem, make, describe):
    """Load ``stem``.npy from ``work`` or build it with ``make(path)``; return BenchImage."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{stem}.npy"
    meta_path = work / f"{stem}.json"
    if path.exists() and meta_path.exists():
        return BenchImage(**json.loads(meta_path.read_text()))
    tmp = work / f"{stem}.tmp.npy"
    make(tmp)
    image = np.load(tmp, mmap_mode="r")
    meta = BenchImage(name=describe["name"], path=str(path), width=image.shape[1],
                     height=image.shape[0], source=describe["source"],
                     n_distinct=count_distinct(image))
    del image
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(asdict(meta), indent=1))
    return meta


def _slug(text):
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def generated_image(megapixels, work, *, seed=0, sigma=NOISE_SIGMA, source="auto"):
    """The generated photo-like image of a size in :data:`SIZES`, cached in ``work``.

    ``source="photo"`` upscales a bundled real photo (needs scikit-learn or
    scikit-image), ``"sample"`` paints ``kmeans_fast.sample.sample_image`` at full
    size, ``"auto"`` takes the first of the two that is available.
    """
    width, height = SIZES[megapixels]
    label = f"{megapixels:g} MP" if megapixels >= 1 else f"{megapixels:g} MP (tiny)"
    found = source_photo() if source in ("auto", "photo") else None
    sampler = _package_sampler() if found is None and source != "photo" else None
    if found is not None:
        name, photo = found
        make = partial(_write_generated, photo=photo, width=width, height=height,
                       seed=seed, sigma=sigma)
        describe = f"{name}, bicubic x{width / photo.shape[1]:.1f}, noise sigma {sigma:g}"
    elif sampler is not None:
        name = "kmeans_fast.sample.sample_image"
        make = partial(_write_sample, sampler=sampler, width=width, height=height, seed=seed)
        describe = f"{name}(height={height}, width={width}, seed={seed})"
    elif source == "auto":
        name, photo = "procedural", _procedural(427, 640)
        make = partial(_write_generated, photo=photo, width=width, height=height,
                       seed=seed, sigma=sigma)
        describe = f"procedural blobs (no photo, no sample module), noise sigma {sigma:g}"
    else:
        raise RuntimeError(f"source={source!r} is not available: install the [bench] extra "
                           "(scikit-learn / scikit-image) or use a kmeans_fast with .sample")
    stem = f"photo_{width}x{height}_{_slug(name)}_s{seed}_n{sigma:g}_v{GENERATOR_VERSION}"
    return _cached(work, stem, make, dict(name=label, source=describe))


def user_images(folder, work):
    """The photos in ``folder`` (JPEG, PNG, TIFF, ...), converted to cached RGB .npy."""
    import cv2
    found = []
    for file in sorted(Path(folder).iterdir()):
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stat = file.stat()
        stem = f"user_{_slug(file.stem)}_{stat.st_size}_{int(stat.st_mtime)}"

        def make(path, file=file):
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{file} could not be decoded")
            np.save(path, np.ascontiguousarray(bgr[:, :, ::-1]))

        found.append(_cached(work, stem, make, dict(name=file.name, source=str(file))))
    if not found:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return found


# --------------------------------------------------------------------------
# shared initial centres
# --------------------------------------------------------------------------
def shared_centres(image, k, seed=0):
    """k distinct colours of random pixels, drawn once, as a (k', 3) float64 array.

    Pixels are visited in a seeded random order and the first k distinct colours
    are kept (k' < k only when the image has fewer than k colours).  Every method
    that accepts initial centres gets exactly these.
    """
    pixels = image.reshape(-1, image.shape[-1])
    rng = np.random.default_rng(seed)
    n_draw = min(pixels.shape[0], 4 * k)
    while True:
        idx = rng.choice(pixels.shape[0], size=n_draw, replace=False)
        _, first = np.unique(pixels[idx], axis=0, return_index=True)
        if first.size >= k or n_draw == pixels.shape[0]:
            break
        n_draw = min(pixels.shape[0], 4 * n_draw)
    keep = np.sort(first)[:k]
    return pixels[idx[keep]].astype(np.float64)
