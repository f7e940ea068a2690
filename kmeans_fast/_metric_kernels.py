"""Numba kernels of :mod:`kmeans_fast.metrics`.

Kernel arguments are marked ``# IN``, ``# OUT`` or ``# INOUT``.  Images come in
as C-contiguous ``(h, W, C)`` uint8 arrays (gray as ``C = 1``), labels as
``(h, W)`` uint8 or uint16; a quantized image is never painted: its values are
read as ``palette[labels]`` and its luma as ``lut[labels]``.  The palette and
luma tables passed in cover every value the label dtype can hold (256 or
65536 rows), so no label can read outside them; the kernels return the
largest label they met and :mod:`kmeans_fast.metrics` rejects one >= k.

Luma is not computed here: :mod:`kmeans_fast.metrics` takes it from OpenCV's
``cvtColor`` (whose fixed-point coefficients changed between OpenCV 4 and 5),
for the image a band at a time and for a palette once, as a table.

The SSIM kernels are serial and release the GIL: :mod:`kmeans_fast.metrics`
runs bands of rows on Python threads, with OpenCV's Gaussian blur between them
(a parallel Numba kernel must not be entered from several threads at once
under Numba's default threading layer).  Their sums are per row, so the
result does not depend on how rows are cut into bands nor on the thread count.

The PSNR kernel is parallel: bands of ``band_rows`` rows, a contiguous share
of bands per worker, one exact integer sum per band.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit, prange

SSIM_SHIFT = 128.0  # SSIM's second moments are taken of values minus this


@njit(inline="always")
def _share(n, t, n_workers):
    """Worker t's contiguous share [start, stop) of n items."""
    return n * t // n_workers, n * (t + 1) // n_workers


@njit(inline="always")
def _row_sq_err(px, lab, pal32, n_ch):
    """Squared error of one row against packed palette rows, and its largest label.

    px : (W * C,) uint8, lab : (W,) uint8 | uint16, pal32 : (L,) int32.
    """
    total = np.int64(0)
    top = np.int32(0)
    if n_ch == 3:
        for i in range(lab.shape[0]):
            j = np.int32(lab[i])
            top = max(top, j)
            p = pal32[j]
            d0 = np.int32(px[3 * i]) - (p & 255)
            d1 = np.int32(px[3 * i + 1]) - ((p >> 8) & 255)
            d2 = np.int32(px[3 * i + 2]) - ((p >> 16) & 255)
            total += d0 * d0 + d1 * d1 + d2 * d2
    elif n_ch == 4:
        for i in range(lab.shape[0]):
            j = np.int32(lab[i])
            top = max(top, j)
            p = pal32[j]
            d0 = np.int32(px[4 * i]) - (p & 255)
            d1 = np.int32(px[4 * i + 1]) - ((p >> 8) & 255)
            d2 = np.int32(px[4 * i + 2]) - ((p >> 16) & 255)
            d3 = np.int32(px[4 * i + 3]) - ((p >> 24) & 255)
            total += d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
    else:
        for i in range(lab.shape[0]):
            j = np.int32(lab[i])
            top = max(top, j)
            d0 = np.int32(px[i]) - pal32[j]
            total += d0 * d0
    return total, top


