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

BLOCK = 128  # points converted and compared per inner block
KPP_BLOCK = 4096  # points per block of the k-means++ potential totals
INT64_MAX = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def _popcount(x):
    # SWAR bit count; LLVM turns this idiom into one popcnt instruction.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def _key(points, p):
    """Colour key of point p: channels packed, channel 0 most significant."""
    key = np.int64(0)
    for c in range(points.shape[1]):
        key = (key << 8) | np.int64(points[p, c])
    return key


@njit(cache=True, inline="always")
def _rank(bitmap, prefix, key):
    """Index of ``key`` among the set bits of ``bitmap`` (its colour index)."""
    word = key >> 6
    below = bitmap[word] & ((np.uint64(1) << np.uint64(key & 63)) - np.uint64(1))
    return prefix[word] + _popcount(below)


# --------------------------------------------------------------------------
# Colour histogram, up to 3 channels: a presence bitmap over all 2**(8C) keys
# (2 MiB for RGB) plus per-word rank prefixes.  Memory stays far below the
# image's size and every lookup is two loads and a popcount.
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def presence_bitmap(pixels, n_workers):
    """Bitmap of the colour keys present in ``pixels``.

    pixels : (N, C) uint8, C <= 3      # IN
    returns (max(1, 2**(8C) / 64),) uint64
    """
    n = pixels.shape[0]
    n_words = max(1, (1 << (8 * pixels.shape[1])) >> 6)
    parts = np.zeros((n_workers, n_words), dtype=np.uint64)
    for t in prange(n_workers):
        for p in range(n * t // n_workers, n * (t + 1) // n_workers):
            key = _key(pixels, p)
            parts[t, key >> 6] |= np.uint64(1) << np.uint64(key & 63)
    bitmap = np.zeros(n_words, dtype=np.uint64)
    for w in prange(n_words):
        v = np.uint64(0)
        for t in range(n_workers):
            v |= parts[t, w]
        bitmap[w] = v
    return bitmap


@njit(cache=True)
def rank_prefix(bitmap):
    """Exclusive prefix sums of the bitmap's per-word bit counts, and the total."""
    prefix = np.empty(bitmap.shape[0], dtype=np.int64)
    total = np.int64(0)
    for w in range(bitmap.shape[0]):
        prefix[w] = total
        total += _popcount(bitmap[w])
    return prefix, total


@njit(parallel=True, cache=True)
def bitmap_colours(bitmap, prefix, n_channels, colours):
    """Unpack the set keys of ``bitmap`` into their colours, in key order.

    colours : (D, C) uint8             # OUT
    """
    for w in prange(bitmap.shape[0]):
        bits = bitmap[w]
        r = prefix[w]
        for b in range(64):
            if (bits >> np.uint64(b)) & np.uint64(1):
                key = w * 64 + b
                for c in range(n_channels):
                    colours[r, c] = (key >> (8 * (n_channels - 1 - c))) & 255
                r += 1


@njit(parallel=True, cache=True)
def bitmap_counts(pixels, bitmap, prefix, counts, n_workers):
    """Pixel count of every colour.  Worker t owns a range of bitmap words, so
    the shared ``counts`` array needs no locks and no per-thread copies.

    pixels : (N, C) uint8              # IN
    counts : (D,) int64, zeroed        # OUT
    """
    n = pixels.shape[0]
    n_words = bitmap.shape[0]
    for t in prange(n_workers):
        lo = n_words * t // n_workers
        hi = n_words * (t + 1) // n_workers
        for p in range(n):
            key = _key(pixels, p)
            word = key >> 6
            if word >= lo and word < hi:
                counts[_rank(bitmap, prefix, key)] += 1


@njit(parallel=True, cache=True)
def bitmap_remap(pixels, bitmap, prefix, colour_labels, labels, n_workers):
    """labels[p] = colour_labels[colour index of pixel p].

    pixels : (N, C) uint8              # IN
    colour_labels : (D,) int           # IN
    labels : (N,) uint8 | uint16       # OUT
    """
    n = pixels.shape[0]
    for t in prange(n_workers):
        for p in range(n * t // n_workers, n * (t + 1) // n_workers):
            labels[p] = colour_labels[_rank(bitmap, prefix, _key(pixels, p))]


# --------------------------------------------------------------------------
# Colour histogram, 4 channels: sorted 32-bit keys.
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def pack_keys(pixels, keys, n_workers):
    """keys[p] = colour key of pixel p.

    pixels : (N, C) uint8, C <= 4      # IN
    keys : (N,) uint32                 # OUT
    """
    n = pixels.shape[0]
    for t in prange(n_workers):
        for p in range(n * t // n_workers, n * (t + 1) // n_workers):
            keys[p] = _key(pixels, p)


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
    n = pixels.shape[0]
    for t in prange(n_workers):
        for p in range(n * t // n_workers, n * (t + 1) // n_workers):
            labels[p] = colour_labels[np.searchsorted(distinct, _key(pixels, p))]


# --------------------------------------------------------------------------
# Lloyd step: the fused assignment + accumulation kernel shared by the pixel
# path (weights=None) and the colour-histogram path (weights=counts).
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _nearest_block(points, s, n, centres, xb, dist, best, arg):
    """Nearest centre of points s..s+n-1 into arg[:n] (ties: lowest index)."""
    n_ch = points.shape[1]
    for c in range(n_ch):
        for i in range(n):
            xb[c, i] = np.float64(points[s + i, c])
    for i in range(n):
        best[i] = np.inf
        arg[i] = 0
    for j in range(centres.shape[0]):
        m = centres[j, 0]
        for i in range(n):
            t = xb[0, i] - m
            dist[i] = t * t
        for c in range(1, n_ch):
            m = centres[j, c]
            for i in range(n):
                t = xb[c, i] - m
                dist[i] += t * t
        for i in range(n):
            d = dist[i]
            closer = d < best[i]
            best[i] = d if closer else best[i]
            arg[i] = j if closer else arg[i]


@njit(parallel=True, cache=True)
def assign_accumulate(points, weights, centres, labels, sums, counts):
    """One Lloyd assignment: nearest centre of every point, with exact sums.

    points : (M, C) uint8              # IN   pixels, or distinct colours
    weights : (M,) int64 or None       # IN   None: every point weighs 1
    centres : (k, C) float64           # IN
    labels : (M,) uint8|uint16|int64   # OUT  nearest centre (ties: lowest index)
    sums : (T, k, C) int64             # OUT  per-worker weighted channel sums
    counts : (T, k) int64              # OUT  per-worker weights
    """
    n_points, n_ch = points.shape
    n_workers = sums.shape[0]
    for t in prange(n_workers):
        sums[t] = 0
        counts[t] = 0
        xb = np.empty((n_ch, BLOCK), dtype=np.float64)
        dist = np.empty(BLOCK, dtype=np.float64)
        best = np.empty(BLOCK, dtype=np.float64)
        arg = np.empty(BLOCK, dtype=np.int64)
        start = n_points * t // n_workers
        stop = n_points * (t + 1) // n_workers
        for s in range(start, stop, BLOCK):
            n = min(BLOCK, stop - s)
            _nearest_block(points, s, n, centres, xb, dist, best, arg)
            for i in range(n):
                j = arg[i]
                labels[s + i] = j
                if weights is None:
                    counts[t, j] += 1
                    for c in range(n_ch):
                        sums[t, j, c] += np.int64(points[s + i, c])
                else:
                    w = weights[s + i]
                    counts[t, j] += w
                    for c in range(n_ch):
                        sums[t, j, c] += w * np.int64(points[s + i, c])


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
            key = _key(points, p)
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
@njit(parallel=True, cache=True)
def kpp_update(planes, counts, closest, centre, block_totals):
    """closest = min(closest, |x - centre|^2), and per-block sums of count*closest.

    planes : (C, D) int32              # IN   distinct colours, planar
    counts : (D,) int64                # IN
    closest : (D,) int64               # INOUT
    centre : (C,) int32                # IN
    block_totals : (ceil(D / KPP_BLOCK),) int64   # OUT
    """
    n_ch, n = planes.shape
    for b in prange(block_totals.shape[0]):
        total = np.int64(0)
        for p in range(b * KPP_BLOCK, min(n, (b + 1) * KPP_BLOCK)):
            d = np.int64(0)
            for c in range(n_ch):
                t = np.int64(planes[c, p] - centre[c])
                d += t * t
            v = min(closest[p], d)
            closest[p] = v
            total += counts[p] * v
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


@njit(parallel=True, cache=True)
def kpp_potentials(planes, counts, closest, candidates, pots):
    """pots[t, q] = sum over worker t's points of count * min(closest, |x - cand_q|^2).

    planes : (C, D) int32              # IN
    counts, closest : (D,) int64       # IN
    candidates : (m, C) int32          # IN
    pots : (T, m) int64                # OUT
    """
    n_ch, n = planes.shape
    n_workers, n_cand = pots.shape
    for t in prange(n_workers):
        dist = np.empty(BLOCK, dtype=np.int64)
        acc = np.zeros(n_cand, dtype=np.int64)
        stop = n * (t + 1) // n_workers
        for s in range(n * t // n_workers, stop, BLOCK):
            m = min(BLOCK, stop - s)
            for q in range(n_cand):
                for i in range(m):
                    dist[i] = 0
                for c in range(n_ch):
                    y = candidates[q, c]
                    for i in range(m):
                        d = np.int64(planes[c, s + i] - y)
                        dist[i] += d * d
                total = np.int64(0)
                for i in range(m):
                    total += counts[s + i] * min(closest[s + i], dist[i])
                acc[q] += total
        pots[t] = acc
