"""Numba kernels of kmeans_fast.

Each kernel does one pass over its data and nothing else; the Python code in
:mod:`kmeans_fast.api` owns the loops, convergence and empty clusters.  Kernel
arguments are marked ``# IN``, ``# OUT`` or ``# INOUT``.

Parallel kernels split their points into ``n_workers`` contiguous ranges and
give each worker private integer accumulators (``sums[t]``, ``counts[t]``),
which are added afterwards.  Integer addition is exact and associative, so the
results are identical for any number of threads.  Floating-point values are
only ever computed per point, with the same operations in the same order as
:mod:`kmeans_fast.reference`, so the two backends agree bit for bit.

No kernel makes a float copy of the image: points are read as uint8 and
converted a block of ``BLOCK`` points at a time into small planar buffers that
the compiler can vectorise over.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 256  # points converted and compared per inner block
KPP_BLOCK = 4096  # points per block of the k-means++ potential totals
SSIM_SHIFT = 128.0  # SSIM's second moments are taken of values minus this
INT32_MAX = np.iinfo(np.int32).max


@njit(cache=True, inline="always")
def _popcount(x):
    # SWAR bit count; LLVM turns this idiom into one popcnt instruction.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def _key(flat, i, n_ch):
    """Colour key of point i of an interleaved uint8 buffer: channel 0 most significant."""
    key = np.int64(0)
    for c in range(n_ch):
        key = (key << 8) | np.int64(flat[n_ch * i + c])
    return key


@njit(cache=True, inline="always")
def _rank(table, key):
    """Index of ``key`` among the keys present (its colour index).

    ``table[w] = (bits of word w, number of bits set before word w)``: both
    halves of a lookup share one cache line.
    """
    word = key >> 6
    below = table[word, 0] & ((np.uint64(1) << np.uint64(key & 63)) - np.uint64(1))
    return np.int64(table[word, 1]) + _popcount(below)


@njit(cache=True, inline="always")
def _share(n, t, n_workers):
    """Worker t's contiguous share [start, stop) of n items."""
    return n * t // n_workers, n * (t + 1) // n_workers


# Loops below index slices from 0 rather than ranges from an offset: Numba then
# drops its negative-index wraparound check and LLVM can vectorise the loop.

# --------------------------------------------------------------------------
# Colour histogram, up to 3 channels: a presence bitmap over all 2**(8C) keys
# (2 MiB for RGB), interleaved with per-word rank prefixes.  Memory stays far
# below the image's size and every lookup is one cache line and a popcount.
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def presence_bitmap(pixels, n_workers):
    """Bitmap of the colour keys present in ``pixels``.

    pixels : (N, C) uint8, C-contiguous, C <= 3   # IN
    returns (max(1, 2**(8C) / 64),) uint64
    """
    n, n_ch = pixels.shape
    flat = pixels.reshape(-1)
    n_words = max(1, (1 << (8 * n_ch)) >> 6)
    parts = np.zeros((n_workers, n_words), dtype=np.uint64)
    for t in prange(n_workers):
        a, b = _share(n, t, n_workers)
        blk = flat[a * n_ch:b * n_ch]
        part = parts[t]
        for i in range(b - a):
            key = _key(blk, i, n_ch)
            part[key >> 6] |= np.uint64(1) << np.uint64(key & 63)
    bitmap = np.zeros(n_words, dtype=np.uint64)
    for t in prange(n_workers):
        a, b = _share(n_words, t, n_workers)
        for t2 in range(n_workers):
            src = parts[t2, a:b]
            dst = bitmap[a:b]
            for w in range(b - a):
                dst[w] |= src[w]
    return bitmap


@njit(cache=True)
def rank_table(bitmap):
    """The lookup table of :func:`_rank` for ``bitmap``, and the number of keys set.

    returns (W, 2) uint64: each word's bits and the bits set before it
    """
    table = np.empty((bitmap.shape[0], 2), dtype=np.uint64)
    total = np.int64(0)
    for w in range(bitmap.shape[0]):
        table[w, 0] = bitmap[w]
        table[w, 1] = total
        total += _popcount(bitmap[w])
    return table, total