@njit(inline="always")
def _row_sq_diff(px, qx, n_ch, m_ch):
    """Squared error of one row of m_ch-channel pixels qx against the first m_ch
    channels of n_ch-channel pixels px (m_ch <= n_ch)."""
    total = np.int64(0)
    if n_ch == m_ch:
        for i in range(qx.shape[0]):
            d = np.int32(px[i]) - np.int32(qx[i])
            total += d * d
    else:
        for i in range(qx.shape[0] // m_ch):
            for c in range(m_ch):
                d = np.int32(px[n_ch * i + c]) - np.int32(qx[m_ch * i + c])
                total += d * d
    return total


@njit(inline="always")
def _products(y_a, y_b, ab, sq, n):
    """ab = a' * b', sq = a'^2 + b'^2 in float32, a' = a - SSIM_SHIFT (likewise b').

    (Co)variances do not change under the shift, and centred values keep
    float32 cancellation small in E[a'b'] - E[a']E[b'].
    """
    shift = np.float32(SSIM_SHIFT)
    for i in range(n):
        a = np.float32(y_a[i]) - shift
        b = np.float32(y_b[i]) - shift
        ab[i] = a * b
        sq[i] = a * a + b * b


@njit(nogil=True)
def indexed_band(image, pal32, lut, labels, y_a, s0, s1, y_b, ab, sq):
    """SSIM inputs of a band of rows of palette[labels] against image, and the
    squared error of rows s0:s1.

    image : (h, W, C) uint8                # IN
    pal32 : (L,) int32                     # IN   packed palette, L covers every label value
    lut : (L,) uint8                       # IN   luma of each palette row
    labels : (h, W) uint8 | uint16         # IN
    y_a : (h, W) uint8                     # IN   luma of image
    y_b : (h, W) uint8                     # OUT  luma of palette[labels]: lut[labels]
    ab, sq : (h, W) float32                # OUT  see _products
    returns (sum over rows s0:s1 of (image - palette[labels])**2, largest label there)
    """
    height, width, n_ch = image.shape
    sse = np.int64(0)
    top = np.int32(0)
    for r in range(height):
        lab, yb = labels[r], y_b[r]
        for i in range(width):
            yb[i] = lut[lab[i]]
        _products(y_a[r], yb, ab[r], sq[r], width)
        if s0 <= r < s1:
            row, row_top = _row_sq_err(image[r].reshape(-1), lab, pal32, n_ch)
            sse += row
            top = max(top, row_top)
    return sse, top


@njit(nogil=True)
def pair_band(image, other, y_a, y_b, s0, s1, ab, sq):
    """SSIM inputs of a band of rows of other against image, and the squared
    error of rows s0:s1 over other's channels.

    image : (h, W, C) uint8                # IN
    other : (h, W, D) uint8, D <= C        # IN   compared with image[:, :, :D]
    y_a, y_b : (h, W) uint8                # IN   luma of image, of other
    ab, sq : (h, W) float32                # OUT  see _products
    returns the sum over rows s0:s1 of (image[..., :D] - other)**2
    """
    height, width, n_ch = image.shape
    m_ch = other.shape[2]
    sse = np.int64(0)
    for r in range(height):
        _products(y_a[r], y_b[r], ab[r], sq[r], width)
        if s0 <= r < s1:
            sse += _row_sq_diff(image[r].reshape(-1), other[r].reshape(-1), n_ch, m_ch)
    return sse


@njit(nogil=True, error_model="numpy")
def ssim_rows(mu_a, mu_b, e_ab, e_sq, r0, r1, c0, c1, k1, k2, out):
    """out[r - r0] = sum of the SSIM map over columns c0:c1 of row r, for r in r0:r1.

    The map is float32; each row's values are summed in float64 in 8 lanes
    (lane l takes columns c0 + l, c0 + l + 8, ...; the lanes are then added
    pairwise, then the columns left over), a fixed order the compiler can
    vectorise.  error_model="numpy" drops Numba's division-by-zero check (it
    would stop vectorisation); no denominator can be zero, both factors being
    at least C1 and C2 (variances are >= 0 up to float32 rounding, far below C2).

    mu_a, mu_b : (h, W) float32            # IN   local means of a and b
    e_ab, e_sq : (h, W) float32            # IN   local E[a'b'] and E[a'^2] + E[b'^2]
    out : (r1 - r0,) float64               # OUT
    """
    c1_ = np.float32(k1)
    c2_ = np.float32(k2)
    shift = np.float32(SSIM_SHIFT)
    two = np.float32(2)
    n = c1 - c0
    v = np.empty(n, np.float32)
    m = n - n % 8
    for r in range(r1 - r0):
        ma, mb = mu_a[r0 + r][c0:c1], mu_b[r0 + r][c0:c1]
        ab, sq = e_ab[r0 + r][c0:c1], e_sq[r0 + r][c0:c1]
        for i in range(n):
            da = ma[i] - shift
            db = mb[i] - shift
            covariance = ab[i] - da * db
            variances = sq[i] - (da * da + db * db)
            num = (two * ma[i] * mb[i] + c1_) * (two * covariance + c2_)
            den = (ma[i] * ma[i] + mb[i] * mb[i] + c1_) * (variances + c2_)
            v[i] = num / den
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for i in range(0, m, 8):
            blk = v[i:i + 8]
            a0 += blk[0]
            a1 += blk[1]
            a2 += blk[2]
            a3 += blk[3]
            a4 += blk[4]
            a5 += blk[5]
            a6 += blk[6]
            a7 += blk[7]
        rest = 0.0
        for i in range(n - m):
            rest += v[m + i]
        out[r] = (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + rest


@njit(parallel=True)
def indexed_sse(image, pal32, labels, band_rows, n_workers, band_sse, band_top):
    """Squared error of palette[labels] against image, per band of rows.

    image : (H, W, C) uint8                # IN
    pal32 : (L,) int32                     # IN   packed palette, L covers every label value
    labels : (H, W) uint8 | uint16         # IN
    band_sse : (n_bands,) int64            # OUT  band b: rows b*band_rows onwards
    band_top : (n_bands,) int64            # OUT  largest label in the band
    """
    height, width, n_ch = image.shape
    n_bands = band_sse.shape[0]
    for t in prange(n_workers):
        b0, b1 = _share(n_bands, t, n_workers)
        for b in range(b0, b1):
            sse = np.int64(0)
            top = np.int32(0)
            r0 = b * band_rows
            for r in range(min(band_rows, height - r0)):
                row, row_top = _row_sq_err(image[r0 + r].reshape(-1), labels[r0 + r], pal32, n_ch)
                sse += row
                top = max(top, row_top)
            band_sse[b] = sse
            band_top[b] = top


@njit(parallel=True)
def pair_sse(image, other, band_rows, n_workers, band_sse):
    """Squared error of other against image[:, :, :D], per band of rows.

    image : (H, W, C) uint8                # IN
    other : (H, W, D) uint8, D <= C        # IN
    band_sse : (n_bands,) int64            # OUT  band b: rows b*band_rows onwards
    """
    height, width, n_ch = image.shape
    m_ch = other.shape[2]
    n_bands = band_sse.shape[0]
    for t in prange(n_workers):
        b0, b1 = _share(n_bands, t, n_workers)
        for b in range(b0, b1):
            sse = np.int64(0)
            r0 = b * band_rows
            for r in range(min(band_rows, height - r0)):
                sse += _row_sq_diff(image[r0 + r].reshape(-1), other[r0 + r].reshape(-1),
                                    n_ch, m_ch)
            band_sse[b] = sse
