"""Dithering: map an image onto a given palette, spreading the error.

:func:`dither` gives every pixel a palette index, like the final remap of
:func:`kmeans_fast.quantize`, but lets the rounding error of one pixel move
its neighbours towards other entries, so that gradients show as a fine mix of
palette colours instead of bands.  It works in the feature space of the
k-means (:mod:`kmeans_fast.colour`): a pixel's features plus the error it
receives are matched to the nearest palette entry by squared Euclidean
distance on ``colour.features(palette, space)`` (ties: the lowest index).

The algorithm, step by step (:mod:`kmeans_fast.reference_dither` writes it
out plainly; the Numba kernels give identical labels):

1. **Error scale.**  ``q`` is the root-mean-square distance from a pixel to
   its nearest entry, measured on a fixed lattice of pixels: rows and columns
   ``0, s, 2s, ...`` with ``s = max(1, isqrt(H * W // 65536))`` (every pixel
   of images up to 128 Ki pixels; about 64 Ki pixels of larger ones).  The
   squared distances are integers, so their sum is exact.
2. **Snap.**  A pixel whose nearest entry is within ``SNAP[space]`` of it
   (rgb: exactly a palette colour; oklab: within 170 fixed-point units, about
   three quarters of an 8-bit level) gets that entry, receives no error and
   passes none on.  So flat areas in a palette colour stay flat, an image
   whose colours are all in the palette is unchanged, and in RGBA images
   fully transparent pixels map to a fully transparent entry when the
   palette has one (premultiplied, they all have features 0).
3. ``method="fs"``: **Floyd-Steinberg**, serpentine (even rows left to
   right, odd rows right to left, counted from the top of the image).  The
   target is ``features + strength * error``; its nearest entry is the label;
   the residual ``target - entry`` is limited to a norm of
   ``ERROR_LIMIT * q`` (scaled down if longer: no runaway error where the
   palette cannot reach a colour, no ringing at hard edges) and spread 7/16
   ahead, 3/16 below-behind, 5/16 below, 1/16 below-ahead.
   **Bands**: rows are cut into fixed bands of ``BAND_ROWS`` rows, dithered
   in parallel.  Each band starts with zero error ``WARM_ROWS`` rows above
   its first row and dithers those rows without keeping their labels, so its
   first row receives an error pattern like any other row.  The band height
   is a constant, so the labels are the same at any thread count.
   *Seams*: where two bands meet, two independently dithered patterns touch.
   Measured on a 4096-row gradient (k = 16 and 64, rgb and oklab): the rows
   at a seam keep the usual texture (horizontal label changes within 5% of a
   run without bands) and no error offset; only the pattern is not continuous
   across the seam (some 20% fewer vertical label changes between its two
   rows).  No seam is visible with 8 warm rows; with none, a band's first
   row shows as a line of evenly spaced dots.
4. ``method="ordered"``: **Bayer 8x8** ordered dither, fully parallel.  The
   target adds ``strength * ORDERED_AMPLITUDE * q * m`` to each feature,
   where ``m`` is the Bayer threshold (-1/2..1/2) at (y, x), shifted by
   (3c, 5c) for feature c so that the channels do not move in lockstep.
5. ``method="none"``: the nearest entry of every pixel (the plain remap).

``strength=0`` gives the nearest entry of every pixel, for both methods.

The nearest-entry search for the modified colours uses a grid of candidate
lists over feature space (see :mod:`kmeans_fast._dither_kernels`) that gives
exactly the brute-force answer.
"""

from __future__ import annotations

import math
import numbers

import numba
import numpy as np

from . import _dither_kernels as DK
from . import _kernels as K
from . import colour

__all__ = ["dither", "METHODS"]

METHODS = ("fs", "ordered", "none")
MAX_COLORS = 65536

BAND_ROWS = 128         # rows per band of the parallel Floyd-Steinberg (even)
WARM_ROWS = 8           # rows dithered (labels discarded) above each band
ERROR_LIMIT = 3.0       # diffused error: norm at most ERROR_LIMIT * q
ORDERED_AMPLITUDE = 2.0  # ordered dither: offsets up to +-1/2 of this * q
SNAP = {"rgb": 0.0, "oklab": 170.0}   # snap distance per space, feature units
LATTICE_PIXELS = 1 << 16
GRID_MARGIN = 0.125     # the grid extends this fraction of its range on each side
GRID_BASE = {1: 256, 3: 4096, 4: 4096}   # cells of the coarsest grid, by C
GRID_LEVELS = {1: 4, 3: 2, 4: 2}         # at most this many halvings
GRID_SHORT = 1.05       # stop halving when lists are this long on average
GRID_PIXELS_PER_CELL = 8  # no finer grid than one cell per this many queries
GRID_BOX_SLACK = 1e-6   # cells are enlarged by this fraction (covers rounding)