@njit(parallel=True, cache=True)
def table_colours(table, n_channels, colours):
    """Unpack the keys present into their colours, in key order.

    table : (W, 2) uint64              # IN   from rank_table
    colours : (D, C) uint8             # OUT
    """
    for w in prange(table.shape[0]):
        bits = table[w, 0]
        r = np.int64(table[w, 1])
        for b in range(64):
            if (bits >> np.uint64(b)) & np.uint64(1):
                key = w * 64 + b
                for c in range(n_channels):
                    colours[r, c] = (key >> (8 * (n_channels - 1 - c))) & 255
                r += 1


@njit(parallel=True, cache=True)
def table_counts(pixels, table, counts, n_workers):
    """Pixel count of every colour.

    With ``n_groups = counts.shape[0]`` pixel groups, worker t counts
    the pixels of group ``t % n_groups`` whose key lies in the bitmap words
    of key range ``t // n_groups``, into ``counts[t % n_groups]``: no
    two workers write the same counter, and memory is n_groups * D counters.

    pixels : (N, C) uint8, C-contiguous   # IN
    table : (W, 2) uint64                 # IN   from rank_table
    counts : (G, D) int32|int64, zeroed   # OUT  per-group counts; sum over axis 0
    """
    n, n_ch = pixels.shape
    flat = pixels.reshape(-1)
    n_groups = counts.shape[0]
    n_ranges = max(1, n_workers // n_groups)
    n_words = table.shape[0]
    for t in prange(n_groups * n_ranges):
        g = t % n_groups
        lo, hi = _share(n_words, t // n_groups, n_ranges)
        a, b = _share(n, g, n_groups)
        blk = flat[a * n_ch:b * n_ch]
        cnt = counts[g]
        for i in range(b - a):
            key = _key(blk, i, n_ch)
            word = key >> 6
            if word >= lo and word < hi:
                cnt[_rank(table, key)] += 1


@njit(parallel=True, cache=True)
def table_remap(pixels, table, colour_labels, labels, n_workers):
    """labels[p] = colour_labels[colour index of pixel p].

    pixels : (N, C) uint8, C-contiguous   # IN
    table : (W, 2) uint64                 # IN   from rank_table
    colour_labels : (D,) int              # IN
    labels : (N,) uint8 | uint16          # OUT
    """
    n, n_ch = pixels.shape
    flat = pixels.reshape(-1)
    for t in prange(n_workers):
        a, b = _share(n, t, n_workers)
        blk = flat[a * n_ch:b * n_ch]
        out = labels[a:b]
        for i in range(b - a):
            out[i] = colour_labels[_rank(table, _key(blk, i, n_ch))]


# --------------------------------------------------------------------------
# Colour histogram, 4 channels: sorted 32-bit keys.
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def pack_keys(pixels, keys, n_workers):
    """keys[p] = colour key of pixel p.

    pixels : (N, C) uint8, C-contiguous, C <= 4   # IN
    keys : (N,) uint32                            # OUT
    """
    n, n_ch = pixels.shape
    flat = pixels.reshape(-1)
    for t in prange(n_workers):
        a, b = _share(n, t, n_workers)
        blk = flat[a * n_ch:b * n_ch]
        out = keys[a:b]
        for i in range(b - a):
            out[i] = _key(blk, i, n_ch)


@njit(cache=True)
def sorted_distinct(keys):
    """Distinct values of sorted ``keys`` and how often each occurs."""
    n = keys.shape[0]
    n_distinct = 0
    for p in range(n):
        if p == 0 or keys[p] != keys[p - 1]:
            n_distinct += 1
    distinct = np.empty(n_distinct, dtype=keys.dtype)
    counts = np.zeros(n_distinct, dtype=np.int64)
    d = -1
    for p in range(n):
        if p == 0 or keys[p] != keys[p - 1]:
            d += 1
            distinct[d] = keys[p]
        counts[d] += 1
    return distinct, counts


@njit(parallel=True, cache=True)
def unpack_keys(keys, n_channels, colours):
    """colours[i] = the colour packed in keys[i].

    colours : (D, C) uint8             # OUT
    """
    for i in prange(keys.shape[0]):
        key = np.int64(keys[i])
        for c in range(n_channels):
            colours[i, c] = (key >> (8 * (n_channels - 1 - c))) & 255


@njit(parallel=True, cache=True)
def sorted_remap(pixels, distinct, colour_labels, labels, n_workers):
    """labels[p] = colour_labels[index of pixel p's key in sorted ``distinct``]."""
    n, n_ch = pixels.shape
    flat = pixels.reshape(-1)
    for t in prange(n_workers):
        a, b = _share(n, t, n_workers)
        blk = flat[a * n_ch:b * n_ch]
        out = labels[a:b]
        for i in range(b - a):
            out[i] = colour_labels[np.searchsorted(distinct, _key(blk, i, n_ch))]


# --------------------------------------------------------------------------
# Lloyd step: the fused assignment + accumulation kernel shared by the pixel
# path (weights=None) and the colour-histogram path (weights=counts).
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _load_block(blk, n, n_ch, x0, x1, x2, x3):
    """Convert n interleaved uint8 points into float64 planes."""
    for i in range(n):
        x0[i] = blk[n_ch * i]
    if n_ch >= 3:
        for i in range(n):
            x1[i] = blk[n_ch * i + 1]
            x2[i] = blk[n_ch * i + 2]
    if n_ch == 4:
        for i in range(n):
            x3[i] = blk[n_ch * i + 3]


@njit(cache=True, inline="always")
def _padded_centres(centres):
    """Centres as a flat (k * 4,) array, missing channels 0.

    A zero channel adds (0 - 0)**2 = +0.0 to a distance, which leaves it
    unchanged, so one 3-channel loop serves C = 1 and C = 3 exactly.
    """
    k, n_ch = centres.shape
    cen = np.zeros(4 * k)
    for j in range(k):
        for c in range(n_ch):
            cen[4 * j + c] = centres[j, c]
    return cen


@njit(cache=True, inline="always")
def _nearest_block(n, n_ch, cen, x0, x1, x2, x3, best, arg):
    """arg[:n] = nearest centre of the block's points (ties: lowest index).

    Distances are ((t0*t0 + t1*t1) + t2*t2) [+ t3*t3] in float64, the order
    the reference uses.  One fused loop per centre keeps it vectorised.
    """
    for i in range(n):
        best[i] = np.inf
        arg[i] = 0
    for j in range(cen.shape[0] // 4):
        m0 = cen[4 * j]
        m1 = cen[4 * j + 1]
        m2 = cen[4 * j + 2]
        m3 = cen[4 * j + 3]
        if n_ch == 4:
            for i in range(n):
                t0 = x0[i] - m0
                t1 = x1[i] - m1
                t2 = x2[i] - m2
                t3 = x3[i] - m3
                d = ((t0 * t0 + t1 * t1) + t2 * t2) + t3 * t3
                closer = d < best[i]
                best[i] = d if closer else best[i]
                arg[i] = j if closer else arg[i]
        else:
            for i in range(n):
                t0 = x0[i] - m0
                t1 = x1[i] - m1
                t2 = x2[i] - m2
                d = (t0 * t0 + t1 * t1) + t2 * t2
                closer = d < best[i]
                best[i] = d if closer else best[i]
                arg[i] = j if closer else arg[i]


@njit(parallel=True, cache=True)
def assign_accumulate(points, weights, centres, labels, sums, counts):
    """One Lloyd assignment: nearest centre of every point, with exact sums.

    points : (M, C) uint8, C-contiguous   # IN   pixels, or distinct colours
    weights : (M,) int64 or None          # IN   None: every point weighs 1
    centres : (k, C) float64              # IN
    labels : (M,) uint8|uint16|int64      # OUT  nearest centre (ties: lowest index)
    sums : (T, k, C) int64                # OUT  per-worker weighted channel sums
    counts : (T, k) int64                 # OUT  per-worker weights
    """
    n_points, n_ch = points.shape
    flat = points.reshape(-1)
    k = centres.shape[0]
    n_workers = sums.shape[0]
    cen = _padded_centres(centres)
    for t in prange(n_workers):
        acc = np.zeros(4 * k, dtype=np.int64)
        cnt = np.zeros(k, dtype=np.int64)
        x0 = np.zeros(BLOCK)
        x1 = np.zeros(BLOCK)
        x2 = np.zeros(BLOCK)
        x3 = np.zeros(BLOCK)
        best = np.empty(BLOCK)
        arg = np.empty(BLOCK, dtype=np.int64)
        start, stop = _share(n_points, t, n_workers)
        for s in range(start, stop, BLOCK):
            n = min(BLOCK, stop - s)
            blk = flat[s * n_ch:(s + n) * n_ch]
            lab = labels[s:s + n]
            _load_block(blk, n, n_ch, x0, x1, x2, x3)
            _nearest_block(n, n_ch, cen, x0, x1, x2, x3, best, arg)
            if weights is None:
                for i in range(n):
                    j = arg[i]
                    lab[i] = j
                    cnt[j] += 1
                    for c in range(n_ch):
                        acc[4 * j + c] += np.int64(blk[n_ch * i + c])
            else:
                wts = weights[s:s + n]
                for i in range(n):
                    j = arg[i]
                    lab[i] = j
                    w = wts[i]
                    cnt[j] += w
                    for c in range(n_ch):
                        acc[4 * j + c] += w * np.int64(blk[n_ch * i + c])
        for j in range(k):
            counts[t, j] = cnt[j]
            for c in range(n_ch):
                sums[t, j, c] = acc[4 * j + c]


@njit(parallel=True, cache=True)
def farthest_points(points, labels, centres, n_want, out_dist, out_keys):
    """Per worker, the ``n_want`` distinct colours farthest from their centre.

    points : (M, C) uint8              # IN
    labels : (M,) int                  # IN   cluster of every point
    centres : (k, C) float64           # IN
    out_dist : (T, n_want) float64     # OUT  -1 where a worker found fewer
    out_keys : (T, n_want) int64       # OUT  sorted by distance desc, key asc
    """
    n_points, n_ch = points.shape
    flat = points.reshape(-1)
    n_workers = out_dist.shape[0]
    for t in prange(n_workers):
        bd = out_dist[t]
        bk = out_keys[t]
        bd[:] = -1.0
        bk[:] = -1
        for p in range(n_points * t // n_workers, n_points * (t + 1) // n_workers):
            j = labels[p]
            tt = np.float64(points[p, 0]) - centres[j, 0]
            d = tt * tt
            for c in range(1, n_ch):
                tt = np.float64(points[p, c]) - centres[j, c]
                d += tt * tt
            key = _key(flat, p, n_ch)
            last = n_want - 1
            if d < bd[last] or (d == bd[last] and key >= bk[last] and bk[last] >= 0):
                continue
            seen = False
            for q in range(n_want):
                if bk[q] == key:
                    seen = True
                    break
            if seen:
                continue
            q = last
            while q > 0 and (d > bd[q - 1] or (d == bd[q - 1] and key < bk[q - 1])):
                bd[q] = bd[q - 1]
                bk[q] = bk[q - 1]
                q -= 1
            bd[q] = d
            bk[q] = key


# --------------------------------------------------------------------------
# Greedy k-means++ in exact integer arithmetic over the colour histogram.
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _int_sq_dist(p0, p1, p2, p3, i, y0, y1, y2, y3):
    t0 = p0[i] - y0
    t1 = p1[i] - y1
    t2 = p2[i] - y2
    t3 = p3[i] - y3
    return t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3


@njit(parallel=True, cache=True)
def kpp_update(planes, counts, closest, centre, block_totals):
    """closest = min(closest, |x - centre|^2), and per-block sums of count*closest.

    planes : (4, D) int32              # IN   distinct colours, planar, missing channels 0
    counts : (D,) int64                # IN
    closest : (D,) int32               # INOUT
    centre : (4,) int32                # IN
    block_totals : (ceil(D / KPP_BLOCK),) int64   # OUT
    """
    n = planes.shape[1]
    y0, y1, y2, y3 = centre[0], centre[1], centre[2], centre[3]
    for b in prange(block_totals.shape[0]):
        a = b * KPP_BLOCK
        e = min(n, a + KPP_BLOCK)
        p0, p1, p2, p3 = planes[0][a:e], planes[1][a:e], planes[2][a:e], planes[3][a:e]
        cl = closest[a:e]
        cn = counts[a:e]
        total = np.int64(0)
        for i in range(e - a):
            v = min(cl[i], _int_sq_dist(p0, p1, p2, p3, i, y0, y1, y2, y3))
            cl[i] = v
            total += cn[i] * v
        block_totals[b] = total


@njit(cache=True)
def kpp_sample(counts, closest, block_totals, draws, out):
    """out[i] = smallest p with cumsum(counts * closest)[p] > draws[i]."""
    n = counts.shape[0]
    for i in range(draws.shape[0]):
        r = draws[i]
        cum = np.int64(0)
        b = 0
        while b < block_totals.shape[0] - 1 and cum + block_totals[b] <= r:
            cum += block_totals[b]
            b += 1
        p = b * KPP_BLOCK
        while p < n - 1:
            cum += counts[p] * closest[p]
            if cum > r:
                break
            p += 1
        out[i] = p


@njit(cache=True)
def _kpp_potential(p0, p1, p2, p3, counts, closest, y0, y1, y2, y3):
    total = np.int64(0)
    for i in range(counts.shape[0]):
        total += counts[i] * min(closest[i], _int_sq_dist(p0, p1, p2, p3, i, y0, y1, y2, y3))
    return total


@njit(parallel=True, cache=True)
def kpp_potentials(planes, counts, closest, candidates, pots):
    """pots[t, q] = sum over worker t's points of count * min(closest, |x - cand_q|^2).

    planes : (4, D) int32              # IN
    counts : (D,) int64                # IN
    closest : (D,) int32               # IN
    candidates : (m, 4) int32          # IN
    pots : (T, m) int64                # OUT
    """
    n = planes.shape[1]
    n_workers, n_cand = pots.shape
    for t in prange(n_workers):
        start = n * t // n_workers
        stop = n * (t + 1) // n_workers
        # Loops index slices from 0: Numba then drops its negative-index
        # wraparound check and the loop vectorises.
        for q in range(n_cand):
            pots[t, q] = _kpp_potential(planes[0][start:stop], planes[1][start:stop],
                                        planes[2][start:stop], planes[3][start:stop],
                                        counts[start:stop],
                                        closest[start:stop], candidates[q, 0],
                                        candidates[q, 1], candidates[q, 2], candidates[q, 3])


# --------------------------------------------------------------------------
# Output and measures.
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def paint(palette, labels, out, n_workers):
    """out[p] = palette[labels[p]]: the quantized image.

    palette : (k, C) uint8             # IN
    labels : (N,) uint8 | uint16       # IN
    out : (N, C) uint8, C-contiguous   # OUT
    """
    n = labels.shape[0]
    n_ch = palette.shape[1]
    flat = out.reshape(-1)
    for t in prange(n_workers):
        a, b = _share(n, t, n_workers)
        lab = labels[a:b]
        dst = flat[a * n_ch:b * n_ch]
        for i in range(b - a):
            j = lab[i]
            for c in range(n_ch):
                dst[n_ch * i + c] = palette[j, c]


# The SSIM kernels are serial and release the GIL: metrics.ssim runs bands of
# rows on Python threads (parallel Numba kernels must not be entered from
# several threads at once under the default threading layer).
@njit(nogil=True, cache=True)
def ssim_products(ya, yb, ab, sq):
    """ab = a' * b' and sq = a'^2 + b'^2 with a' = a - SSIM_SHIFT (likewise b'),
    in float32, for SSIM's local second moments.  (Co)variances do not change
    under the shift, and centring the values keeps float32 cancellation small.

    ya, yb : (H, W) uint8              # IN
    ab, sq : (H, W) float32            # OUT
    """
    shift = np.float32(SSIM_SHIFT)
    for r in range(ya.shape[0]):
        a_row, b_row, ab_row, sq_row = ya[r], yb[r], ab[r], sq[r]
        for i in range(a_row.shape[0]):
            a = np.float32(a_row[i]) - shift
            b = np.float32(b_row[i]) - shift
            ab_row[i] = a * b
            sq_row[i] = a * a + b * b


@njit(nogil=True, cache=True)
def ssim_sum(mu_a, mu_b, e_ab, e_sq, r0, r1, c0, c1, k1, k2):
    """Sum of the SSIM map over rows r0:r1 and columns c0:c1 (float32 map,
    float64 sum, in row order).

    mu_a, mu_b : (H, W) float32        # IN   local means of a and b
    e_ab, e_sq : (H, W) float32        # IN   local E[a'b'] and E[a'^2] + E[b'^2]
    """
    c1_ = np.float32(k1)
    c2_ = np.float32(k2)
    shift = np.float32(SSIM_SHIFT)
    two = np.float32(2)
    total = 0.0
    for r in range(r0, r1):
        ma, mb, ab, sq = mu_a[r][c0:c1], mu_b[r][c0:c1], e_ab[r][c0:c1], e_sq[r][c0:c1]
        for i in range(c1 - c0):
            da = ma[i] - shift
            db = mb[i] - shift
            covariance = ab[i] - da * db
            variances = sq[i] - (da * da + db * db)
            num = (two * ma[i] * mb[i] + c1_) * (two * covariance + c2_)
            den = (ma[i] * ma[i] + mb[i] * mb[i] + c1_) * (variances + c2_)
            total += num / den
    return total
