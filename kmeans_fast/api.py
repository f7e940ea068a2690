"""Public API: argument checks, result types, and the choice of backend.

Data flows one way::

    image -> histogram (distinct colours, counts) -> fit_palette (init, Lloyd
    steps, palette) -> remap (or dither) -> labels

:func:`quantize` is exactly ``fit_palette(histogram(image), k)`` followed by
``remap(image, palette)`` (or ``dither``), in one pass over the pixels less.
The algorithm is written out step by step in :mod:`kmeans_fast.reference`,
which implements it in plain NumPy (``backend="numpy"``); the Numba backend
(:mod:`kmeans_fast._numba_backend`) gives identical results at any thread count.
"""

from __future__ import annotations

import math
import numbers
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _numba_backend as nb
from . import colour, reference

__all__ = ["quantize", "Quantization", "Histogram", "histogram", "fit_palette", "PaletteFit",
           "remap", "MAX_COLORS", "DEFAULT_STEPS", "INITS", "SPACES", "DITHERS"]

MAX_COLORS = 65536
INITS = ("kmeans++", "random")
BACKENDS = ("numba", "numpy")
METHODS = ("auto", "pixels", "histogram")
SPACES = colour.SPACES
DITHERS = ("none", "fs", "ordered")
DEFAULT_STEPS = 30
# Most pixels one k-means may fit: their sums (count x feature, features up to
# 2**16) stay below 2**53, exact in the float64 arithmetic of the reference.
MAX_FIT_PIXELS = 1 << 36
# "auto" runs Lloyd over the pixels when distinct colours exceed this fraction
# of the pixels (the histogram saves little then and costs a remap pass).
PIXELS_ABOVE = 0.5


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
    if not isinstance(value, str) or value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is not one of {accepted}")
    return value


def _check_real(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a number")
    if math.isnan(value) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value!r} must be {bound}")
    return float(value)


def _check_init(init, shape):
    if isinstance(init, str):
        return _check_choice("init", init, INITS)
    try:
        centers = np.array(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"init={init!r} must be 'kmeans++', 'random' or an array of "
                        f"initial centers") from None
    if centers.shape != shape:
        raise ValueError(f"init has shape {centers.shape}: initial centers must have shape "
                         f"{shape} here (one row per colour that k-means places, "
                         "in the image's channels)")
    if not np.isfinite(centers).all():
        raise ValueError("init contains non-finite values: initial centers must be finite")
    return centers