def _histogram(pixels, n_workers):
    """The engine's colour lookup of ``pixels`` (``.colours`` sorted by key;
    ``.table`` for the presence bitmap, else ``.keys``: sorted keys).  The one
    place that reaches into the Numba backend."""
    from ._numba_backend import Lookup
    return Lookup(pixels)


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def _check_image(image):
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy ndarray, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image dtype {image.dtype} is not supported: convert it to uint8")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"image has shape {image.shape}: expected (H, W) or (H, W, C)")
    if image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image has {image.shape[2]} channels: expected 1, 3 or 4")
    if image.size == 0:
        raise ValueError(f"image of shape {image.shape} is empty")
    return np.ascontiguousarray(image)


def _check_palette(palette, n_channels):
    if not isinstance(palette, np.ndarray):
        raise TypeError(f"palette must be a numpy ndarray, not {type(palette).__name__}")
    if palette.dtype != np.uint8:
        raise TypeError(f"palette dtype {palette.dtype} is not supported: convert it to uint8")
    if palette.ndim != 2 or palette.shape[1] != n_channels:
        raise ValueError(f"palette has shape {palette.shape}: expected (k, {n_channels}) "
                         f"for an image with {n_channels} channel(s)")
    if not 1 <= palette.shape[0] <= MAX_COLORS:
        raise ValueError(f"palette has {palette.shape[0]} colours: expected 1 to {MAX_COLORS}")
    return np.ascontiguousarray(palette)


def _check_options(method, strength, space, n_workers):
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of " + ", ".join(map(repr, METHODS)))
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise TypeError(f"strength={strength!r} must be a number between 0 and 1")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength={strength!r} must be between 0 and 1")
    if space not in colour.SPACES:
        raise ValueError(f"space={space!r} is not one of " + ", ".join(map(repr, colour.SPACES)))
    if n_workers is None:
        return numba.get_num_threads()
    if isinstance(n_workers, bool) or not isinstance(n_workers, numbers.Integral):
        raise TypeError(f"n_workers={n_workers!r} must be an integer or None")
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers} must be >= 1")
    return int(n_workers)


# --------------------------------------------------------------------------
# preparation
# --------------------------------------------------------------------------
def _padded(feat):
    out = np.zeros((feat.shape[0], 4), dtype=np.float64)
    out[:, :feat.shape[1]] = feat
    return out


