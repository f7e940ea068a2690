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
from ._jit import njit, prange

BLOCK = 256  # points converted and compared per inner block
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
# Colour histogram, up to 3 channels: one pass counts every key in a byte per
# possible key (16 MiB for RGB, per pixel group; counts past 255 are noted
# apart); the keys present make a bitmap over all 2**(8C) keys (2 MiB for RGB),
# interleaved with per-word rank prefixes, so that a colour's index is one
# cache line and a popcount away (dithering looks colours up so).  The remap
# goes through a label per possible colour instead (code_labels, code_remap).
#
# The byte counters and the labels sit at a colour's *code*, not its key: for
# RGB, the key's bits reordered so that near colours are near in memory.  In
# key order (R << 16 | G << 8 | B) a step of 1 in R or G is another cache line
# (64 KiB or 256 bytes away); neighbouring pixels of a photo differ by a few
# levels in every channel, so nearly every pixel missed the core's own caches.
# The code keeps 16x16x16 blocks of colours in one 4 KiB page: its top 12 bits
# interleave the channels' high nibbles (a Z-order curve over the blocks), its
# low 12 bits are R, G and B's low nibbles in key order.  Counting and the
# remap run 1.4-1.5x faster so (24 MP photo, 2 threads).  16 keys that differ
# only in B's low nibble are 16 consecutive codes in the same order, so the
# bitmap in key order is read off the counters 16 at a time.  Gray and
# gray + alpha (64 KiB of counters) keep code = key.
# --------------------------------------------------------------------------
def _code_tables():
    """CODES[C][c, v]: the bits that value v of channel c adds to a colour's
    code, for C channels (the code is the OR over the channels)."""
    codes = np.zeros((4, 3, 256), dtype=np.int64)
    v = np.arange(256, dtype=np.int64)
    for n_ch in (1, 2):
        for c in range(n_ch):
            codes[n_ch, c] = v << (8 * (n_ch - 1 - c))
    high, low = v >> 4, v & 15
    for c in range(3):
        spread = np.zeros(256, dtype=np.int64)
        for b in range(4):                      # bit b of the high nibble
            spread |= ((high >> b) & 1) << (3 * b + 2 - c)
        codes[3, c] = (spread << 12) | (low << (4 * (2 - c)))
    return codes


CODES = _code_tables()


@njit(cache=True, inline="always")
def _code(codes, flat, i, n_ch):
    """Code of point i of an interleaved uint8 buffer (``codes = CODES[n_ch]``)."""
    code = np.int64(0)
    for c in range(n_ch):
        code |= codes[c, flat[n_ch * i + c]]
    return code


def _high_keys():
    """HIGH_KEYS[code >> 12]: the key bits of an RGB code's top 12 bits (the
    three channels' high nibbles)."""
    high = np.arange(4096, dtype=np.int64)
    keys = np.zeros(4096, dtype=np.int64)
    for b in range(4):
        for c in range(3):
            keys |= ((high >> (3 * b + 2 - c)) & 1) << (8 * (2 - c) + 4 + b)
    return keys


HIGH_KEYS = _high_keys()


@njit(cache=True, inline="always")
def _key_of_code(code, n_ch):
    """The key whose code this is (the inverse of :data:`CODES`)."""
    if n_ch < 3:
        return code
    return (HIGH_KEYS[code >> 12] | ((code & 0xF00) << 8) | ((code & 0xF0) << 4)
            | (code & 0xF))


@njit(cache=True, inline="always")
def _code_of_key(codes, key, n_ch):
    code = np.int64(0)
    for c in range(n_ch):
        code |= codes[c, (key >> (8 * (n_ch - 1 - c))) & 255]
    return code


@njit(cache=True, inline="always")
def _count_key(cnt, code, blk, i, n_ch, spill, m):
    """Add one to point i's byte counter (at its code); on a wrap to 0 note
    the point's key.  Returns the spill's length."""
    v = np.uint8(cnt[code] + 1)          # (a sum of uint8 is typed int64: wrap it here)
    cnt[code] = v
    if v == 0:
        spill[m] = _key(blk, i, n_ch)
        m += 1
    return m


@njit(cache=True, inline="always")
def _count_run(cnt, blk, n, n_ch, codes, ranged, first, span, spill):
    """Count points 0..n-1 of blk (only codes in [first, first + span) when
    ``ranged``); returns the spill's length."""
    m = 0
    if ranged:
        for i in range(n):
            code = _code(codes, blk, i, n_ch)
            if np.uint64(code - first) < span:
                m = _count_key(cnt, code, blk, i, n_ch, spill, m)
    else:                  # (a loop without the range test: ~20 % faster)
        for i in range(n):
            m = _count_key(cnt, _code(codes, blk, i, n_ch), blk, i, n_ch, spill, m)
    return m


