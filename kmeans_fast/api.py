"""Public entry point: :func:`quantize` and its result, :class:`Quantization`.

Data flows one way: check input -> colour histogram -> initial centres ->
Lloyd steps (pixels or histogram) -> final assignment -> palette and labels.
The algorithm is documented step by step in :mod:`kmeans_fast.reference`,
which implements it in plain NumPy; this module drives the Numba kernels of
:mod:`kmeans_fast._kernels` through exactly the same steps.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numba
import numpy as np

from . import _kernels as K
from . import reference

__all__ = ["quantize", "Quantization", "MAX_COLORS"]

MAX_COLORS = 65536
INITS = ("kmeans++", "random")
BACKENDS = ("numba", "numpy")
METHODS = ("auto", "pixels", "histogram")
DEFAULT_STEPS = 30


@dataclass
class Quantization:
    """Result of :func:`quantize`.

    Attributes
    ----------
    palette : ndarray of shape (k_out, C), dtype uint8
        Colours, in the channel order of the input; ``rint(centers)`` (clipped
        to 0..255, which only explicit initial centres with ``steps=0`` need).
    labels : ndarray of shape (H, W), dtype uint8 (k_out <= 256) or uint16
        Palette index of every pixel (its nearest centre).
    centers : ndarray of shape (k_out, C), dtype float64
        The k-means centres.
    inertia : float
        Sum over pixels of the squared distance to their centre.
    steps_run : int
        Lloyd steps run.
    converged : bool
        True when the centres stopped moving (shift <= tol) before ``steps`` ran out.
    history : list of float
        Inertia of each step's assignment (non-increasing).
    method : str
        The path that ran: ``"pixels"`` or ``"histogram"``.
    n_distinct : int
        Number of distinct colours in the input.
    """

    palette: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    steps_run: int
    converged: bool
    history: list = field(default_factory=list)
    method: str = "histogram"
    n_distinct: int = 0

    def image(self):
        """The quantized image, ndarray (H, W, C) uint8: ``palette[labels]``."""
        palette = np.ascontiguousarray(self.palette, dtype=np.uint8)
        out = np.empty(self.labels.shape + palette.shape[1:], dtype=np.uint8)
        K.paint(palette, np.ascontiguousarray(self.labels).reshape(-1),
                out.reshape(-1, palette.shape[1]), _workers(self.labels.size))
        return out


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value} must be {bound}")
    return value


def _check_choice(name, value, choices):
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is not one of {accepted}")
    return value


def _check_init(init, n_colors, n_channels):
    if isinstance(init, str):
        return _check_choice("init", init, INITS)
    try:
        centres = np.array(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"init={init!r} must be 'kmeans++', 'random' or an array of "
                        f"initial centres") from None
    if centres.shape != (n_colors, n_channels):
        raise ValueError(f"init has shape {centres.shape}: initial centres must have shape "
                         f"(n_colors, channels) = ({n_colors}, {n_channels})")
    if not np.isfinite(centres).all():
        raise ValueError("init contains non-finite values: initial centres must be finite")
    return centres


def _as_pixels(image):
    """Check ``image`` and return it as an (N, C) uint8 array (a view when possible)."""
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
    return np.ascontiguousarray(image).reshape(-1, image.shape[2])


# --------------------------------------------------------------------------
# the Numba backend
# --------------------------------------------------------------------------
class _Histogram:
    """Distinct colours of an image (sorted by key), their counts, and the
    lookup structure that maps a pixel back to its colour index."""

    def __init__(self, pixels, n_workers):
        n_ch = pixels.shape[1]
        self.n_workers = n_workers
        if n_ch <= 3:
            self.table, n_distinct = K.rank_table(K.presence_bitmap(pixels, n_workers))
            self.colours = np.empty((n_distinct, n_ch), dtype=np.uint8)
            K.table_colours(self.table, n_ch, self.colours)
            # Per-group counters parallelise the count over pixels; key ranges
            # parallelise it without extra counters.  Use as many pixel groups
            # as fit in half the image's size.
            dtype = np.int32 if pixels.shape[0] < 2**31 else np.int64
            size = np.dtype(dtype).itemsize * n_distinct
            n_groups = int(max(1, min(n_workers, pixels.nbytes // 2 // size)))
            counts = np.zeros((n_groups, n_distinct), dtype=dtype)
            K.table_counts(pixels, self.table, counts, n_workers)
            self.counts = counts.sum(axis=0, dtype=np.int64)
            self.keys = None
        else:
            keys = np.empty(pixels.shape[0], dtype=np.uint32)
            K.pack_keys(pixels, keys, n_workers)
            keys.sort()
            self.keys, self.counts = K.sorted_distinct(keys)
            del keys
            self.colours = np.empty((self.keys.shape[0], n_ch), dtype=np.uint8)
            K.unpack_keys(self.keys, n_ch, self.colours)

    def remap(self, pixels, colour_labels, labels):
        """labels[p] = colour_labels[colour index of pixel p]."""
        if self.keys is None:
            K.table_remap(pixels, self.table, colour_labels, labels, self.n_workers)
        else:
            K.sorted_remap(pixels, self.keys, colour_labels, labels, self.n_workers)


def _kmeanspp(colours, counts, k, rng):
    """Greedy k-means++ on the histogram; same draws and arithmetic as the reference."""
    planes = np.zeros((4, colours.shape[0]), dtype=np.int32)
    planes[:colours.shape[1]] = colours.T
    n_local = 2 + int(math.log(k))
    n_workers = _workers(colours.shape[0])
    first = int(np.searchsorted(np.cumsum(counts), rng.integers(0, int(counts.sum())),
                                side="right"))
    chosen = [first]
    closest = np.full(colours.shape[0], K.INT32_MAX, dtype=np.int32)
    totals = np.empty(-(-colours.shape[0] // K.KPP_BLOCK), dtype=np.int64)
    K.kpp_update(planes, counts, closest, planes[:, first].copy(), totals)
    candidates = np.empty(n_local, dtype=np.int64)
    pots = np.empty((n_workers, n_local), dtype=np.int64)
    for _ in range(1, k):
        draws = rng.integers(0, int(totals.sum()), size=n_local)
        K.kpp_sample(counts, closest, totals, draws, candidates)
        K.kpp_potentials(planes, counts, closest,
                         np.ascontiguousarray(planes[:, candidates].T), pots)
        best = int(candidates[int(np.argmin(pots.sum(axis=0)))])
        chosen.append(best)
        K.kpp_update(planes, counts, closest, planes[:, best].copy(), totals)
    return np.asarray(chosen, dtype=np.int64)


def _unpack_keys(keys, n_ch):
    out = np.empty((len(keys), n_ch), dtype=np.uint8)
    K.unpack_keys(np.asarray(keys, dtype=np.int64), n_ch, out)
    return out


def _farthest(points, labels, centres, n_want):
    """Keys of the n_want distinct colours farthest from their centre."""
    n_workers = _workers(points.shape[0])
    dist = np.empty((n_workers, n_want))
    keys = np.empty((n_workers, n_want), dtype=np.int64)
    K.farthest_points(points, labels, centres, n_want, dist, keys)
    dist, keys = dist.ravel(), keys.ravel()
    keep = keys >= 0
    dist, keys = dist[keep], keys[keep]
    keys, first = np.unique(keys, return_index=True)
    dist = dist[first]
    return keys[np.lexsort((keys, -dist))[:n_want]]


def _workers(n_points):
    """Worker count for kernels over n_points: the threads, but no more than one
    per 64 Ki points (tiny inputs would only pay for per-worker buffers).
    Results do not depend on it."""
    return min(numba.get_num_threads(), 1 + n_points // 65536)


def _kmeans_numba(pixels, n_colors, *, steps, init, seed, method, tol, progress=None):
    n_ch = pixels.shape[1]
    n_workers = _workers(pixels.shape[0])
    hist = _Histogram(pixels, n_workers)
    colours, counts = hist.colours, hist.counts
    n_distinct = colours.shape[0]
    sq_norm_total = int((counts * (colours.astype(np.int64) ** 2).sum(axis=1)).sum())
    labels = np.empty(pixels.shape[0], dtype=reference.label_dtype(min(n_colors, n_distinct)))
    method = reference.resolve_method(method, n_distinct, pixels.shape[0])
    done = dict(method=method, n_distinct=n_distinct)

    if n_colors >= n_distinct:
        hist.remap(pixels, np.arange(n_distinct, dtype=np.int64), labels)
        return dict(palette=colours.copy(), labels=labels,
                    centers=colours.astype(np.float64), inertia=0.0,
                    steps_run=0, converged=True, history=[], **done)

    rng = np.random.default_rng(seed)
    if isinstance(init, np.ndarray):
        centres = init.copy()
    elif init == "random":
        centres = colours[reference.init_random(counts, n_colors, rng)].astype(np.float64)
    else:
        centres = colours[_kmeanspp(colours, counts, n_colors, rng)].astype(np.float64)

    if method == "pixels":
        points, weights, point_labels = pixels, None, labels
    else:
        points, weights = colours, counts
        point_labels = np.empty(n_distinct, dtype=labels.dtype)
    sums = np.empty((n_workers, n_colors, n_ch), dtype=np.int64)
    cnts = np.empty((n_workers, n_colors), dtype=np.int64)

    def assign(centres):
        K.assign_accumulate(points, weights, centres, point_labels, sums, cnts)
        return sums.sum(axis=0), cnts.sum(axis=0)

    history = []
    converged = False
    stats = None
    steps_run = 0
    if progress is not None:
        progress(0, steps)
    for _ in range(steps):
        s, n = assign(centres)
        history.append(reference.inertia_from_stats(sq_norm_total, centres, s, n))
        steps_run += 1
        if progress is not None:
            progress(steps_run, steps)
        new = centres.copy()
        filled = n > 0
        new[filled] = s[filled] / n[filled, None]
        empty = np.flatnonzero(~filled)
        if empty.size:
            far = _farthest(points, point_labels, new, empty.size)
            new[empty] = _unpack_keys(far, n_ch).astype(np.float64)
        shift = float(((new - centres) ** 2).sum())
        stats = (s, n) if shift == 0.0 else None
        centres = new
        if shift <= tol:
            converged = True
            break

    if stats is None:  # final assignment to the final centres
        stats = assign(centres)
    inertia = reference.inertia_from_stats(sq_norm_total, centres, *stats)
    if method != "pixels":
        hist.remap(pixels, point_labels, labels)
    return dict(palette=reference.palette_of(centres), labels=labels,
                centers=centres, inertia=inertia, steps_run=steps_run,
                converged=converged, history=history, **done)


# --------------------------------------------------------------------------
# public
# --------------------------------------------------------------------------
def quantize(image, n_colors, *, steps=DEFAULT_STEPS, init="kmeans++", seed=None,
             backend="numba", method="auto", tol=0.0, progress=None):
    """Reduce an image to at most ``n_colors`` colours with exact k-means.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
        C is 1, 3 or 4; any channel order (the palette keeps it).
    n_colors : int
        Number of colours k, 1 to 65536.  When the image has fewer distinct
        colours, the palette is exactly those colours.
    steps : int, optional
        Maximum number of Lloyd steps (>= 0); the loop stops earlier once the
        centres stop moving.
    init : {"kmeans++", "random"} or array-like of shape (n_colors, C), optional
        Greedy count-weighted k-means++ (default), k distinct colours of random
        pixels, or explicit initial centres.
    seed : int or None, optional
        Seed of ``numpy.random.default_rng``; the same seed gives the same result
        on every backend, method and thread count.  None draws fresh entropy.
    backend : {"numba", "numpy"}, optional
        Compiled parallel kernels (default) or the plain NumPy reference.
    method : {"auto", "pixels", "histogram"}, optional
        Run the Lloyd steps over every pixel or over the distinct colours
        weighted by their counts; both give identical results.  "auto" picks
        the histogram unless nearly every pixel has its own colour.
    tol : float, optional
        Stop when the total squared centre shift of a step is <= tol (default 0:
        stop only when the centres no longer move).
    progress : callable or None, optional
        Called as ``progress(steps_done, steps)`` before the first Lloyd step
        and after each one (not called when the image has at most
        ``n_colors`` colours, as no step runs).

    Returns
    -------
    Quantization
    """
    pixels = _as_pixels(image)
    height, width = image.shape[:2]
    n_colors = _check_int("n_colors", n_colors, 1, MAX_COLORS)
    steps = _check_int("steps", steps, 0)
    init = _check_init(init, n_colors, pixels.shape[1])
    _check_choice("backend", backend, BACKENDS)
    _check_choice("method", method, METHODS)
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol={tol!r} must be a number >= 0")
    tol = float(tol)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress={progress!r} must be callable or None")

    run = _kmeans_numba if backend == "numba" else reference.kmeans
    out = run(pixels, n_colors, steps=steps, init=init, seed=seed, method=method, tol=tol,
              progress=progress)
    k_out = out["palette"].shape[0]
    labels = out["labels"].astype(reference.label_dtype(k_out), copy=False).reshape(height, width)
    return Quantization(palette=out["palette"], labels=labels, centers=out["centers"],
                        inertia=float(out["inertia"]), steps_run=int(out["steps_run"]),
                        converged=bool(out["converged"]), history=list(out["history"]),
                        method=out["method"], n_distinct=int(out["n_distinct"]))