class _Grid:
    """Candidate lists over the box [lo, hi] of feature space (padded to 4 features).

    Built coarse to fine: a grid of about ``GRID_BASE[C]`` cells (fewer for
    small images: one per ``GRID_PIXELS_PER_CELL`` queries) scans the whole
    palette, then each level halves the cells in every feature and scans only
    the parent cell's list, until the lists are short (mean <= GRID_SHORT),
    ``GRID_LEVELS[C]`` levels are done, or the next level would have more than
    one cell per ``GRID_PIXELS_PER_CELL`` queries (small images do not pay for
    a big grid).  Any grid gives the same nearest entries: a cell's list holds
    every entry that can be nearest somewhere in it.
    """

    def __init__(self, pal4, n_ch, lo, hi, n_queries):
        dims = n_ch
        lo = np.asarray(lo, dtype=np.float64)
        span = np.maximum(np.asarray(hi, dtype=np.float64) - lo, 1.0)
        lo = lo - GRID_MARGIN * span
        span = span * (1.0 + 2.0 * GRID_MARGIN)
        base_cells = min(GRID_BASE[dims], max(1, n_queries // GRID_PIXELS_PER_CELL))
        side = (np.prod(span) / base_cells) ** (1.0 / dims)
        base = np.maximum(1, np.ceil(span / side)).astype(np.int64)
        k = pal4.shape[0]
        start = np.array([0, k], dtype=np.uint32)      # level -1: one cell, every entry
        cand = np.arange(k, dtype=np.uint16)
        gn = np.ones(4, dtype=np.int64)
        self.lo = np.zeros(4)
        self.lo[:dims] = lo
        self.levels = -1
        size = np.zeros(4)
        max_cells = max(base_cells, n_queries // GRID_PIXELS_PER_CELL)
        norm2 = (pal4 * pal4).sum(axis=1)
        for level in range(GRID_LEVELS[dims] + 1):
            if level and np.prod(base << level, dtype=np.float64) > max_cells:
                break
            fine = np.ones(4, dtype=np.int64)
            fine[:dims] = base << level
            fine_size = np.zeros(4)
            fine_size[:dims] = span / fine[:dims]
            n_max = int(fine.max())
            i = np.arange(n_max)
            side_lo = np.zeros((4, n_max))
            side_hi = np.zeros((4, n_max))
            parent_of = np.zeros((4, n_max), dtype=np.int64)
            for c in range(dims):
                corner = self.lo[c] + i * fine_size[c]
                side_lo[c] = corner - GRID_BOX_SLACK * fine_size[c]
                side_hi[c] = corner + fine_size[c] + GRID_BOX_SLACK * fine_size[c]
                parent_of[c] = i * gn[c] // fine[c]
            counts = np.empty(int(np.prod(fine)), dtype=np.uint32)
            single = np.empty(counts.shape[0], dtype=np.uint16)
            none = np.empty(0, dtype=np.uint16)
            DK.grid_lists(pal4, norm2, side_lo, side_hi, fine, parent_of, gn, start, cand, counts,
                          single, start, none)
            if int(counts.sum(dtype=np.int64)) >= 1 << 32:   # 32-bit offsets: stay coarser
                break
            fine_start = np.zeros(counts.shape[0] + 1, dtype=np.uint32)
            np.cumsum(counts, out=fine_start[1:])
            fine_cand = np.empty(int(fine_start[-1]), dtype=np.uint16)
            DK.grid_lists(pal4, norm2, side_lo, side_hi, fine, parent_of, gn, start, cand, counts,
                          single, fine_start, fine_cand)
            gn, size, start, cand = fine, fine_size, fine_start, fine_cand
            self.levels = level
            if start[-1] <= GRID_SHORT * counts.shape[0]:
                break
        self.n, self.start, self.cand = gn, start, cand
        self.inv = np.zeros(4)
        self.inv[:dims] = 1.0 / size[:dims]

    def args(self):
        return self.lo, self.inv, self.n, self.start, self.cand


def _nearest(feat, pal4, four, grid):
    """(labels, squared distances) of the nearest entries of feat (M, C) features."""
    f4 = _padded(feat)
    labels = np.empty(f4.shape[0], dtype=np.int64)
    sq = np.empty(f4.shape[0], dtype=np.float64)
    DK.nearest_entries(f4, pal4, four, *grid.args(), labels, sq)
    return labels, sq


def _lattice_step(height, width):
    return max(1, math.isqrt(height * width // LATTICE_PIXELS))


def _keys(colours):
    """Keys of (M, C) uint8 colours, channel 0 most significant (the histogram's order)."""
    keys = np.zeros(colours.shape[0], dtype=np.int64)
    for c in range(colours.shape[1]):
        keys = (keys << 8) | colours[:, c]
    return keys


def _error_scale(image, space, pal4, four, grid, distinct=None):
    """q: root-mean-square distance from the lattice pixels to their nearest entry.

    distinct : (colours (D, C) uint8 sorted by key, squared distances (D,)) or None
        The distinct colours' distances, when known: looked up, not recomputed.
    """
    step = _lattice_step(*image.shape[:2])
    sample = image[::step, ::step].reshape(-1, image.shape[2])
    if distinct is None:
        _, sq = _nearest(colour.features(sample, space), pal4, four, grid)
    else:
        colours, sq_distinct = distinct
        sq = sq_distinct[np.searchsorted(_keys(colours), _keys(sample))]
    total = int(sq.astype(np.int64).sum())      # integers: exact in any order
    return math.sqrt(total / sample.shape[0])


def _dither_image(image, palette, method, strength, space, n_workers, *, histogram=None,
                  band_rows=BAND_ROWS, warm_rows=WARM_ROWS):
    """Labels (H * W,) of a checked (H, W, C) image; ``histogram``: the engine's, if built."""
    height, width, n_ch = image.shape
    if band_rows < 2 or band_rows % 2 or warm_rows < 0:
        raise ValueError(f"band_rows={band_rows} must be even and >= 2, warm_rows={warm_rows} >= 0")
    pixels = image.reshape(-1, n_ch)
    k = palette.shape[0]
    pal4 = _padded(colour.features(palette, space))
    four = n_ch == 4
    empty_u64 = np.zeros(1, dtype=np.uint64)
    empty_i64 = np.zeros(1, dtype=np.int64)
    table = np.zeros((1, 2), dtype=np.uint64)
    keys = np.zeros(1, dtype=np.uint32)
    pbits, pkeys, plabels = empty_u64, empty_i64, empty_i64
    drec = np.zeros((1, 4), dtype=np.int32)

    direct = space == "rgb" and n_ch in (1, 3)
    if direct:
        mode = DK.DIRECT
        lo = np.minimum(pal4[:, :n_ch].min(axis=0), 0.0)
        hi = np.maximum(pal4[:, :n_ch].max(axis=0), 255.0)
    else:
        hist = histogram if histogram is not None else _histogram(pixels, n_workers)
        dfeat = colour.features(hist.colours, space)
        d_lo, d_hi = K.feature_range(dfeat)
        lo = np.minimum(pal4[:, :n_ch].min(axis=0), d_lo)
        hi = np.maximum(pal4[:, :n_ch].max(axis=0), d_hi)
    grid = _Grid(pal4, n_ch, lo, hi, height * width)

    if direct:
        pkey_all = np.zeros(k, dtype=np.int64)
        for c in range(n_ch):
            pkey_all = (pkey_all << 8) | palette[:, c].astype(np.int64)
        pkeys, first = np.unique(pkey_all, return_index=True)
        plabels = first.astype(np.int64)                 # lowest index of each colour
        pbits = np.zeros(max(1, (1 << (8 * n_ch)) >> 6), dtype=np.uint64)
        np.bitwise_or.at(pbits, pkeys >> 6, np.left_shift(np.uint64(1), (pkeys & 63).astype(np.uint64)))
    else:
        j0, d0 = _nearest(dfeat, pal4, four, grid)
        drec = np.zeros((dfeat.shape[0], 4 if n_ch <= 3 else 8), dtype=np.int32)
        drec[:, :n_ch] = dfeat
        drec[:, -1] = j0 if method == "none" else np.where(d0 <= SNAP[space] ** 2, j0, -1)
        if hist.keys is None:
            mode, table = DK.TABLE, hist.table
        else:
            mode, keys = DK.KEYS, hist.keys

    q = _error_scale(image, space, pal4, four, grid, None if direct else (hist.colours, d0))
    labels = np.empty(height * width, dtype=np.uint8 if k <= 256 else np.uint16)
    common = (mode, pixels, height, table, keys, pbits, pkeys, plabels, drec,
              pal4, four) + grid.args()
    if method == "fs" and strength > 0:
        DK.fs_dither(*common, float(strength), ERROR_LIMIT * q, band_rows, warm_rows,
                     n_workers, labels)
    else:
        amplitude = float(strength) * (ORDERED_AMPLITUDE * q) if method == "ordered" else 0.0
        DK.ordered_dither(*common, bayer_matrix(), amplitude, min(n_workers, height), labels)
    return labels


def bayer_matrix():
    """The 8x8 Bayer threshold matrix, values ``(rank + 1/2) / 64 - 1/2``, float64."""
    m = np.zeros((1, 1), dtype=np.int64)
    while m.shape[0] < DK.BAYER_SIZE:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return (m + 0.5) / m.size - 0.5


# --------------------------------------------------------------------------
# public
# --------------------------------------------------------------------------
def dither(image, palette, *, method="fs", strength=1.0, space="rgb", n_workers=None):
    """Palette index of every pixel, with dithering.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
        C is 1 (gray), 3 (RGB) or 4 (RGBA, dithered on premultiplied colour).
    palette : ndarray of shape (k, C), dtype uint8
        The colours to use, 1 <= k <= 65536, in the image's channel order.
    method : {"fs", "ordered", "none"}, optional
        Serpentine Floyd-Steinberg error diffusion with a limited error
        (default), an 8x8 Bayer ordered dither (fully parallel, for very large
        images), or no dithering (the nearest entry of every pixel).
    strength : float, optional
        0 to 1 (default 1): how much of the error is diffused (``"fs"``) or
        how large the threshold offsets are (``"ordered"``).  0 gives the
        nearest entry of every pixel.
    space : {"rgb", "oklab"}, optional
        Feature space of the distances and the error (see
        :mod:`kmeans_fast.colour`); use the space the palette was made in.
    n_workers : int or None, optional
        Threads to use (default: Numba's thread count).  The labels do not
        depend on it.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8 (k <= 256) or uint16
        Palette index of every pixel.

    Notes
    -----
    The algorithm is described in :mod:`kmeans_fast.dither`.  Pixels whose
    colour is a palette colour keep it (so an image whose colours are all in
    the palette comes back unchanged), and fully transparent pixels map to a
    fully transparent entry when the palette has one.
    """
    image = _check_image(image)
    palette = _check_palette(palette, image.shape[2])
    n_workers = _check_options(method, strength, space, n_workers)
    labels = _dither_image(image, palette, method, strength, space, n_workers)
    return labels.reshape(image.shape[:2])