def _as_pixels(image, name="image"):
    """Check ``image`` and return it as an (N, C) uint8 array (a view when possible)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy ndarray, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} dtype {image.dtype} is not supported: convert it to uint8")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"{name} has shape {image.shape}: expected (H, W) or (H, W, C)")
    if image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name} has {image.shape[2]} channels: expected 1, 3 or 4")
    if image.size == 0:
        raise ValueError(f"{name} of shape {image.shape} is empty")
    return np.ascontiguousarray(image).reshape(-1, image.shape[2])


def _check_palette(palette, n_channels):
    if not isinstance(palette, np.ndarray) or palette.dtype != np.uint8:
        raise TypeError("palette must be a numpy uint8 array of shape (k, C)")
    if palette.ndim == 1 and n_channels == 1:
        palette = palette[:, None]
    if palette.ndim != 2 or palette.shape[1] != n_channels or not 1 <= len(palette) <= MAX_COLORS:
        raise ValueError(f"palette has shape {palette.shape}: expected (k, {n_channels}) with "
                         f"1 <= k <= {MAX_COLORS}, the image's channels")
    return np.ascontiguousarray(palette)


def _label_dtype(k):
    return np.uint8 if k <= 256 else np.uint16


# --------------------------------------------------------------------------
# the colour histogram
# --------------------------------------------------------------------------
class Histogram:
    """The distinct colours of one or more images and how many pixels have each.

    Histograms add up (``a + b``, ``sum([a, b, c])``): k-means over a sum is
    exact k-means over all the pixels together, whatever the order or the
    grouping (per file, per tile, per machine).  Histograms of gray, RGB and
    RGBA images add up in the widest of their layouts (see :meth:`widened`).

    Parameters
    ----------
    colours : ndarray of shape (D, C), dtype uint8
        Distinct colours, sorted by key (channel 0 most significant).
    counts : ndarray of shape (D,), dtype int64
        Pixels of each colour (all > 0).

    Attributes
    ----------
    n_pixels, n_colours, n_channels : int
    """

    __slots__ = ("colours", "counts")

    def __init__(self, colours, counts):
        colours = np.asarray(colours)
        counts = np.asarray(counts)
        if colours.dtype != np.uint8 or colours.ndim != 2 or colours.shape[1] not in (1, 3, 4):
            raise ValueError(f"colours must be a (D, C) uint8 array with C in 1, 3, 4, not "
                             f"{colours.dtype} {colours.shape}")
        if counts.shape != (colours.shape[0],) or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError("counts must be an integer array with one count per colour")
        if colours.shape[0] == 0:
            raise ValueError("a histogram needs at least one colour")
        counts = counts.astype(np.int64)
        if (counts <= 0).any():
            raise ValueError("counts must be positive")
        keys = _keys(colours)
        if (np.diff(keys) <= 0).any():
            raise ValueError("colours must be distinct and sorted by key "
                             "(use Histogram.from_arrays to sort and merge)")
        self.colours = np.ascontiguousarray(colours)
        self.counts = counts

    @classmethod
    def from_arrays(cls, colours, counts):
        """A histogram of colours that may repeat and come in any order (merged;
        colours counted 0 times are dropped)."""
        colours = np.asarray(colours)
        counts = np.asarray(counts)
        if colours.dtype != np.uint8:
            if (not np.issubdtype(colours.dtype, np.integer) or colours.size
                    and (colours.min() < 0 or colours.max() > 255)):
                raise ValueError(f"colours of dtype {colours.dtype} are not uint8 values "
                                 "0..255: convert them to uint8")
            colours = colours.astype(np.uint8)
        if colours.ndim != 2 or colours.shape[1] not in (1, 3, 4):
            raise ValueError(f"colours have shape {colours.shape}: expected (D, C) with C in "
                             "1, 3, 4")
        if counts.shape != (colours.shape[0],) or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"counts of dtype {counts.dtype} and shape {counts.shape}: expected "
                             "an integer array with one count per colour")
        if counts.size and counts.min() < 0:
            raise ValueError(f"counts hold the negative value {counts.min()}: counts must be "
                             ">= 0")
        counts = counts.astype(np.int64)
        keys = _keys(colours)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        summed = np.zeros(unique.size, dtype=np.int64)
        np.add.at(summed, inverse.ravel(), counts)
        if (summed < 0).any():
            raise ValueError("counts overflow int64 once repeated colours are added up")
        keep = summed > 0
        return cls(colours[first][keep], summed[keep])

    @property
    def n_pixels(self):
        return int(self.counts.sum())

    @property
    def n_colours(self):
        return int(self.colours.shape[0])

    @property
    def n_channels(self):
        return int(self.colours.shape[1])

    def __add__(self, other):
        if isinstance(other, numbers.Integral) and other == 0:
            return self
        if not isinstance(other, Histogram):
            return NotImplemented
        return Histogram._merge(self.widened(other.n_channels), other.widened(self.n_channels))

    def widened(self, n_channels):
        """The same pixels with more channels: gray as RGB, gray or RGB as RGBA
        (alpha 255); ``self`` when it has that many (or more) already.  Adding
        histograms of different kinds widens both to the wider one."""
        if n_channels <= self.n_channels:
            return self
        return Histogram.from_arrays(colour.widen(self.colours, n_channels), self.counts)

    __radd__ = __add__           # sum() starts from 0

    @staticmethod
    def _merge(a, b):
        keys = np.concatenate([_keys(a.colours), _keys(b.colours)])
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        colours = np.concatenate([a.colours, b.colours])[order]
        counts = np.concatenate([a.counts, b.counts])[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        return Histogram(colours[starts], np.add.reduceat(counts, starts))

    def __eq__(self, other):
        return (isinstance(other, Histogram) and self.colours.shape == other.colours.shape
                and np.array_equal(self.colours, other.colours)
                and np.array_equal(self.counts, other.counts))

    __hash__ = None

    def __repr__(self):
        return (f"Histogram({self.n_colours} colours, {self.n_pixels} pixels, "
                f"{self.n_channels} channels)")

    def save(self, path):
        """Write the histogram to an ``.npz`` file (``numpy.savez_compressed``)."""
        np.savez_compressed(path, colours=self.colours, counts=self.counts,
                            format=np.array("kmeans_fast.Histogram/1"))

    @classmethod
    def load(cls, path):
        """Read a histogram written by :meth:`save`.

        Raises
        ------
        ValueError
            When the file is not one that :meth:`save` wrote, is damaged (a bad
            CRC, an array larger than the file) or holds arrays that are not a
            histogram; the message names the file.  OSError when it cannot be
            read at all.
        """
        wrong = f"'{path}' is not a kmeans_fast histogram file (made by Histogram.save)"
        try:
            data = np.load(Path(path), allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile):   # numpy's "pickled data", a cut file
            raise ValueError(wrong) from None
        if not isinstance(data, np.lib.npyio.NpzFile):      # a plain .npy array
            raise ValueError(wrong)
        names = ("format", "colours", "counts")
        with data:
            if not set(names) <= set(data.files):
                raise ValueError(wrong)
            try:            # zip and array errors of what is read here mean a damaged file
                fits = all(_fits(data, name) for name in names)
                ours = fits and str(data["format"]) == "kmeans_fast.Histogram/1"
                colours, counts = (data["colours"], data["counts"]) if ours else (None, None)
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
                raise ValueError(f"'{path}' is damaged ({e}); save the histogram "
                                 "again") from None
        if not fits:
            raise ValueError(f"'{path}' is damaged: an array is larger than the file "
                             "holds; save the histogram again")
        if not ours:
            raise ValueError(wrong)
        try:
            return cls(colours, counts)
        except ValueError as e:
            raise ValueError(f"'{path}' holds no valid histogram: {e}") from None


def _fits(data, name):
    """Whether the array ``name`` of the .npz ``data`` declares no more bytes than
    its member holds (a forged header would make numpy allocate that much)."""
    if f"{name}.npy" not in data.zip.namelist():
        return True                     # not an array: numpy gives its bytes
    member = data.zip.getinfo(f"{name}.npy")
    with data.zip.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
        return math.prod(shape) * dtype.itemsize <= member.file_size


def _keys(colours):
    keys = np.zeros(colours.shape[0], dtype=np.int64)
    for c in range(colours.shape[1]):
        keys = (keys << 8) | colours[:, c]
    return keys


def histogram(image, *, backend="numba"):
    """The colour histogram of an image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
        C is 1, 3 or 4.
    backend : {"numba", "numpy"}, optional

    Returns
    -------
    Histogram
    """
    pixels = _as_pixels(image)
    _check_choice("backend", backend, BACKENDS)
    if backend == "numba":
        colours, counts, _ = nb.histogram(pixels)
    else:
        colours, counts = reference.histogram(pixels)
    return Histogram(colours, counts)


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------
def _psnr(sse, n_values):
    """PSNR in dB of an exact squared error over n_values 8-bit values."""
    return math.inf if sse == 0 else 10 * math.log10(255.0 ** 2 * n_values / sse)


@dataclass
class PaletteFit:
    """Result of :func:`fit_palette`: a k-means palette and how well it fits.

    Attributes
    ----------
    palette : ndarray of shape (k_out, C), dtype uint8
        The colours, in the channel order of the input.  With fully transparent
        pixels in an RGBA image, entry 0 is (0, 0, 0, 0) and the others are the
        k-means of the visible colours.
    centers : ndarray of shape (k_out, C), float64
        The k-means centers in the working space's features (see
        :mod:`kmeans_fast.colour`; for ``space="rgb"`` without alpha, the
        channel values), as the Lloyd steps left them.  The palette is these
        rounded to 8-bit colours, unless the Lloyd steps reached a fixed point
        (the centers stopped moving at all): a few *palette steps* then follow
        (Lloyd steps whose centers stay 8-bit colours, each kept only if it
        lowers the error; :mod:`kmeans_fast.reference`, step 9), and may move
        some entries.
    inertia : int
        Squared error, in the working space's features, of the image against its
        nearest palette entries: sum over pixels of ``|f(pixel) - f(entry)|^2``.
        Exact (an integer).
    sse : int
        The same in the image's own channel values (what PSNR measures):
        ``sum over pixels and channels of (pixel - entry)^2``.
    n_pixels : int
    steps_run : int
        Lloyd steps run (palette steps not counted).
    converged : bool
        True when the centers stopped moving (total squared shift <= tol).
    history : list of float
        The k-means objective of each step's assignment (non-increasing).
    n_distinct : int
        Distinct colours in the histogram.
    space : str
    colour_labels : ndarray of shape (n_distinct,), int32
        Nearest palette entry of each distinct colour of the histogram.
    target_psnr : float or None
        The PSNR asked for, if any (see :func:`fit_palette`).
    search : list of (int, float)
        With a target: every k tried and its PSNR, in the order tried.
    """

    palette: np.ndarray
    centers: np.ndarray
    inertia: int
    sse: int
    n_pixels: int
    steps_run: int
    converged: bool
    history: list = field(default_factory=list)
    n_distinct: int = 0
    space: str = "rgb"
    colour_labels: np.ndarray = field(default=None, repr=False)
    target_psnr: float = None
    search: list = field(default_factory=list)

    @property
    def n_colors(self):
        """Palette entries: k, or fewer when the histogram has fewer colours."""
        return int(self.palette.shape[0])

    @property
    def reached(self):
        """Whether the target PSNR (if any) was reached."""
        return None if self.target_psnr is None else self.psnr >= self.target_psnr

    @property
    def mse(self):
        """Mean squared error per channel value of the undithered result."""
        return self.sse / (self.n_pixels * self.palette.shape[1])

    @property
    def psnr(self):
        """PSNR of the undithered result in dB (inf when exact)."""
        return _psnr(self.sse, self.n_pixels * self.palette.shape[1])


@dataclass
class Quantization:
    """Result of :func:`quantize`.

    Attributes
    ----------
    palette : ndarray of shape (k_out, C), dtype uint8
        See :class:`PaletteFit`.
    labels : ndarray of shape (H, W), dtype uint8 (k_out <= 256) or uint16
        Palette index of every pixel: its nearest palette entry in the working
        space, or the dithered choice.
    centers : ndarray of shape (k_out, C), dtype float64
    inertia, sse : int
        Errors of the nearest-entry (undithered) assignment; see
        :class:`PaletteFit`.
    steps_run, converged, history, n_distinct, space
        See :class:`PaletteFit`.
    method : str
        The path the Lloyd steps took: ``"pixels"`` or ``"histogram"``.
    dither : str
        ``"none"``, ``"fs"`` or ``"ordered"``.
    target_psnr, search
        See :class:`PaletteFit`.
    """

    palette: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    inertia: int
    sse: int
    steps_run: int
    converged: bool
    history: list = field(default_factory=list)
    method: str = "histogram"
    n_distinct: int = 0
    space: str = "rgb"
    dither: str = "none"
    target_psnr: float = None
    search: list = field(default_factory=list)

    @property
    def psnr(self):
        """PSNR in dB of the nearest-entry (undithered) assignment (inf when exact)."""
        return _psnr(self.sse, self.labels.size * self.palette.shape[1])

    def image(self):
        """The quantized image, ndarray (H, W, C) uint8: ``palette[labels]``."""
        from . import _kernels as K
        palette = np.ascontiguousarray(self.palette, dtype=np.uint8)
        out = np.empty(self.labels.shape + palette.shape[1:], dtype=np.uint8)
        labels = np.ascontiguousarray(self.labels).reshape(-1)
        K.paint(palette, labels, out.reshape(-1, palette.shape[1]), nb._workers(labels.size))
        return out


# --------------------------------------------------------------------------
# fit, remap, quantize
# --------------------------------------------------------------------------
def _n_free(colours, n_colors):
    """How many centers k-means places: one less when a transparent entry is reserved."""
    n_points = colours.shape[0]
    if colours.shape[1] == 4 and (colours[:, 3] == 0).any():
        n_points = 1 + int((colours[:, 3] > 0).sum())
        if n_colors < n_points and n_colors >= 2:
            return n_colors - 1
    return n_colors


def _fit(colours, counts, n_colors, *, steps, init, seed, space, tol, backend, progress,
         pixels=None):
    # (a count below the limit times fewer than 2**27 colours cannot overflow int64)
    n_pixels = int(counts.sum()) if int(counts.max()) < MAX_FIT_PIXELS else MAX_FIT_PIXELS
    if n_pixels >= MAX_FIT_PIXELS:
        raise ValueError(f"the histogram holds {n_pixels:,} pixels or more: k-means sums at "
                         f"most {MAX_FIT_PIXELS - 1:,} exactly; fit the palette on part of "
                         "the image (some of its tiles), then remap the whole")
    if not isinstance(init, str):
        init = _check_init(init, (_n_free(colours, n_colors), colours.shape[1]))
    run = nb.fit if backend == "numba" else reference.fit
    out = run(colours, counts, n_colors, steps=steps, init=init, seed=seed, space=space,
              tol=tol, progress=progress, pixels=pixels)
    return PaletteFit(palette=out["palette"], centers=out["centers"],
                      inertia=int(out["inertia"]), sse=int(out["sse"]), n_pixels=int(counts.sum()), steps_run=int(out["steps_run"]),
                      converged=bool(out["converged"]), history=list(out["history"]),
                      n_distinct=int(colours.shape[0]), space=space,
                      colour_labels=np.asarray(out["colour_labels"], dtype=np.int32))


def _fit_for_psnr(colours, counts, max_colors, target, **args):
    """The fit of the smallest k <= max_colors, found by bisection, whose PSNR
    reaches ``target`` (or the fit of max_colors when none does)."""
    tried = {}
    search = []

    def fit(k):
        tried[k] = _fit(colours, counts, k, **args)
        search.append((k, tried[k].psnr))
        return tried[k]

    if fit(max_colors).psnr >= target:
        low, high = 1, max_colors          # invariant: high reaches the target
        while low < high:
            mid = (low + high) // 2
            if fit(mid).psnr >= target:
                high = mid
            else:
                low = mid + 1
        best = tried[high]
    else:
        best = tried[max_colors]
    best.target_psnr = float(target)
    best.search = search
    return best


def _check_target(target_psnr):
    if target_psnr is None:
        return None
    return _check_real("target_psnr", target_psnr, 0.0)


def _check_fit_args(n_colors, steps, init, seed, space, tol, backend, progress):
    n_colors = _check_int("n_colors", n_colors, 1, MAX_COLORS)
    steps = _check_int("steps", steps, 0)
    if isinstance(init, str):
        _check_choice("init", init, INITS)
    _check_choice("space", space, SPACES)
    _check_choice("backend", backend, BACKENDS)
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    tol = _check_real("tol", tol, 0.0)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress={progress!r} must be callable or None")
    return n_colors, steps, seed, tol


def fit_palette(hist, n_colors, *, steps=DEFAULT_STEPS, init="kmeans++", seed=None,
                space="rgb", tol=0.0, backend="numba", progress=None, target_psnr=None):
    """Exact k-means palette of a colour histogram.

    Parameters
    ----------
    hist : Histogram
        From :func:`histogram`, or a sum of several.
    n_colors : int
        Number of colours k, 1 to 65536.  When the histogram has at most k
        distinct colours, the palette is exactly those colours.
    steps : int, optional
        Maximum number of Lloyd steps (>= 0).
    init : {"kmeans++", "random"} or array-like, optional
        Greedy count-weighted k-means++ (default), k distinct colours drawn in
        proportion to their pixel counts, or explicit initial centers of shape
        (k, C) in the image's channel values (k - 1 rows when an RGBA image has
        fully transparent pixels: that entry is reserved).
    seed : int or None, optional
        Seed of ``numpy.random.default_rng``; the same seed gives the same palette
        on every backend, path and thread count.  None draws fresh entropy.
    space : {"rgb", "oklab"}, optional
        Where distances are measured (see :mod:`kmeans_fast.colour`).
    tol : float, optional
        Stop when the total squared center shift of a step is <= tol (default 0:
        when the centers no longer move).
    backend : {"numba", "numpy"}, optional
    progress : callable or None, optional
        ``progress(steps_done, steps)`` before the first Lloyd step and after each
        (of every k tried, with a target).
    target_psnr : float or None, optional
        A quality target in dB: ``n_colors`` is then the most colours allowed,
        and the palette is that of the smallest k whose (undithered) result
        reaches the target PSNR, found by bisection over k (each k its own exact
        k-means, its PSNR exact from the histogram).  When even ``n_colors``
        falls short, its palette is returned (``fit.reached`` is False).

    Returns
    -------
    PaletteFit
    """
    if not isinstance(hist, Histogram):
        raise TypeError(f"hist must be a Histogram, not {type(hist).__name__}")
    n_colors, steps, seed, tol = _check_fit_args(n_colors, steps, init, seed, space, tol,
                                                 backend, progress)
    target_psnr = _check_target(target_psnr)
    args = dict(steps=steps, init=init, seed=seed, space=space, tol=tol, backend=backend,
                progress=progress)
    if target_psnr is not None:
        return _fit_for_psnr(hist.colours, hist.counts, n_colors, target_psnr, **args)
    return _fit(hist.colours, hist.counts, n_colors, **args)


def _nearest_colour_labels(colours, palette, space, backend):
    if backend == "numba":
        feats = colour.features(colours, space)
        pal = colour.features(palette, space).astype(np.float64)
        return nb.nearest_labels(feats, pal)
    return reference.nearest(colours, palette, space)


def remap(image, palette, *, space="rgb", backend="numba"):
    """Label every pixel with its nearest palette entry (ties: lowest index).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
    palette : ndarray of shape (k, C), dtype uint8
        The image's channels; e.g. ``fit_palette(...).palette``.
    space : {"rgb", "oklab"}, optional
        Where distances are measured: use the space the palette was fitted in.
    backend : {"numba", "numpy"}, optional

    Returns
    -------
    ndarray of shape (H, W), dtype uint8 (k <= 256) or uint16
    """
    pixels = _as_pixels(image)
    palette = _check_palette(palette, pixels.shape[1])
    _check_choice("space", space, SPACES)
    _check_choice("backend", backend, BACKENDS)
    labels = np.empty(pixels.shape[0], dtype=_label_dtype(len(palette)))
    if backend == "numba":
        colours, _, lookup = nb.histogram(pixels)
        lookup.remap(pixels, _nearest_colour_labels(colours, palette, space, backend), labels)
    else:
        labels[:] = reference.remap(pixels, palette, space)
    return labels.reshape(image.shape[:2])


def _dither(image, palette, method, strength, space, backend, lookup):
    """Dithered labels: the Numba kernels (reusing the image's colour lookup),
    or the plain reference (a Python loop: small images only)."""
    if backend == "numba":
        from .dither import _dither_image
        return _dither_image(image, palette, method, strength, space,
                             nb._workers(image.shape[0] * image.shape[1]), histogram=lookup)
    from .reference_dither import dither as reference_dither
    return reference_dither(image, palette, method=method, strength=strength, space=space)


def quantize(image, n_colors, *, steps=DEFAULT_STEPS, init="kmeans++", seed=None,
             space="rgb", dither="none", dither_strength=1.0, backend="numba",
             method="auto", tol=0.0, progress=None, target_psnr=None):
    """Reduce an image to at most ``n_colors`` colours with exact k-means.

    The same as ``fit_palette(histogram(image), n_colors, ...)`` followed by
    ``remap(image, fit.palette, space=space)`` (dither="none"), bit for bit.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
        C is 1, 3 or 4; any channel order (the palette keeps it; ``"oklab"``
        reads C = 3 and 4 as RGB and RGBA).
    n_colors : int
        Number of colours k, 1 to 65536.
    steps, init, seed, space, tol, progress, target_psnr
        See :func:`fit_palette` (with ``target_psnr``, ``n_colors`` is the most
        colours allowed).
    dither : {"none", "fs", "ordered"}, optional
        "none": every pixel takes its nearest palette entry.  "fs":
        Floyd-Steinberg error diffusion (serpentine, limited error, fixed bands
        of rows: the same labels at any thread count); "ordered": an 8x8 Bayer
        threshold matrix.  See :mod:`kmeans_fast.dither`.  With
        ``backend="numpy"`` the plain reference dithers, a Python loop over the
        pixels: small images only.
    dither_strength : float, optional
        0 to 1 (default 1): how much of the error is diffused.
    backend : {"numba", "numpy"}, optional
        Compiled parallel kernels (default) or the plain NumPy reference.
    method : {"auto", "pixels", "histogram"}, optional
        Run the Lloyd steps over the distinct colours weighted by their counts,
        or over every pixel (``space="rgb"``, 1 or 3 channels only); both give
        identical results.  "auto" takes the histogram unless nearly every
        pixel has its own colour.

    Returns
    -------
    Quantization
    """
    pixels = _as_pixels(image)
    height, width = image.shape[:2]
    n_colors, steps, seed, tol = _check_fit_args(n_colors, steps, init, seed, space, tol,
                                                 backend, progress)
    _check_choice("method", method, METHODS)
    _check_choice("dither", dither, DITHERS)
    dither_strength = _check_real("dither_strength", dither_strength, 0.0, 1.0)
    target_psnr = _check_target(target_psnr)
    pixel_path_ok = space == "rgb" and pixels.shape[1] in (1, 3)
    if method == "pixels" and not pixel_path_ok:
        raise ValueError(f"method='pixels' needs space='rgb' and 1 or 3 channels (got "
                         f"space={space!r}, {pixels.shape[1]} channels): use 'histogram'")

    if backend == "numba":
        colours, counts, lookup = nb.histogram(pixels)
    else:
        colours, counts = reference.histogram(pixels)
    if method == "auto":
        method = ("pixels" if pixel_path_ok and colours.shape[0] > PIXELS_ABOVE * pixels.shape[0]
                  else "histogram")
    args = dict(steps=steps, init=init, seed=seed, space=space, tol=tol, backend=backend,
                progress=progress, pixels=pixels if method == "pixels" else None)
    if target_psnr is not None:
        fit = _fit_for_psnr(colours, counts, n_colors, target_psnr, **args)
    else:
        fit = _fit(colours, counts, n_colors, **args)
    k_out = len(fit.palette)
    if dither != "none" and dither_strength > 0 and k_out < fit.n_distinct:
        # (with every colour in the palette, dithering changes nothing: skipped)
        labels = _dither(pixels.reshape(height, width, -1), fit.palette, dither,
                         dither_strength, space, backend,
                         lookup if backend == "numba" else None).reshape(-1)
    elif backend == "numba":
        labels = np.empty(pixels.shape[0], dtype=_label_dtype(k_out))
        lookup.remap(pixels, fit.colour_labels, labels)
    else:
        labels = reference.remap_with(pixels, colours, fit.colour_labels).astype(
            _label_dtype(k_out))
    return Quantization(palette=fit.palette, labels=labels.reshape(height, width),
                        centers=fit.centers, inertia=fit.inertia, sse=fit.sse,
                        steps_run=fit.steps_run, converged=fit.converged,
                        history=fit.history, method=method, n_distinct=fit.n_distinct,
                        space=space, dither=dither, target_psnr=fit.target_psnr,
                        search=fit.search)
