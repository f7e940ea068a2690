"""Image quality and size measures: PSNR, SSIM, compression ratio, bits per pixel.

Both quality measures take two 8-bit images of the same shape and are
vectorised with OpenCV, so they cost a small fraction of a k-means run: on a
24-megapixel photo, PSNR takes a few milliseconds and SSIM about 0.2 s on two
cores.

PSNR is taken over every value of every channel (alpha included).

SSIM is computed on **luma**, as codec comparisons usually do: colour images
(RGB or RGBA, in that channel order; alpha is ignored) are first reduced to
8-bit BT.601 luma with ``cv2.cvtColor`` (``0.299 R + 0.587 G + 0.114 B``,
rounded), grayscale images are used as they are.  The SSIM itself follows
Wang et al. (2004) exactly as scikit-image computes it with
``structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)``: an 11x11 Gaussian window
(sigma 1.5), ``C1 = (0.01 * 255) ** 2``, ``C2 = (0.03 * 255) ** 2``, and the
mean taken over the pixels at least 5 from the border (those whose window lies
inside the image).  It runs in float32 (second moments of values centred on
128), in bands of rows on worker threads, so memory stays small on large
images.  It agrees with scikit-image (float64) to about 1e-7 on photos and to
about 1e-5 on flat, bright, nearly identical images, where float32 rounding of
the local variances shows; the report prints 4 decimals.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from . import _kernels as K

__all__ = ["psnr", "ssim", "size_stats"]

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_WINDOW = 11
_PAD = _WINDOW // 2
_KERNEL = cv2.getGaussianKernel(_WINDOW, 1.5, cv2.CV_32F)
_BAND_PIXELS = 1 << 18      # SSIM works in bands of rows of about this many pixels
_TO_LUMA = {3: cv2.COLOR_RGB2GRAY, 4: cv2.COLOR_RGBA2GRAY}


def _check_pair(a, b):
    """Both images as contiguous (H, W) or (H, W, C) uint8 arrays, C in 2..4."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy ndarray, not {type(x).__name__}")
        if x.dtype != np.uint8:
            raise TypeError(f"{name} has dtype {x.dtype}: both images must be uint8")
    if a.shape != b.shape:
        raise ValueError(f"the images differ in shape: {a.shape} and {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0 or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"the images have shape {a.shape}: expected a non-empty "
                         "(H, W) or (H, W, C) with C in 1, 3, 4")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[:, :, 0], b[:, :, 0]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def psnr(a, b):
    """Peak signal-to-noise ratio of two 8-bit images, in dB.

    Parameters
    ----------
    a, b : ndarray of shape (H, W) or (H, W, C), dtype uint8
        The images, the same shape; C is 1, 3 or 4.

    Returns
    -------
    float
        ``10 * log10(255**2 / MSE)``, the mean squared error taken over every
        value of every channel; ``inf`` when the images are identical.
    """
    a, b = _check_pair(a, b)
    sse = cv2.norm(a, b, cv2.NORM_L2SQR)        # exact: integer sums far below 2**53
    if sse == 0:
        return math.inf
    return 10 * math.log10(255.0 ** 2 * a.size / sse)


def _blur(x):
    return cv2.sepFilter2D(x, cv2.CV_32F, _KERNEL, _KERNEL, borderType=cv2.BORDER_REFLECT)


def _ssim_band_sum(ya, yb, r0, r1, c0, c1):
    """Sum of the SSIM map of luma images ya, yb over rows r0:r1, columns c0:c1."""
    ab = np.empty(ya.shape, np.float32)
    sq = np.empty(ya.shape, np.float32)
    K.ssim_products(ya, yb, ab, sq)
    return K.ssim_sum(_blur(ya), _blur(yb), _blur(ab), _blur(sq), r0, r1, c0, c1, _C1, _C2)


def _luma(x):
    return x if x.ndim == 2 else cv2.cvtColor(x, _TO_LUMA[x.shape[2]])


def ssim(a, b):
    """Mean structural similarity (Wang et al. 2004) of two 8-bit images, on luma.

    Parameters
    ----------
    a, b : ndarray of shape (H, W) or (H, W, C), dtype uint8
        The images, the same shape; C is 1 (gray), 3 (RGB) or 4 (RGBA).

    Returns
    -------
    float
        Mean SSIM of the luma of the two images (see the module notes);
        exactly 1.0 for identical images.  Images smaller than 11x11 fall back
        to the mean over every pixel, borders included.
    """
    ya, yb = (_luma(x) for x in _check_pair(a, b))
    height, width = ya.shape
    if min(height, width) < _WINDOW:            # too small to crop: the whole map
        return _ssim_band_sum(ya, yb, 0, height, 0, width) / (height * width)
    band = max(1, _BAND_PIXELS // width)
    # Map rows r0:r1 need luma rows r0-5 .. r1+5.  Bands run on threads (OpenCV
    # and the kernels release the GIL) and their sums are added in band order.
    jobs = [(r0, min(r0 + band, height - _PAD)) for r0 in range(_PAD, height - _PAD, band)]

    def band_sum(rows):
        r0, r1 = rows
        lo, hi = r0 - _PAD, r1 + _PAD
        return _ssim_band_sum(ya[lo:hi], yb[lo:hi], _PAD, _PAD + r1 - r0, _PAD, width - _PAD)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        total = sum(pool.map(band_sum, jobs))
    return total / ((height - 2 * _PAD) * (width - 2 * _PAD))


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
