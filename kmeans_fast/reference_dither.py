"""Plain reference implementation of :func:`kmeans_fast.dither.dither`.

The same algorithm as :mod:`kmeans_fast.dither` (read its module notes), with
the same float64 arithmetic in the same order, written pixel by pixel in
Python and NumPy: brute-force nearest entries, one band after another, no
grid, no histogram.  It imports nothing from the dithering kernels or the
public API, so a bug cannot hide in both; the tests hold the Numba kernels
to it with ``==``.  It is slow (microseconds per pixel): for tests only.
"""

from __future__ import annotations

import math

import numpy as np

from . import colour

__all__ = ["dither"]

# The constants of the algorithm (tests check they match kmeans_fast.dither's).
BAND_ROWS = 128
WARM_ROWS = 8
ERROR_LIMIT = 3.0
ORDERED_AMPLITUDE = 2.0
SNAP = {"rgb": 0.0, "oklab": 170.0}
LATTICE_PIXELS = 65536

# Floyd-Steinberg: (row offset, column offset ahead, weight); "ahead" is +1
# on rows scanned left to right and -1 on rows scanned right to left.
FS_TAPS = ((0, 1, 7.0 / 16.0), (1, -1, 3.0 / 16.0), (1, 0, 5.0 / 16.0), (1, 1, 1.0 / 16.0))


def bayer(n=8):
    """n x n Bayer matrix of ranks 0..n*n-1 (recursive definition)."""
    if n == 1:
        return np.zeros((1, 1), dtype=np.int64)
    m = bayer(n // 2)
    return np.vstack([np.hstack([4 * m, 4 * m + 2]), np.hstack([4 * m + 3, 4 * m + 1])])


def sq_distances(target, pal):
    """Squared distances from one point (C,) to every entry (k, C): channels
    added in order, ``((d0 + d1) + d2) + d3``."""
    d = (target[0] - pal[:, 0]) ** 2
    for c in range(1, pal.shape[1]):
        d = d + (target[c] - pal[:, c]) ** 2
    return d


def nearest(target, pal):
    """(index, squared distance) of the nearest entry; ties: the lowest index."""
    d = sq_distances(target, pal)
    j = int(np.argmin(d))
    return j, d[j]


def error_scale(feat, pal):
    """q: RMS distance to the nearest entry over the lattice of pixels
    (rows and columns 0, s, 2s, ...; s = max(1, isqrt(H * W // LATTICE_PIXELS)))."""
    height, width = feat.shape[:2]
    step = max(1, math.isqrt(height * width // LATTICE_PIXELS))
    total = 0
    count = 0
    for y in range(0, height, step):
        for x in range(0, width, step):
            total += int(nearest(feat[y, x], pal)[1])
            count += 1
    return math.sqrt(total / count)


def dither(image, palette, *, method="fs", strength=1.0, space="rgb",
           band_rows=BAND_ROWS, warm_rows=WARM_ROWS):
    """Labels (H, W) of ``image`` (H, W, C) on ``palette`` (k, C): see kmeans_fast.dither."""
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, n_ch = image.shape
    pal = colour.features(palette, space).astype(np.float64)
    feat = colour.features(image.reshape(-1, n_ch), space).astype(np.float64)
    feat = feat.reshape(height, width, n_ch)
    dtype = np.uint8 if palette.shape[0] <= 256 else np.uint16

    # nearest entry of every pixel, and whether it snaps
    j0 = np.zeros((height, width), dtype=np.int64)
    snaps = np.zeros((height, width), dtype=bool)
    for y in range(height):
        for x in range(width):
            j, d = nearest(feat[y, x], pal)
            j0[y, x] = j
            snaps[y, x] = d <= SNAP[space] ** 2
    q = error_scale(feat, pal)

    if method == "none" or strength == 0:
        return j0.astype(dtype)
    if method == "ordered":
        return _ordered(feat, pal, j0, snaps, strength * (ORDERED_AMPLITUDE * q)).astype(dtype)
    labels = np.zeros((height, width), dtype=np.int64)
    for y0 in range(0, height, band_rows):
        _fs_band(feat, pal, j0, snaps, float(strength), ERROR_LIMIT * q,
                 max(0, y0 - warm_rows), y0, min(height, y0 + band_rows), labels)
    return labels.astype(dtype)


def _ordered(feat, pal, j0, snaps, amplitude):
    height, width, n_ch = feat.shape
    m = (bayer(8) + 0.5) / 64 - 0.5
    labels = j0.copy()
    for y in range(height):
        for x in range(width):
            if snaps[y, x]:
                continue
            target = feat[y, x].copy()
            for c in range(n_ch):
                target[c] = target[c] + amplitude * m[(y + 3 * c) % 8, (x + 5 * c) % 8]
            labels[y, x] = nearest(target, pal)[0]
    return labels


def _fs_band(feat, pal, j0, snaps, strength, limit, y_warm, y0, y1, labels):
    """Serpentine Floyd-Steinberg over rows y_warm..y1, starting from zero
    error; labels kept for rows y0..y1 only."""
    width, n_ch = feat.shape[1], feat.shape[2]
    error = {}                                   # (y, x) -> error received so far
    for y in range(y_warm, y1):
        ahead = 1 if y % 2 == 0 else -1
        columns = range(width) if ahead == 1 else range(width - 1, -1, -1)
        for x in columns:
            if snaps[y, x]:                      # palette colour: keep it, pass nothing on
                if y >= y0:
                    labels[y, x] = j0[y, x]
                continue
            e = error.get((y, x), np.zeros(n_ch))
            target = feat[y, x] + strength * e
            j = nearest(target, pal)[0]
            if y >= y0:
                labels[y, x] = j
            r = target - pal[j]
            n2 = r[0] * r[0]
            for c in range(1, n_ch):
                n2 = n2 + r[c] * r[c]
            if n2 > limit * limit:
                r = r * (limit / math.sqrt(n2))
            for dy, dx, w in FS_TAPS:
                yy, xx = y + dy, x + dx * ahead
                if 0 <= xx < width:
                    error[(yy, xx)] = error.get((yy, xx), np.zeros(n_ch)) + r * w
