"""A built-in, photo-like sample image, generated on the spot.

:func:`sample_image` paints a small landscape: a sky with a smooth vertical
gradient and a sun glow, a sun disc, two ranges of hills with hard edges,
houses (flat walls and roofs, lit windows), textured grass and a lake, then
adds sensor-like noise.  It needs no download and no data file, gives the
same image for the same arguments (across machines, differences between maths
libraries could move a rare pixel by one level), and is scale-free: every
size shows the same scene, so small sizes suit tests and large ones suit
benchmarks.

The image is painted in bands of rows, so a 100-megapixel call needs little
memory beyond its output; each pixel depends only on its position, the size
and the seed, never on the band it falls in.
"""

from __future__ import annotations

import numpy as np

from .api import _check_int

__all__ = ["sample_image"]

_BAND_PIXELS = 1 << 17     # pixels painted per band of rows (fits in cache)
_TILE = (251, 257)          # texture and noise tiles: primes, so their repeat is not obvious
_NOISE_SIGMA = 3.0          # sensor noise, in 8-bit levels


def _rgb(*values):
    return np.array(values, dtype=np.float32)


class _Scene:
    """Everything about the picture that does not depend on the row band."""

    def __init__(self, height, width, rng):
        self.height, self.width = height, width
        u = (np.arange(width, dtype=np.float32) + 0.5) / width
        aspect = width / height

        # sky: colour per row (top -> horizon), and a glow around the sun
        self.sun = (rng.uniform(0.15, 0.85), rng.uniform(0.12, 0.3))     # (u, v)
        self.sun_r = 0.045
        self.sky_top = _rgb(38, 84, 168) + rng.uniform(-12, 12, 3).astype(np.float32)
        self.sky_low = _rgb(214, 196, 170) + rng.uniform(-12, 12, 3).astype(np.float32)
        self.glow = _rgb(120, 70, 10)
        self.du2 = ((u - self.sun[0]) * aspect) ** 2                      # (W,)

        # hills: far (bluish) and near (green) ridges, height per column
        def ridge(base, amp):
            freqs = rng.uniform(1.0, 9.0, 4)
            phases = rng.uniform(0, 2 * np.pi, 4)
            wave = sum(np.sin(2 * np.pi * f * u + p) / (1 + i)
                       for i, (f, p) in enumerate(zip(freqs, phases)))
            return (base + amp * wave / 2.1).astype(np.float32)

        self.far_ridge = ridge(0.45, 0.08)
        self.near_ridge = ridge(0.62, 0.05)
        self.far_colour = _rgb(96, 110, 140)
        self.near_top, self.near_low = _rgb(70, 128, 52), _rgb(34, 74, 28)

        # a lake (an ellipse) and some houses, in image fractions
        self.lake = (rng.uniform(0.25, 0.75), 0.84, 0.2, 0.06)            # centre u, v; radii
        self.lake_colour = _rgb(60, 100, 150)
        self.houses = []
        for slot in range(4):                     # one house per quarter: no overlaps
            left = slot / 4 + rng.uniform(0.01, 0.14)
            w, h = rng.uniform(0.05, 0.09), rng.uniform(0.08, 0.14)
            wall = rng.uniform(90, 235, 3).astype(np.float32)
            roof = rng.uniform(60, 180, 3).astype(np.float32) * _rgb(1.2, 0.6, 0.5)
            self.houses.append((left, w, h, wall, np.minimum(roof, 255)))
        self.window = _rgb(250, 226, 140)

        # tiles (periodic, so their seams do not show): blotchy grass texture
        # (white noise low-passed in Fourier space) and per-channel sensor noise;
        # the noise tile carries the +0.5 that makes the final cast round
        f0 = np.fft.fftfreq(_TILE[0])[:, None]
        f1 = np.fft.rfftfreq(_TILE[1])[None, :]
        white = rng.normal(0, 1, _TILE)
        blotch = np.fft.irfft2(np.fft.rfft2(white) * np.exp(-(f0 ** 2 + f1 ** 2) * 400),
                               s=_TILE)
        texture = 14 * blotch / blotch.std() + 5 * white
        self.texture_rows = self._tile_across(texture[:, :, None].astype(np.float32))
        noise = rng.normal(0, _NOISE_SIGMA, _TILE + (3,)) + 0.5
        self.noise_rows = self._tile_across(noise.astype(np.float32))
        self.sky_rows = int(np.ceil(float(self.far_ridge.max()) * height))  # rows with sky

    def _tile_across(self, tile):
        """Repeat a tile along a whole row: (tile rows, W, channels)."""
        reps = -(-self.width // tile.shape[1])
        return np.ascontiguousarray(np.tile(tile, (1, reps, 1))[:, : self.width])

    def paint(self, y0, y1, out):
        """Paint rows y0:y1 into out, (y1 - y0, W, 3) uint8."""
        h, w = self.height, self.width
        v = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / h)[:, None]    # (B, 1)
        rows = np.arange(y0, y1) % _TILE[0]
        img = np.empty((y1 - y0, w, 3), dtype=np.float32)

        # sky (only rows above the highest far ridge can show it): a per-row
        # gradient, a glow with a cheap 1/(1 + d^2) falloff, and the sun disc
        s1 = min(max(self.sky_rows - y0, 0), y1 - y0)
        if s1:
            sv = v[:s1]
            t = np.clip(sv / 0.62, 0, 1)[:, :, None]
            img[:s1] = self.sky_top + (self.sky_low - self.sky_top) * t
            d2 = self.du2[None, :] + (sv - self.sun[1]) ** 2               # (S, W)
            sun = d2 < self.sun_r ** 2
            d2 *= 60
            d2 += 1
            np.reciprocal(d2, out=d2)
            img[:s1] += self.glow * d2[:, :, None]
            np.copyto(img[:s1], _rgb(255, 246, 210), where=sun[:, :, None])

        # far hills: one flat, hazy colour
        np.copyto(img, self.far_colour, where=(v > self.far_ridge[None, :])[:, :, None])

        # near hills: a gradient with depth plus grass texture
        near = v > self.near_ridge[None, :]
        if near.any():
            g0 = int(np.argmax(near.any(axis=1)))                          # first grass row
            depth = np.clip((v[g0:] - 0.55) / 0.45, 0, 1)[:, :, None]
            grass = self.texture_rows[rows[g0:]] + (
                self.near_top + (self.near_low - self.near_top) * depth)
            np.copyto(img[g0:], grass, where=near[g0:, :, None])

        # lake: an ellipse with a lighter centre, painted in its bounding box
        cu, cv, ru, rv = self.lake
        r0, r1 = max(int((cv - rv) * h), y0), min(int((cv + rv) * h) + 1, y1)
        c0, c1 = max(int((cu - ru) * w), 0), min(int((cu + ru) * w) + 1, w)
        if r0 < r1 and c0 < c1:
            u = (np.arange(c0, c1, dtype=np.float32) + 0.5) / w
            e = ((u[None, :] - cu) / ru) ** 2 + ((v[r0 - y0 : r1 - y0] - cv) / rv) ** 2
            shade = self.lake_colour + 40 * (1 - np.clip(e, 0, 1))[:, :, None]
            np.copyto(img[r0 - y0 : r1 - y0, c0:c1], shade, where=(e < 1)[:, :, None])

        # houses: a wall standing on the near ridge, a roof, a lit window
        for left, hw, hh, wall, roof in self.houses:
            c0, c1 = int(left * w), int((left + hw) * w)
            base = float(self.near_ridge[min(max((c0 + c1) // 2, 0), w - 1)]) + 0.03
            self._rect(img, y0, y1, base - hh, base, c0, c1, wall)
            self._rect(img, y0, y1, base - hh - 0.03, base - hh, c0 - 2, c1 + 2, roof)
            wc0, wc1 = int((left + hw * 0.35) * w), int((left + hw * 0.65) * w)
            self._rect(img, y0, y1, base - hh * 0.7, base - hh * 0.4, wc0, wc1, self.window)

        # sensor noise (carrying +0.5), clip, and the cast rounds to nearest
        for a, b, r in self._tile_runs(y0, y1):
            img[a:b] += self.noise_rows[r : r + b - a]
        np.clip(img, 0, 255, out=img)
        out[...] = img

    @staticmethod
    def _tile_runs(y0, y1):
        """Split rows y0:y1 into runs (a, b, r): band rows a:b use tile rows r:r+b-a."""
        a = 0
        while a < y1 - y0:
            r = (y0 + a) % _TILE[0]
            b = min(y1 - y0, a + _TILE[0] - r)
            yield a, b, r
            a = b

    def _rect(self, img, y0, y1, top, bottom, c0, c1, colour):
        r0 = max(int(top * self.height), y0)
        r1 = min(int(bottom * self.height), y1)
        c0, c1 = max(c0, 0), min(c1, self.width)
        if r0 < r1 and c0 < c1:
            img[r0 - y0 : r1 - y0, c0:c1] = colour


def sample_image(height=768, width=1024, *, seed=0):
    """A deterministic, photo-like landscape painted on the spot.

    Parameters
    ----------
    height, width : int, optional
        Size in pixels (>= 1).  Every size shows the same scene.
    seed : int, optional
        Picks the scene (sun, hills, houses) and the noise; the same seed gives
        the same image.

    Returns
    -------
    ndarray of shape (height, width, 3), dtype uint8
        RGB pixels: smooth gradients (sky), hard edges (hills, houses),
        texture (grass) and sensor-like noise.
    """
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    seed = _check_int("seed", seed, 0)
    scene = _Scene(height, width, np.random.default_rng(seed))
    out = np.empty((height, width, 3), dtype=np.uint8)
    band = max(1, _BAND_PIXELS // width)
    for y0 in range(0, height, band):
        y1 = min(y0 + band, height)
        scene.paint(y0, y1, out[y0:y1])
    return out