@njit(parallel=True, cache=True)
def count_keys(pixels, counts, spill, n_spill, n_workers):
    """One pass over the pixels: every colour's count modulo 256 (at its
    code), and the keys whose counts wrapped.

    A byte counter per possible colour (16 MiB for RGB) costs one memory
    access per pixel.  With ``n_groups = counts.shape[0]`` pixel groups, task t
    counts the pixels of group ``t % n_groups`` whose code lies in code range
    ``t // n_groups`` (``max(1, n_workers // n_groups)`` ranges of whole
    64-code words), into ``counts[t % n_groups]``: no two tasks write the same
    byte.  A count that wraps from 255 to 0 notes its key in the task's
    ``spill`` (at most one entry per 256 pixels); :func:`table_histogram`
    adds 256 for each.

    pixels : (N, C) uint8, C-contiguous, C <= 3   # IN
    counts : (G, 2**(8C)) uint8, zeroed           # OUT  counts modulo 256, at codes
    spill : (T, S) int64                          # OUT  keys; S >= (pixels per group) / 256
    n_spill : (T,) int64                          # OUT  entries of each task's spill
    """
    n, n_ch = pixels.shape
    flat = pixels.reshape(-1)
    codes = CODES[n_ch]
    n_groups, n_keys = counts.shape
    n_ranges = max(1, n_workers // n_groups)
    n_words = max(1, n_keys >> 6)
    for t in prange(n_groups * n_ranges):
        g = t % n_groups
        lo, hi = _share(n_words, t // n_groups, n_ranges)
        first = np.int64(lo) << 6
        span = np.uint64((np.int64(hi) << 6) - first)
        a, b = _share(n, g, n_groups)
        blk = flat[a * n_ch:b * n_ch]
        cnt = counts[g]
        out = spill[t]
        if n_ch == 3:      # (a literal channel count: ~1.4x faster loops)
            m = _count_run(cnt, blk, b - a, 3, codes, n_ranges > 1, first, span, out)
        else:
            m = _count_run(cnt, blk, b - a, n_ch, codes, n_ranges > 1, first, span, out)
        n_spill[t] = m


@njit(parallel=True, cache=True)
def key_bitmap(counts, spill, n_spill):
    """Bitmap, in key order, of the keys counted by :func:`count_keys`: a
    non-zero count in any group, or a count that wrapped.

    The counters are read in code order, 8 at a time.  16 consecutive codes
    (from a multiple of 16) are 16 consecutive keys, so each such run gives
    one 16-bit quarter of a bitmap word, written once (no two parts write the
    same quarter).

    counts : (G, 2**(8C)) uint8   # IN   at codes
    spill, n_spill                # IN   from count_keys
    returns (max(1, 2**(8C) / 64),) uint64
    """
    n_groups, n_keys = counts.shape
    n_ch = 1
    while (np.int64(1) << (8 * n_ch)) < n_keys:
        n_ch += 1
    n_words = max(1, n_keys >> 6)
    n_runs = n_keys >> 4
    wide = counts.view(np.uint64)                   # 8 counters per 64-bit word
    bitmap = np.zeros(n_words, dtype=np.uint64)
    quarters = bitmap.view(np.uint16)               # (little-endian: bits 16j.. of word j // 4)
    low7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    high = np.uint64(0x8080808080808080)
    gather = np.uint64(0x0002040810204081)          # bit 8j -> bit 49 + j, no carries
    n_parts = max(1, min(64, n_runs >> 12))
    for p in prange(n_parts):
        a, b = _share(n_runs, p, n_parts)
        for run in range(a, b):
            bits = np.uint64(0)
            for q in range(2):
                x = np.uint64(0)
                for g in range(n_groups):
                    x |= wide[g, 2 * run + q]
                y = ((((x & low7) + low7) | x) & high) >> np.uint64(7)   # bit 8j: byte j > 0
                bits |= (((y * gather) >> np.uint64(49)) & np.uint64(255)) << np.uint64(8 * q)
            quarters[_key_of_code(run << 4, n_ch) >> 4] = np.uint16(bits)
    for t in range(spill.shape[0]):
        for q in range(n_spill[t]):
            key = spill[t, q]
            bitmap[key >> 6] |= np.uint64(1) << np.uint64(key & 63)
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
def table_histogram(table, counts, spill, n_spill, colours, totals):
    """The colours present, in key order, and their pixel counts, from
    :func:`count_keys`: the groups' counts modulo 256, plus 256 for each
    time a count wrapped.

    table : (W, 2) uint64              # IN   from rank_table
    counts : (G, 2**(8C)) uint8        # IN   at codes
    spill : (T, S) int64               # IN   keys
    n_spill : (T,) int64               # IN
    colours : (D, C) uint8             # OUT
    totals : (D,) int64                # OUT
    """
    n_words = table.shape[0]
    n_groups = counts.shape[0]
    n_ch = colours.shape[1]
    codes = CODES[n_ch]
    n_parts = max(1, min(64, n_words >> 10))
    for p in prange(n_parts):
        a, b = _share(n_words, p, n_parts)
        for w in range(a, b):
            bits = table[w, 0]
            if bits == 0:
                continue
            r = np.int64(table[w, 1])
            for j in range(64):
                if (bits >> np.uint64(j)) & np.uint64(1):
                    key = w * 64 + j
                    for c in range(n_ch):
                        colours[r, c] = (key >> (8 * (n_ch - 1 - c))) & 255
                    code = _code_of_key(codes, key, n_ch)
                    total = np.int64(0)
                    for g in range(n_groups):
                        total += np.int64(counts[g, code])
                    totals[r] = total
                    r += 1
    for t in range(spill.shape[0]):
        for q in range(n_spill[t]):
            totals[_rank(table, spill[t, q])] += 256


@njit(parallel=True, cache=True)
def code_labels(colours, colour_labels, lut):
    """lut[code of colour i] = colour_labels[i]: a label per possible colour
    (16 MiB for RGB and uint8 labels); codes of absent colours are not written.

    colours : (D, C) uint8, C-contiguous, C <= 3   # IN
    colour_labels : (D,) uint8|uint16              # IN
    lut : (2**(8C),) uint8|uint16      # OUT  (only the colours' codes)
    """
    n_ch = colours.shape[1]
    codes = CODES[n_ch]
    flat = colours.reshape(-1)
    for i in prange(colours.shape[0]):
        lut[_code(codes, flat, i, n_ch)] = colour_labels[i]


@njit(parallel=True, cache=True)
def code_remap(pixels, lut, labels, n_workers):
    """labels[p] = lut[code of pixel p]: one memory access per pixel (a rank
    through the bitmap is two, and a popcount), near the last one.

    pixels : (N, C) uint8, C-contiguous   # IN
    lut : (2**(8C),) uint8|uint16         # IN   from code_labels
    labels : (N,) uint8|uint16            # OUT
    """
    n, n_ch = pixels.shape
    codes = CODES[n_ch]
    flat = pixels.reshape(-1)
    for t in prange(n_workers):
        a, b = _share(n, t, n_workers)
        blk = flat[a * n_ch:b * n_ch]
        out = labels[a:b]
        if n_ch == 3:      # (a literal channel count: a faster loop)
            for i in range(b - a):
                out[i] = lut[_code(codes, blk, i, 3)]
        else:
            for i in range(b - a):
                out[i] = lut[_code(codes, blk, i, n_ch)]


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
# Lloyd steps.  Points are the pixels (uint8, weight 1) or the features of the
# distinct colours (int32, weighted by their pixel counts).  Both paths find
# the nearest centre with the same block function, in the same arithmetic.
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _load_block(blk, n, n_ch, x0, x1, x2, x3):
    """Convert n interleaved integer points into float64 planes."""
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
def _padded_centers(centers):
    """Centers as a flat (k * 4,) array, missing channels 0.

    A zero channel adds (0 - 0)**2 = +0.0 to a distance, which leaves it
    unchanged, so one 3-channel loop serves C = 1 and C = 3 exactly.
    """
    k, n_ch = centers.shape
    cen = np.zeros(4 * k)
    for j in range(k):
        for c in range(n_ch):
            cen[4 * j + c] = centers[j, c]
    return cen


@njit(cache=True, inline="always")
def _sq_dist(d0, d1, d2, d3, n_ch):
    """Squared distance from per-channel differences, in the documented order:
    ((d0*d0 + d1*d1) + d2*d2) [+ d3*d3]."""
    d = (d0 * d0 + d1 * d1) + d2 * d2
    if n_ch == 4:
        d = d + d3 * d3
    return d


@njit(cache=True, inline="always")
def _nearest_block(n, n_ch, cen, x0, x1, x2, x3, best, arg, second):
    """arg[:n] = nearest center of the block's points (ties: lowest index),
    best[:n] its squared distance and second[:n] the squared distance to the
    nearest other center (second is only filled when ``track_second``).

    One fused loop per center keeps it vectorised.
    """
    track_second = second.shape[0] > 0
    for i in range(n):
        best[i] = np.inf
        arg[i] = 0
    if track_second:
        for i in range(n):
            second[i] = np.inf
    for j in range(cen.shape[0] // 4):
        m0 = cen[4 * j]
        m1 = cen[4 * j + 1]
        m2 = cen[4 * j + 2]
        m3 = cen[4 * j + 3]
        if track_second:
            for i in range(n):
                d = _sq_dist(x0[i] - m0, x1[i] - m1, x2[i] - m2, x3[i] - m3, n_ch)
                closer = d < best[i]
                second[i] = best[i] if closer else min(second[i], d)
                best[i] = d if closer else best[i]
                arg[i] = j if closer else arg[i]
        else:
            for i in range(n):
                d = _sq_dist(x0[i] - m0, x1[i] - m1, x2[i] - m2, x3[i] - m3, n_ch)
                closer = d < best[i]
                best[i] = d if closer else best[i]
                arg[i] = j if closer else arg[i]


@njit(parallel=True, cache=True)
def assign_accumulate(points, weights, centers, labels, sums, counts):
    """One Lloyd assignment: nearest center of every point, with exact sums.

    points : (M, C) uint8 | int32, C-contiguous   # IN   pixels, or colour features
    weights : (M,) int64 or None                  # IN   None: every point weighs 1
    centers : (k, C) float64                      # IN
    labels : (M,) uint8 | uint16 | int32          # OUT  nearest center (ties: lowest index)
    sums : (T, k, C) int64                        # OUT  per-worker weighted channel sums
    counts : (T, k) int64                         # OUT  per-worker weights
    """
    n_points, n_ch = points.shape
    flat = points.reshape(-1)
    k = centers.shape[0]
    n_workers = sums.shape[0]
    cen = _padded_centers(centers)
    for t in prange(n_workers):
        acc = np.zeros(4 * k, dtype=np.int64)
        cnt = np.zeros(k, dtype=np.int64)
        x0 = np.zeros(BLOCK)
        x1 = np.zeros(BLOCK)
        x2 = np.zeros(BLOCK)
        x3 = np.zeros(BLOCK)
        best = np.empty(BLOCK)
        no_second = np.empty(0)
        arg = np.empty(BLOCK, dtype=np.int64)
        start, stop = _share(n_points, t, n_workers)
        for s in range(start, stop, BLOCK):
            n = min(BLOCK, stop - s)
            blk = flat[s * n_ch:(s + n) * n_ch]
            lab = labels[s:s + n]
            _load_block(blk, n, n_ch, x0, x1, x2, x3)
            _nearest_block(n, n_ch, cen, x0, x1, x2, x3, best, arg, no_second)
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


# The tree drops a center for a box only when it is farther than another from
# every point of the box by a margin far above float64 rounding (a few 1e-16
# relative); ties always fall through to a comparison in the arithmetic of
# _nearest_block.
BOUND_SLACK = 1e-9


ERROR_SPLIT = 20      # squared errors are summed as (e >> 20) and (e & (2**20 - 1))


@njit(parallel=True, cache=True)
def weighted_sq_error(points, ref, labels, weights, out):
    """sum(weights * |points - ref[labels]|^2), exactly, in two int64 parts.

    Every squared error e (below 2**36) is added as ``e >> ERROR_SPLIT`` and
    ``e & (2**ERROR_SPLIT - 1)`` times its weight, so neither part overflows for
    any image that fits in memory; the total is ``(out[:, 0].sum() << 20) +
    out[:, 1].sum()`` (Python ints).

    points : (M, C) int32 | uint8          # IN
    ref : (k, C) int32 | uint8              # IN
    labels : (M,) int32                     # IN
    weights : (M,) int64                    # IN
    out : (T, 2) int64                      # OUT  per-worker parts
    """
    n_points, n_ch = points.shape
    n_workers = out.shape[0]
    low_mask = (np.int64(1) << ERROR_SPLIT) - 1
    for t in prange(n_workers):
        a, b = _share(n_points, t, n_workers)
        high = np.int64(0)
        low = np.int64(0)
        for i in range(a, b):
            j = labels[i]
            e = np.int64(0)
            for c in range(n_ch):
                d = np.int64(points[i, c]) - np.int64(ref[j, c])
                e += d * d
            high += weights[i] * (e >> ERROR_SPLIT)
            low += weights[i] * (e & low_mask)
        out[t, 0] = high
        out[t, 1] = low


@njit(parallel=True, cache=True)
def farthest(points, labels, centers, n_want, out_dist, out_index):
    """Per worker, the ``n_want`` points farthest from their center.

    The points are distinct (distinct colours, or pixels of which only the
    first of each colour counts: ``first_of_colour``), so the answer is a set of
    distinct colours.  Order: distance descending, then point index ascending
    (points are in colour-key order, so: smaller key first).

    points : (M, C) uint8 | int32      # IN
    labels : (M,) int                  # IN   cluster of every point
    centers : (k, C) float64           # IN
    out_dist : (T, n_want) float64     # OUT  -1 where a worker found fewer
    out_index : (T, n_want) int64      # OUT
    """
    n_points, n_ch = points.shape
    n_workers = out_dist.shape[0]
    for t in prange(n_workers):
        bd = out_dist[t]
        bi = out_index[t]
        bd[:] = -1.0
        bi[:] = -1
        a, b = _share(n_points, t, n_workers)
        pts = points[a:b]
        lab = labels[a:b]
        last = n_want - 1
        for p in range(b - a):
            j = lab[p]
            tt = np.float64(pts[p, 0]) - centers[j, 0]
            d = tt * tt
            for c in range(1, n_ch):
                tt = np.float64(pts[p, c]) - centers[j, c]
                d += tt * tt
            # index order = scan order, so an equal distance never displaces
            if d <= bd[last]:
                continue
            q = last
            while q > 0 and d > bd[q - 1]:
                bd[q] = bd[q - 1]
                bi[q] = bi[q - 1]
                q -= 1
            bd[q] = d
            bi[q] = a + p


# --------------------------------------------------------------------------
# A tree over the distinct colours' features, for exact pruned k-means++ and
# Lloyd steps.  Points are in tree order (tree_arrange).  Leaves
# hold LEAF consecutive points and the tree is a complete binary tree over the
# leaves (node v has children 2v and 2v + 1; leaves start at node ``size``).
# Every node keeps the bounding box of its points and their weighted sums.
# --------------------------------------------------------------------------
LEAF = 32
TASK_DEPTH = 6          # parallel kernels split the tree into 2**6 fixed subtrees


@njit(cache=True)
def feature_range(points):
    """Least and greatest value of every feature (NumPy's ``min(axis=0)`` reads
    an (M, 3) array with a stride and takes ~10 ms for 700,000 points; this ~1).

    points : (M, F) int32, M >= 1      # IN
    returns (F,) int64 least, (F,) int64 greatest
    """
    n_feat = points.shape[1]
    low = np.empty(n_feat, dtype=np.int64)
    high = np.empty(n_feat, dtype=np.int64)
    for f in range(n_feat):
        low[f] = points[0, f]
        high[f] = points[0, f]
    for i in range(points.shape[0]):
        for f in range(n_feat):
            x = np.int64(points[i, f])
            low[f] = min(low[f], x)
            high[f] = max(high[f], x)
    return low, high


@njit(parallel=True, cache=True)
def tree_arrange(points, weights, low, cell_of, n_bits, tree_points, tree_weights, n_workers):
    """Put the points in tree order: by grid cell, the cells in Morton (Z)
    order, and by index (colour key) within a cell -- a stable counting sort.

    Feature f of a point falls in cell ``cell_of[f, x_f - low[f]]`` (the caller
    fills it with ``(x - min) * 2**n_bits // (max - min + 1)``); the cell's code
    interleaves those numbers' bits, bit b of feature f at position
    ``b * F + F - 1 - f``.  Each worker counts its contiguous share of the
    points per cell, then places them after the cell's points of the shares
    before it: the order is the same for any number of workers.

    points : (D, F) int32          # IN
    weights : (D,) int64           # IN
    low : (F,) int64               # IN   least value of each feature (feature_range)
    cell_of : (F, S) int64         # IN   cell number of each offset from the minimum
    tree_points : (D, F) int32     # OUT  the points in tree order
    tree_weights : (D,) int64      # OUT
    returns order (D,) int64: tree position -> point index
    """
    n_points, n_feat = points.shape
    spread = np.zeros((n_feat, cell_of.shape[1]), dtype=np.int64)
    for f in range(n_feat):
        for s in range(cell_of.shape[1]):
            cell = cell_of[f, s]
            code = np.int64(0)
            for b in range(n_bits):
                code |= ((cell >> b) & 1) << (b * n_feat + n_feat - 1 - f)
            spread[f, s] = code
    n_cells = np.int64(1) << (n_bits * n_feat)
    codes = np.empty(n_points, dtype=np.int64)
    starts = np.zeros((n_workers, n_cells), dtype=np.int64)
    for t in prange(n_workers):
        a, b = _share(n_points, t, n_workers)
        mine = starts[t]
        for i in range(a, b):
            code = np.int64(0)
            for f in range(n_feat):
                code |= spread[f, np.int64(points[i, f]) - low[f]]
            codes[i] = code
            mine[code] += 1
    total = np.int64(0)                 # counts -> first position of each (cell, share)
    for c in range(n_cells):
        for t in range(n_workers):
            count = starts[t, c]
            starts[t, c] = total
            total += count
    order = np.empty(n_points, dtype=np.int64)
    for t in prange(n_workers):
        a, b = _share(n_points, t, n_workers)
        mine = starts[t]
        for i in range(a, b):
            pos = mine[codes[i]]
            mine[codes[i]] += 1
            order[pos] = i
            tree_weights[pos] = weights[i]
            for f in range(n_feat):
                tree_points[pos, f] = points[i, f]
    return order


@njit(cache=True, inline="always")
def _node_depth(v):
    depth = 0
    while (np.int64(1) << (depth + 1)) <= v:
        depth += 1
    return depth


@njit(cache=True, inline="always")
def _node_range(v, depth, size, n_points):
    """The points [a, b) under node v, which is at ``depth`` (the root: 0)."""
    leaves = size >> depth
    first = (v - (np.int64(1) << depth)) * leaves
    return min(n_points, first * LEAF), min(n_points, (first + leaves) * LEAF)


@njit(cache=True)
def build_tree(points, weights, size, lo, hi, sums, wsum):
    """Bounding boxes and weighted sums of every node.

    points : (D, F) int32, tree order      # IN
    weights : (D,) int64                   # IN
    lo, hi : (2 * size, F) int32           # OUT  empty nodes: lo > hi
    sums : (2 * size, F) int64             # OUT  sum of weight * feature
    wsum : (2 * size,) int64               # OUT  sum of weights
    """
    n_points = weights.shape[0]
    n_feat = lo.shape[1]
    for leaf in range(size):
        v = size + leaf
        a = min(n_points, leaf * LEAF)
        b = min(n_points, a + LEAF)
        wsum[v] = weights[a:b].sum()
        for f in range(n_feat):
            low = np.int32(2147483647)
            high = np.int32(-2147483648)
            total = np.int64(0)
            for i in range(a, b):
                x = points[i, f]
                low = min(low, x)
                high = max(high, x)
                total += weights[i] * np.int64(x)
            lo[v, f] = low
            hi[v, f] = high
            sums[v, f] = total
    for v in range(size - 1, 0, -1):
        wsum[v] = wsum[2 * v] + wsum[2 * v + 1]
        for f in range(n_feat):
            lo[v, f] = min(lo[2 * v, f], lo[2 * v + 1, f])
            hi[v, f] = max(hi[2 * v, f], hi[2 * v + 1, f])
            sums[v, f] = sums[2 * v, f] + sums[2 * v + 1, f]


@njit(parallel=True, cache=True)
def assign_tree(points, weights, size, lo, hi, sums, wsum, centers, margin, labels,
                out_sums, out_counts):
    """One exact Lloyd assignment over the tree (the filtering algorithm of
    Kanungo et al. 2002).

    Each node keeps the centers that may be nearest to some point of its box:
    the one nearest to the box's middle, z*, and every other one, z, that is
    not farther than z* from all of the box by more than ``margin``.  The
    difference of the two squared distances is linear in the point, so its
    least value over the box, at the corner farthest toward z, is its value
    at the middle m less the box's reach toward z:
    ``|m - z|^2 - |m - z*|^2 - 2 sum_c |z_c - z*_c| e_c`` (e: the box's
    half-extent).  ``margin`` must exceed the rounding error of any squared
    distance computed here (the caller passes 4e-9 times a bound on the
    squared norms: float64 rounding is ~1e-15).  A node left with one center gives it all its points (their sums
    at once); a leaf with several compares its points with them, in index
    order, with _nearest_block.  So labels and sums are exactly those of a full
    search (ties: lowest index).

    The tree's top ``TASK_DEPTH`` levels cut it into fixed subtrees, dealt to
    the workers in turn (worker t takes subtrees t, t + T, ...): neighbouring
    subtrees cost alike, so the workers finish together.  Each level of the
    descent keeps its candidates' coordinates contiguous (``cxyz``), missing
    channels 0.

    points : (D, F) int32, tree order      # IN
    weights : (D,) int64                   # IN
    size, lo, hi, sums, wsum               # IN   from build_tree
    centers : (k, F) float64               # IN
    margin : float                         # IN
    labels : (D,) int32 or (0,)            # OUT  nearest center, when not empty
    out_sums : (T, k, F) int64             # OUT  per-worker weighted sums
    out_counts : (T, k) int64              # OUT  per-worker weights
    """
    n_points = weights.shape[0]
    k, n_ch = centers.shape
    n_workers = out_sums.shape[0]
    want_labels = labels.shape[0] > 0
    depth_max = 1
    while (np.int64(1) << (depth_max - 1)) < size:
        depth_max += 1
    task_depth = min(TASK_DEPTH, depth_max - 1)
    n_tasks = np.int64(1) << task_depth
    flat = points.reshape(-1)
    for t in prange(n_workers):
        acc = np.zeros((k, n_ch), dtype=np.int64)
        cnt = np.zeros(k, dtype=np.int64)
        cands = np.empty((depth_max + 1, k), dtype=np.int64)
        # (np.empty: only the rows' used fronts are ever touched, so at large k
        # the deep levels' short lists keep it from being resident)
        cxyz = np.empty((depth_max + 1, 4 * k))
        cxyz[0] = _padded_centers(centers)      # level 0, every subtree: all k
        for j in range(k):
            cands[0, j] = j
        stack_node = np.empty(2 * depth_max + 2, dtype=np.int64)
        stack_depth = np.empty(2 * depth_max + 2, dtype=np.int64)
        stack_n = np.empty(2 * depth_max + 2, dtype=np.int64)
        to_middle = np.empty(k)
        x0 = np.zeros(LEAF)
        x1 = np.zeros(LEAF)
        x2 = np.zeros(LEAF)
        x3 = np.zeros(LEAF)
        best_d = np.empty(LEAF)
        arg = np.empty(LEAF, dtype=np.int64)
        no_second = np.empty(0)
        for task in range(t, n_tasks, n_workers):
            stack_node[0] = n_tasks + task
            stack_depth[0] = 0
            stack_n[0] = k
            top = 1
            while top > 0:
                top -= 1
                v = stack_node[top]
                d = stack_depth[top]
                n_c = stack_n[top]
                if wsum[v] == 0:
                    continue
                m0 = 0.5 * (np.float64(lo[v, 0]) + np.float64(hi[v, 0]))
                e0 = 0.5 * (np.float64(hi[v, 0]) - np.float64(lo[v, 0]))
                m1 = 0.0
                m2 = 0.0
                m3 = 0.0
                e1 = 0.0
                e2 = 0.0
                e3 = 0.0
                if n_ch >= 3:
                    m1 = 0.5 * (np.float64(lo[v, 1]) + np.float64(hi[v, 1]))
                    e1 = 0.5 * (np.float64(hi[v, 1]) - np.float64(lo[v, 1]))
                    m2 = 0.5 * (np.float64(lo[v, 2]) + np.float64(hi[v, 2]))
                    e2 = 0.5 * (np.float64(hi[v, 2]) - np.float64(lo[v, 2]))
                if n_ch == 4:
                    m3 = 0.5 * (np.float64(lo[v, 3]) + np.float64(hi[v, 3]))
                    e3 = 0.5 * (np.float64(hi[v, 3]) - np.float64(lo[v, 3]))
                cx = cxyz[d]
                best = 0
                nearest = np.inf
                for q in range(n_c):
                    dd = _sq_dist(m0 - cx[4 * q], m1 - cx[4 * q + 1], m2 - cx[4 * q + 2],
                                  m3 - cx[4 * q + 3], n_ch)
                    to_middle[q] = dd
                    if dd < nearest:
                        nearest = dd
                        best = q
                b0 = cx[4 * best]
                b1 = cx[4 * best + 1]
                b2 = cx[4 * best + 2]
                b3 = cx[4 * best + 3]
                limit = nearest + margin
                nx = cxyz[d + 1]
                cur = cands[d]
                nxt = cands[d + 1]
                m = 0
                for q in range(n_c):
                    reach = ((abs(cx[4 * q] - b0) * e0 + abs(cx[4 * q + 1] - b1) * e1)
                             + abs(cx[4 * q + 2] - b2) * e2) + abs(cx[4 * q + 3] - b3) * e3
                    if q == best or to_middle[q] - 2.0 * reach <= limit:
                        nxt[m] = cur[q]
                        nx[4 * m] = cx[4 * q]
                        nx[4 * m + 1] = cx[4 * q + 1]
                        nx[4 * m + 2] = cx[4 * q + 2]
                        nx[4 * m + 3] = cx[4 * q + 3]
                        m += 1
                a, b = _node_range(v, task_depth + d, size, n_points)
                if m == 1:
                    j = nxt[0]
                    cnt[j] += wsum[v]
                    for c in range(n_ch):
                        acc[j, c] += sums[v, c]
                    if want_labels:
                        labels[a:b] = j
                elif v >= size:
                    n = b - a
                    blk = flat[a * n_ch:b * n_ch]
                    _load_block(blk, n, n_ch, x0, x1, x2, x3)
                    _nearest_block(n, n_ch, nx[:4 * m], x0, x1, x2, x3, best_d, arg,
                                   no_second)
                    wts = weights[a:b]
                    for i in range(n):
                        j = nxt[arg[i]]
                        w = wts[i]
                        cnt[j] += w
                        for c in range(n_ch):
                            acc[j, c] += w * np.int64(blk[n_ch * i + c])
                        if want_labels:
                            labels[a + i] = j
                else:
                    for child in (2 * v + 1, 2 * v):
                        stack_node[top] = child
                        stack_depth[top] = d + 1
                        stack_n[top] = m
                        top += 1
        for j in range(k):
            out_counts[t, j] = cnt[j]
            for c in range(n_ch):
                out_sums[t, j, c] = acc[j, c]


# --------------------------------------------------------------------------
# Greedy k-means++ in exact integer arithmetic, serial, on the tree.
#
# A candidate can only lower the closest distance of points within reach of
# it: a node whose box is farther from the candidate than the largest closest
# distance under it is skipped whole (exact integer comparisons, so the
# potentials are exactly those of the plain algorithm).  One serial call runs
# all k rounds: no parallel launch per round to wait for on a busy machine.
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _box_sq(lo, hi, v, y):
    """Squared distance from y to node v's box (0 inside)."""
    d = np.int64(0)
    for c in range(lo.shape[1]):
        t = np.int64(0)
        if y[c] < lo[v, c]:
            t = np.int64(lo[v, c]) - y[c]
        elif y[c] > hi[v, c]:
            t = y[c] - np.int64(hi[v, c])
        d += t * t
    return d


@njit(cache=True, inline="always")
def _draw(u, total):
    """The integer in [0, total) that the uniform draw u in [0, 1) picks."""
    return min(np.int64(u * np.float64(total)), total - 1)


@njit(cache=True, inline="always")
def _int_sq(points, i, y):
    d = np.int64(0)
    for c in range(points.shape[1]):
        t = np.int64(points[i, c]) - y[c]
        d += t * t
    return d


@njit(cache=True, nogil=True)
def _kpp_visit(points, weights, size, lo, hi, closest, node_total, node_max, y, update,
               stack, visited):
    """Gain of a center at y: sum of weight * (closest - d) over d < closest;
    or, with ``update``, lower ``closest`` and refresh the nodes' totals."""
    n_points = weights.shape[0]
    gain = np.int64(0)
    leaf_depth = _node_depth(size)
    stack[0] = 1
    top = 1
    n_visited = 0
    while top > 0:
        top -= 1
        v = stack[top]
        if node_max[v] == 0 or _box_sq(lo, hi, v, y) >= node_max[v]:
            continue
        if v >= size:
            a, b = _node_range(v, leaf_depth, size, n_points)
            tot = np.int64(0)
            mx = np.int64(0)
            for i in range(a, b):
                d = _int_sq(points, i, y)
                c = closest[i]
                if d < c:
                    if update:
                        closest[i] = d
                        c = d
                    else:
                        gain += weights[i] * (c - d)
                tot += weights[i] * c
                mx = max(mx, c)
            if update:
                node_total[v] = tot
                node_max[v] = mx
        else:
            if update:
                visited[n_visited] = v
                n_visited += 1
            stack[top] = 2 * v + 1
            stack[top + 1] = 2 * v
            top += 2
    for q in range(n_visited - 1, -1, -1):       # children before their parents
        v = visited[q]
        node_total[v] = node_total[2 * v] + node_total[2 * v + 1]
        node_max[v] = max(node_max[2 * v], node_max[2 * v + 1])
    return gain


@njit(cache=True, nogil=True)
def kmeanspp(points, weights, size, lo, hi, first_u, draws_u, chosen):
    """Greedy count-weighted k-means++ (exact integers), all rounds in one call.

    Round 0 picks the point holding pixel ``_draw(first_u, N)`` (points in
    tree order, each holding ``weights`` pixels).  Each further round r maps the
    draws ``draws_u[r - 1]`` through the cumulative sum of ``weight * closest``
    (the first point whose running sum exceeds the draw; point 0 when the sum is
    0), and keeps the candidate with the lowest potential
    ``sum(weight * min(closest, |x - candidate|^2))`` (ties: the first drawn).

    points : (D, F) int32, tree order      # IN   features of at most 12 bits
    weights : (D,) int64                   # IN
    size, lo, hi                           # IN   the tree's boxes (of these points)
    first_u : float                        # IN
    draws_u : (k - 1, L) float64           # IN
    chosen : (k,) int64                    # OUT  indices of the chosen points
    """
    n_points = weights.shape[0]
    n_ch = lo.shape[1]
    big = np.int64(1) << 62
    closest = np.full(n_points, big, dtype=np.int64)
    node_total = np.zeros(2 * size, dtype=np.int64)
    node_max = np.zeros(2 * size, dtype=np.int64)
    for v in range(1, 2 * size):       # every non-empty node: "infinitely far"
        a, b = _node_range(v, _node_depth(v), size, n_points)
        if a < b:
            node_max[v] = big
    y = np.zeros(n_ch, dtype=np.int64)
    stack = np.empty(2 * 64 + 2, dtype=np.int64)
    visited = np.empty(2 * size, dtype=np.int64)

    r = _draw(first_u, weights.sum())
    cum = np.int64(0)
    first = n_points - 1
    for i in range(n_points):
        cum += weights[i]
        if cum > r:
            first = i
            break
    chosen[0] = first
    for c in range(n_ch):
        y[c] = points[first, c]
    _kpp_visit(points, weights, size, lo, hi, closest, node_total, node_max, y, True,
               stack, visited)

    for rnd in range(1, chosen.shape[0]):
        total = node_total[1]
        best_pot = np.int64(0)
        best = -1
        for q in range(draws_u.shape[1]):
            cand = 0
            if total > 0:      # descend by the subtrees' totals, then walk the leaf
                r = _draw(draws_u[rnd - 1, q], total)
                v = 1
                while v < size:
                    if r < node_total[2 * v]:
                        v = 2 * v
                    else:
                        r -= node_total[2 * v]
                        v = 2 * v + 1
                a, b = _node_range(v, _node_depth(size), size, n_points)
                cand = b - 1
                cum = np.int64(0)
                for i in range(a, b):
                    cum += weights[i] * closest[i]
                    if cum > r:
                        cand = i
                        break
            for c in range(n_ch):
                y[c] = points[cand, c]
            pot = total - _kpp_visit(points, weights, size, lo, hi, closest, node_total,
                                     node_max, y, False, stack, visited)
            if best < 0 or pot < best_pot:
                best_pot = pot
                best = cand
        chosen[rnd] = best
        for c in range(n_ch):
            y[c] = points[best, c]
        _kpp_visit(points, weights, size, lo, hi, closest, node_total, node_max, y, True,
                   stack, visited)


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
