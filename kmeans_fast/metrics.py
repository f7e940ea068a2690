"""Image quality and size measures: PSNR, SSIM, compression ratio, bits per pixel.

Quality measures compare an 8-bit image with another one, or with a quantized
image given as a palette and labels, which is never painted at full size:

- :func:`psnr`, :func:`ssim`: two images of the same shape;
- :func:`psnr_indexed`, :func:`ssim_indexed`: an image against
  ``palette[labels]``, equal to ``psnr(image, palette[labels])`` and
  ``ssim(image, palette[labels])`` exactly (bit for bit);
- :func:`quality`: both measures of ``palette[labels]`` and, optionally, of a
  second image (the decoded JPEG) in one pass over the image on threads: the
  image's luma and its local means are computed once for both, and every
  result equals the one the single functions give.

PSNR is taken over every value of every channel (alpha included), from an exact
integer sum of squared errors.

SSIM is computed on **luma**, as codec comparisons usually do: colour images
(RGB or RGBA, in that channel order; alpha is ignored) are reduced to 8-bit
BT.601 luma by ``cv2.cvtColor(RGB2GRAY / RGBA2GRAY)`` (``0.299 R + 0.587 G +
0.114 B`` in fixed point, rounded: 14-bit coefficients in OpenCV 4, 15-bit in
OpenCV 5, so the luma is always OpenCV's own, never a copy of its formula);
grayscale images are used as they are.  A palette's luma is a k-entry table.  The SSIM itself follows Wang et al. (2004)
exactly as scikit-image computes it with ``structural_similarity(ya, yb,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``: an 11x11 Gaussian window (sigma 1.5, OpenCV's separable
filter), ``C1 = (0.01 * 255) ** 2``, ``C2 = (0.03 * 255) ** 2``, and the mean
taken over the pixels at least 5 from the border (those whose window lies
inside the image).  It runs in float32 (second moments of values centred on
128), in bands of rows on worker threads, so memory stays small on large
images; the map is summed per row in float64 and the rows with ``math.fsum``,
so the result is the same for any band height and any number of threads.  It
agrees with scikit-image (float64) to about 1e-7 on photos and to about 1e-5
on flat, bright, nearly identical images, where float32 rounding of the local
variances shows; the report prints 4 decimals.

Every quality function takes ``workers``, the number of threads (Numba's
thread count by default); results do not depend on it.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numba
import numpy as np

from . import _metric_kernels as K

__all__ = ["psnr", "ssim", "psnr_indexed", "ssim_indexed", "quality", "size_stats"]

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_WINDOW = 11
_PAD = _WINDOW // 2
_KERNEL = cv2.getGaussianKernel(_WINDOW, 1.5, cv2.CV_32F)
_BAND_PIXELS = 1 << 18      # SSIM and PSNR work in bands of rows of about this many pixels
_TO_LUMA = {3: cv2.COLOR_RGB2GRAY, 4: cv2.COLOR_RGBA2GRAY}


def _luma(x):
    """Luma of x, (h, W, C) uint8, as (h, W) uint8: OpenCV's, or the gray values."""
    if x.shape[2] == 1:
        return x[:, :, 0]
    return cv2.cvtColor(x, _TO_LUMA[x.shape[2]])


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def _check_image(name, x):
    """x as a contiguous (H, W, C) uint8 array, C in 1, 3, 4 (gray gets C = 1)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy ndarray, not {type(x).__name__}")
    if x.dtype != np.uint8:
        raise TypeError(f"{name} has dtype {x.dtype}: images must be uint8")
    if x.ndim not in (2, 3) or x.size == 0 or (x.ndim == 3 and x.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name} has shape {x.shape}: expected a non-empty "
                         "(H, W) or (H, W, C) with C in 1, 3, 4")
    return np.ascontiguousarray(x if x.ndim == 3 else x[:, :, None])


def _check_pair(a, b):
    """Both images as contiguous (H, W, C) uint8 arrays of the same shape."""
    a, b = _check_image("a", a), _check_image("b", b)
    if a.shape != b.shape:
        raise ValueError(f"the images differ in shape: {a.shape} and {b.shape}")
    return a, b


def _workers(workers):
    if workers is None:
        return numba.get_num_threads()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers={workers!r} must be a positive integer")
    return int(workers)


class _Indexed:
    """A checked (image, palette, labels) triple and tables covering every label value."""

    def __init__(self, image, palette, labels):
        self.image = _check_image("image", image)
        height, width, n_ch = self.image.shape
        if not isinstance(palette, np.ndarray) or palette.dtype != np.uint8:
            raise TypeError(f"palette must be a uint8 ndarray, not "
                            f"{getattr(palette, 'dtype', type(palette).__name__)}")
        if palette.ndim == 1 and n_ch == 1:
            palette = palette[:, None]
        if palette.ndim != 2 or palette.shape[1] != n_ch or palette.shape[0] == 0:
            raise ValueError(f"palette has shape {palette.shape}: expected (k, {n_ch}), "
                             f"k >= 1, for an image with {n_ch} channel(s)")
        if not isinstance(labels, np.ndarray) or labels.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"labels must be a uint8 or uint16 ndarray, not "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if labels.shape != (height, width):
            raise ValueError(f"labels have shape {labels.shape}: expected the image's "
                             f"{(height, width)}")
        self.k = palette.shape[0]
        n_table = max(self.k, 1 << (8 * labels.itemsize))
        table = np.zeros((n_table, n_ch), np.uint8)    # no label reads past it
        table[:self.k] = palette
        packed = np.zeros(n_table, np.uint32)           # channel c in bits 8c..8c+7
        for c in range(n_ch):
            packed |= table[:, c].astype(np.uint32) << np.uint32(8 * c)
        self.pal32 = packed.view(np.int32)
        self.lut = np.ascontiguousarray(_luma(table[:, None, :])[:, 0])
        self.labels = np.ascontiguousarray(labels)

    def check_top(self, top):
        if top >= self.k:
            raise ValueError(f"labels hold the value {top} but the palette has {self.k} "
                             f"colours: every label must be below {self.k}")


def _psnr_of(sse, n_values):
    if sse == 0:
        return math.inf
    return 10 * math.log10(255.0 ** 2 * n_values / sse)


# --------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------
def _band_rows(height, width):
    """Rows per band of the PSNR kernels, and the number of bands."""
    band_rows = max(1, _BAND_PIXELS // width)
    return band_rows, -(-height // band_rows)


def psnr(a, b, *, workers=None):
    """Peak signal-to-noise ratio of two 8-bit images, in dB.

    Parameters
    ----------
    a, b : ndarray of shape (H, W) or (H, W, C), dtype uint8
        The images, the same shape; C is 1, 3 or 4.
    workers : int, optional
        Threads; Numba's thread count by default.  The result does not depend on it.

    Returns
    -------
    float
        ``10 * log10(255**2 / MSE)``, the mean squared error taken over every
        value of every channel (from an exact integer sum); ``inf`` when the
        images are identical.
    """
    a, b = _check_pair(a, b)
    band_rows, n_bands = _band_rows(*a.shape[:2])
    band_sse = np.empty(n_bands, np.int64)
    K.pair_sse(a, b, band_rows, _workers(workers), band_sse)
    return _psnr_of(sum(band_sse.tolist()), a.size)


def psnr_indexed(image, palette, labels, *, workers=None):
    """PSNR of the quantized image ``palette[labels]`` against image, in dB.

    Equal to ``psnr(image, palette[labels])`` (the same exact sum of squared
    errors), without painting ``palette[labels]``: one parallel pass over the
    image and the labels.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
        C is 1, 3 or 4.
    palette : ndarray of shape (k, C), dtype uint8
        ``(k,)`` is accepted for a gray image.
    labels : ndarray of shape (H, W), dtype uint8 or uint16
        Palette rows, each below k.
    workers : int, optional
        Threads; Numba's thread count by default.  The result does not depend on it.

    Returns
    -------
    float
        ``inf`` when ``palette[labels]`` equals the image.
    """
    ix = _Indexed(image, palette, labels)
    band_rows, n_bands = _band_rows(*ix.labels.shape)
    band_sse = np.empty(n_bands, np.int64)
    band_top = np.empty(n_bands, np.int64)
    K.indexed_sse(ix.image, ix.pal32, ix.labels, band_rows, _workers(workers),
                  band_sse, band_top)
    ix.check_top(int(band_top.max()))
    return _psnr_of(sum(band_sse.tolist()), ix.image.size)


# --------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------
def _blur(x):
    return cv2.sepFilter2D(x, cv2.CV_32F, _KERNEL, _KERNEL, borderType=cv2.BORDER_REFLECT)


def _bands(height, width):
    """The SSIM map's columns (c0, c1) and its bands of rows.

    Each band is (lo, hi, m0, m1, o0, o1): it reads image rows lo:hi, sums the
    map over rows m0:m1 (whose windows lie in lo:hi) and owns rows o0:o1 for
    the squared error; the owned rows of all bands cover every row once.
    """
    if min(height, width) < _WINDOW:            # too small to crop: the whole map
        return (0, width), [(0, height, 0, height, 0, height)]
    band = max(1, _BAND_PIXELS // width)
    jobs = []
    for m0 in range(_PAD, height - _PAD, band):
        m1 = min(m0 + band, height - _PAD)
        jobs.append((m0 - _PAD, m1 + _PAD, m0, m1,
                     0 if m0 == _PAD else m0, height if m1 == height - _PAD else m1))
    return (_PAD, width - _PAD), jobs


def _measure(image, indexed, other, workers, sse=True):
    """SSIM and squared errors of indexed (an _Indexed of image, or None) and of
    other ((H, W, D) uint8 or None) against image, in one pass of bands on threads.

    Returns ((ssim, sse, top) or None, (ssim, sse) or None).
    """
    height, width = image.shape[:2]
    (c0, c1), jobs = _bands(height, width)
    rows_i = np.zeros(height) if indexed is not None else None
    rows_o = np.zeros(height) if other is not None else None

    def band(job):
        lo, hi, m0, m1, o0, o1 = job
        if not sse:
            o0 = o1 = lo
        img = image[lo:hi]
        shape = img.shape[:2]
        y_a = _luma(img)
        mu_a = _blur(y_a)
        sse_i = top = sse_o = 0
        if indexed is not None:
            y_b = np.empty(shape, np.uint8)
            ab = np.empty(shape, np.float32)
            sq = np.empty(shape, np.float32)
            sse_i, top = K.indexed_band(img, indexed.pal32, indexed.lut, indexed.labels[lo:hi],
                                        y_a, o0 - lo, o1 - lo, y_b, ab, sq)
            K.ssim_rows(mu_a, _blur(y_b), _blur(ab), _blur(sq), m0 - lo, m1 - lo, c0, c1,
                        _C1, _C2, rows_i[m0:m1])
        if other is not None:
            oth = other[lo:hi]
            y_b = _luma(oth)
            ab = np.empty(shape, np.float32)
            sq = np.empty(shape, np.float32)
            sse_o = K.pair_band(img, oth, y_a, y_b, o0 - lo, o1 - lo, ab, sq)
            K.ssim_rows(mu_a, _blur(y_b), _blur(ab), _blur(sq), m0 - lo, m1 - lo, c0, c1,
                        _C1, _C2, rows_o[m0:m1])
        return sse_i, top, sse_o

    n_workers = min(_workers(workers), len(jobs))
    if n_workers == 1:
        parts = [band(job) for job in jobs]
    else:       # OpenCV and the kernels release the GIL
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            parts = list(pool.map(band, jobs))
    m_lo, m_hi = jobs[0][2], jobs[-1][3]
    count = (m_hi - m_lo) * (c1 - c0)
    out_i = out_o = None
    if indexed is not None:
        out_i = (math.fsum(rows_i[m_lo:m_hi]) / count, sum(p[0] for p in parts),
                 max(p[1] for p in parts))
    if other is not None:
        out_o = (math.fsum(rows_o[m_lo:m_hi]) / count, sum(p[2] for p in parts))
    return out_i, out_o


def ssim(a, b, *, workers=None):
    """Mean structural similarity (Wang et al. 2004) of two 8-bit images, on luma.

    Parameters
    ----------
    a, b : ndarray of shape (H, W) or (H, W, C), dtype uint8
        The images, the same shape; C is 1 (gray), 3 (RGB) or 4 (RGBA).
    workers : int, optional
        Threads; Numba's thread count by default.  The result does not depend on it.

    Returns
    -------
    float
        Mean SSIM of the luma of the two images (see the module notes);
        exactly 1.0 for identical images.  Images smaller than 11x11 fall back
        to the mean over every pixel, borders included.
    """
    a, b = _check_pair(a, b)
    return _measure(a, None, b, workers, sse=False)[1][0]


def ssim_indexed(image, palette, labels, *, workers=None):
    """SSIM of the quantized image ``palette[labels]`` against image, on luma.

    Equal, bit for bit, to ``ssim(image, palette[labels])``, without painting
    ``palette[labels]``: its luma is read from a k-entry table, a band of rows
    at a time.

    Parameters
    ----------
    image, palette, labels, workers
        As for :func:`psnr_indexed`.

    Returns
    -------
    float
    """
    ix = _Indexed(image, palette, labels)
    (value, _, top), _ = _measure(ix.image, ix, None, workers)
    ix.check_top(top)
    return value


def quality(image, palette, labels, other=None, *, workers=None):
    """PSNR and SSIM of ``palette[labels]`` and of another image, against image.

    What a pipeline measures after writing a quantized PNG and a JPEG of the
    same picture: decode the JPEG once, pass it as ``other``, and both images
    are measured in one pass of bands on threads, sharing the image's luma and
    local means; neither ``palette[labels]`` nor any full-size luma is made.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
        The reference; C is 1, 3 or 4.
    palette : ndarray of shape (k, C), dtype uint8
    labels : ndarray of shape (H, W), dtype uint8 or uint16
        The quantized image is ``palette[labels]``.
    other : ndarray of shape (H, W) or (H, W, D), dtype uint8, optional
        A second image, D = C; or D = 3 for an RGBA image, whose alpha is then
        left out (a JPEG has none): it is compared with ``image[:, :, :3]``.
    workers : int, optional
        Threads; Numba's thread count by default.  The results do not depend on it.

    Returns
    -------
    indexed : dict
        ``{"psnr": psnr_indexed(image, palette, labels),
        "ssim": ssim_indexed(image, palette, labels)}``.
    other : dict or None
        ``{"psnr": psnr(ref, other), "ssim": ssim(ref, other)}`` with ``ref``
        the image (its colour channels for D = 3 < C = 4); None without other.

    Examples
    --------
    >>> png_q, jpeg_q = quality(pixels, q.palette, q.labels,
    ...                         io.decode_image(jpeg_bytes))       # doctest: +SKIP
    """
    ix = _Indexed(image, palette, labels)
    height, width, n_ch = ix.image.shape
    if other is not None:
        other = _check_image("other", other)
        d = other.shape[2]
        if other.shape[:2] != (height, width) or not (d == n_ch or (d, n_ch) == (3, 4)):
            raise ValueError(f"other has shape {other.shape}: expected ({height}, {width}) or "
                             f"({height}, {width}, {n_ch})" + (", or 3 channels"
                                                               if n_ch == 4 else ""))
    (ssim_i, sse_i, top), part_o = _measure(ix.image, ix, other, workers)
    ix.check_top(top)
    indexed = {"psnr": _psnr_of(sse_i, ix.image.size), "ssim": ssim_i}
    if part_o is None:
        return indexed, None
    return indexed, {"psnr": _psnr_of(part_o[1], other.size), "ssim": part_o[0]}


def size_stats(n_bytes, height, width, channels):
    """How a file of n_bytes compares with the raw pixels it holds.

    Parameters
    ----------
    n_bytes : int
        Size of the file.
    height, width, channels : int
        The image it holds; its raw size is ``height * width * channels`` bytes.

    Returns
    -------
    dict
        ``ratio``: raw bytes / n_bytes, how many times smaller than raw;
        ``bpp``: bits per pixel, ``8 * n_bytes / (height * width)``.
    """
    pixels = height * width
    return {"ratio": pixels * channels / n_bytes if n_bytes else math.inf,
            "bpp": 8.0 * n_bytes / pixels}
