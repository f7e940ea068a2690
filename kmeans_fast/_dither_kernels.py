"""Numba kernels of :mod:`kmeans_fast.dither`.

The algorithm is described in :mod:`kmeans_fast.dither` and written out
plainly, pixel by pixel, in :mod:`kmeans_fast.reference_dither`; these kernels
do the same float64 operations in the same order, so both give identical
labels.  Kernel arguments are marked ``# IN``, ``# OUT`` or ``# INOUT``.

Colours are handled as four float64 features ``x0..x3``: images with fewer
channels pad the missing ones with 0.0, which adds exactly +0.0 to every
squared distance and norm, so one code path serves C = 1, 3 and 4 exactly.

**Where a pixel's features come from** (``mode``):

``DIRECT``
    space "rgb", C = 1 or 3: the features are the bytes themselves.  A pixel
    *snaps* (see below) exactly when its colour is a palette colour: a bitmap
    over all colour keys (``pbits``) says so, and the lowest palette index of
    that colour is found in the sorted palette keys ``pkeys``.
``TABLE``
    C <= 3: the pixel's distinct-colour index is the rank of its key in the
    colour histogram's presence bitmap (:func:`kmeans_fast._kernels._rank`).
``KEYS``
    C = 4: the index is the position of its key in the sorted distinct keys.

In the last two modes ``drec[d]`` is distinct colour d's record: its integer
features (padded with 0) and, in its last column, its snapped label (or -1);
4 int32 for C <= 3 (16 bytes), 8 for C = 4, so a pixel reads one cache line.

**Nearest palette entry** (:func:`_nearest`): a uniform grid over feature
space lists, per cell, the entries that can be nearest to some point of the
cell (:func:`_cell_list`: every entry whose half-space "closer to j than to
the entry nearest the cell centre" meets the cell).  The nearest entry of any
point of the cell, and every entry tied with it, is on that list; lists are in
increasing index order and a strict ``<`` keeps the first, so the answer is
exactly the brute-force one (ties: lowest index).  The test is loosened by a
relative 1e-9 and each cell box by 1e-6 of a cell, far above float64
rounding.  Points outside the grid use brute force.  The grid is built coarse
to fine: a cell's list is taken from its parent cell's list, which holds
every entry that can be nearest in the parent, hence in the cell.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._kernels import _key, _rank, _share

DIRECT = 0
TABLE = 1
KEYS = 2

# Floyd-Steinberg weights: ahead (same row), behind-below, below, ahead-below.
FS_AHEAD = 7.0 / 16.0
FS_BEHIND_BELOW = 3.0 / 16.0
FS_BELOW = 5.0 / 16.0
FS_AHEAD_BELOW = 1.0 / 16.0

LANES = 4               # Floyd-Steinberg bands run in lockstep per worker
BAYER_SIZE = 8          # ordered dither: 8 x 8 Bayer matrix
BAYER_MASK = BAYER_SIZE - 1
BAYER_SHIFT_ROW = 3     # channel c reads the matrix shifted by (3c, 5c)
BAYER_SHIFT_COL = 5

_LIST_SLACK = 1e-9      # relative loosening of the candidate-list bound


# --------------------------------------------------------------------------
# Grid of candidate lists
# --------------------------------------------------------------------------
@njit(cache=True)
def _cell_list(pal4, norm2, lo, hi, pcand, out):
    """Candidates, among the parent cell's list ``pcand``, of the box [lo, hi];
    written to ``out`` when it has room; returns their number.

    ``e`` is the listed entry nearest to the box centre.  Entry j can be
    nearest at a point x only if |x - j|^2 <= |x - e|^2, i.e. if
    ``|j|^2 - |e|^2 + 2 x.(e - j) <= 0``; the left side is linear in x, so its
    minimum over the box is exact to compute, and j is kept when that minimum
    is <= 1e-9 times the magnitudes involved (|j|^2, |e|^2, |x|^2, |2 x.(e - j)|:
    the float64 rounding of both this test and the brute-force distances is
    some 1e-16 of them).  Every entry nearest (or tied nearest) to some point
    of the box is kept, and kept in the parent's order (increasing index).

    norm2 : (k,) float64               # IN   squared norms of the entries
    """
    centre = np.empty(4)
    far = np.empty(4)
    box2 = 0.0
    for c in range(4):
        centre[c] = 0.5 * (lo[c] + hi[c])
        far[c] = max(abs(lo[c]), abs(hi[c]))
        box2 += far[c] * far[c]
    best = np.inf
    e = pcand[0]
    for q in range(pcand.shape[0]):
        j = pcand[q]
        d = 0.0
        for c in range(4):
            u = centre[c] - pal4[j, c]
            d += u * u
        if d < best:
            best = d
            e = j
    m = 0
    for q in range(pcand.shape[0]):
        j = pcand[q]
        keep = j == e
        if not keep:
            v = norm2[j] - norm2[e]
            size = norm2[j] + norm2[e] + box2
            for c in range(4):
                w = 2.0 * (pal4[e, c] - pal4[j, c])
                v += min(w * lo[c], w * hi[c])
                size += abs(w) * far[c]
            keep = v <= _LIST_SLACK * size
        if keep:
            if m < out.shape[0]:
                out[m] = j
            m += 1
    return m


@njit(parallel=True, cache=True)
def grid_lists(pal4, norm2, side_lo, side_hi, gn, parent_of, pgn, pstart, pcand, counts,
               single, start, cand):
    """Candidate list of every cell, from the parent grid's lists.

    Cell (i0, i1, i2, i3) spans [side_lo[c, i_c], side_hi[c, i_c]] in feature c
    and lies inside parent cell (parent_of[c, i_c])_c.  With ``cand`` empty,
    counts the lists (and keeps one-entry lists in ``single``); else fills
    them in at ``start`` (one-entry lists from ``single``).

    pal4 : (k, 4) float64              # IN   palette features, padded with 0
    norm2 : (k,) float64               # IN   their squared norms
    side_lo, side_hi : (4, n) float64  # IN   cell intervals per feature, enlarged
    gn, pgn : (4,) int64               # IN   cells per feature, here and in the parent grid
    parent_of : (4, n) int64           # IN
    pstart, pcand                      # IN   the parent grid's lists
    counts : (n_cells,) uint32         # OUT  list lengths (IN when filling)
    single : (n_cells,) uint16         # OUT  the entry of one-entry lists (IN when filling)
    start : (n_cells + 1,) uint32      # IN   offsets, when filling
    cand : (start[-1],) uint16         # OUT  entry indices, when filling
    """
    fill = cand.shape[0] > 0
    for i0 in prange(gn[0]):
        lo = np.empty(4)
        hi = np.empty(4)
        first = np.empty(1, dtype=pcand.dtype)
        lo[0] = side_lo[0, i0]
        hi[0] = side_hi[0, i0]
        for i1 in range(gn[1]):
            lo[1] = side_lo[1, i1]
            hi[1] = side_hi[1, i1]
            for i2 in range(gn[2]):
                lo[2] = side_lo[2, i2]
                hi[2] = side_hi[2, i2]
                for i3 in range(gn[3]):
                    lo[3] = side_lo[3, i3]
                    hi[3] = side_hi[3, i3]
                    cell = ((i0 * gn[1] + i1) * gn[2] + i2) * gn[3] + i3
                    parent = (((parent_of[0, i0] * pgn[1] + parent_of[1, i1]) * pgn[2]
                               + parent_of[2, i2]) * pgn[3] + parent_of[3, i3])
                    plist = pcand[pstart[parent]:pstart[parent + 1]]
                    if plist.shape[0] == 1:       # the parent's only entry is the cell's
                        if fill:
                            cand[start[cell]] = plist[0]
                        else:
                            counts[cell] = 1
                    elif not fill:
                        counts[cell] = _cell_list(pal4, norm2, lo, hi, plist, first)
                        single[cell] = first[0]
                    elif counts[cell] == 1:
                        cand[start[cell]] = single[cell]
                    else:
                        _cell_list(pal4, norm2, lo, hi, plist, cand[start[cell]:start[cell + 1]])


@njit(cache=True, inline="always")
def _sq_dist(pal4, j, four, t0, t1, t2, t3):
    """Squared distance in the reference's order: ((d0 + d1) + d2) [+ d3]."""
    u0 = t0 - pal4[j, 0]
    u1 = t1 - pal4[j, 1]
    u2 = t2 - pal4[j, 2]
    d = (u0 * u0 + u1 * u1) + u2 * u2
    if four:
        u3 = t3 - pal4[j, 3]
        d = d + u3 * u3
    return d


@njit(cache=True, inline="always")
def _nearest(t0, t1, t2, t3, four, pal4, glo, ginv, gn, start, cand):
    """Index of the palette entry nearest to (t0, t1, t2, t3); ties: lowest index."""
    u0 = (t0 - glo[0]) * ginv[0]
    u1 = (t1 - glo[1]) * ginv[1]
    u2 = (t2 - glo[2]) * ginv[2]
    u3 = (t3 - glo[3]) * ginv[3]
    best = np.inf
    arg = 0
    if (u0 >= 0.0 and u0 < gn[0] and u1 >= 0.0 and u1 < gn[1]
            and u2 >= 0.0 and u2 < gn[2] and u3 >= 0.0 and u3 < gn[3]):
        cell = ((np.int64(u0) * gn[1] + np.int64(u1)) * gn[2] + np.int64(u2)) * gn[3] + np.int64(u3)
        a = start[cell]
        b = start[cell + 1]
        if b - a == 1:
            return np.int64(cand[a])
        for q in range(a, b):
            j = np.int64(cand[q])
            d = _sq_dist(pal4, j, four, t0, t1, t2, t3)
            if d < best:
                best = d
                arg = j
    else:
        for j in range(pal4.shape[0]):
            d = _sq_dist(pal4, j, four, t0, t1, t2, t3)
            if d < best:
                best = d
                arg = j
    return arg


@njit(parallel=True, cache=True)
def nearest_entries(feat, pal4, four, glo, ginv, gn, start, cand, labels, sq_dist):
    """Nearest palette entry of every point, and its squared distance.

    feat : (M, 4) float64              # IN   points' features, padded with 0
    four : bool                        # IN   the 4th feature is real (C = 4)
    labels : (M,) int64                # OUT
    sq_dist : (M,) float64             # OUT
    """
    for i in prange(feat.shape[0]):
        j = _nearest(feat[i, 0], feat[i, 1], feat[i, 2], feat[i, 3], four,
                     pal4, glo, ginv, gn, start, cand)
        labels[i] = j
        sq_dist[i] = _sq_dist(pal4, j, four, feat[i, 0], feat[i, 1], feat[i, 2], feat[i, 3])


# --------------------------------------------------------------------------
# Per-pixel features
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _pixel(mode, flat, i, n_ch, table, keys, pbits, pkeys, plabels, drec):
    """(snapped label or -1, x0, x1, x2, x3) of pixel i of an interleaved buffer."""
    if mode == DIRECT:
        key = _key(flat, i, n_ch)
        snap = np.int64(-1)
        if (pbits[key >> 6] >> np.uint64(key & 63)) & np.uint64(1):
            snap = np.int64(plabels[np.searchsorted(pkeys, key)])
        if n_ch == 1:
            return snap, np.float64(flat[i]), 0.0, 0.0, 0.0
        return (snap, np.float64(flat[3 * i]), np.float64(flat[3 * i + 1]),
                np.float64(flat[3 * i + 2]), 0.0)
    if mode == TABLE:
        d = _rank(table, _key(flat, i, n_ch))
    else:
        d = np.searchsorted(keys, _key(flat, i, n_ch))
    rec = drec[d]
    if drec.shape[1] == 4:
        return np.int64(rec[3]), np.float64(rec[0]), np.float64(rec[1]), np.float64(rec[2]), 0.0
    return (np.int64(rec[7]), np.float64(rec[0]), np.float64(rec[1]), np.float64(rec[2]),
            np.float64(rec[3]))


# --------------------------------------------------------------------------
# Floyd-Steinberg
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _fs_pixel(t0, t1, t2, t3, pal4, four, glo, ginv, gn, start, cand, limit, limit2,
              err, b, bn, ahead):
    """Label of target t; its limited residual is spread from position b of
    its error row and bn of the next row (``ahead`` = +4 or -4: the scan
    direction)."""
    j = _nearest(t0, t1, t2, t3, four, pal4, glo, ginv, gn, start, cand)
    r0 = t0 - pal4[j, 0]
    r1 = t1 - pal4[j, 1]
    r2 = t2 - pal4[j, 2]
    n2 = (r0 * r0 + r1 * r1) + r2 * r2
    r3 = 0.0
    if four:        # else feature 3 is padding: 0 everywhere, +0.0 to every norm
        r3 = t3 - pal4[j, 3]
        n2 = n2 + r3 * r3
    if n2 > limit2:
        f = limit / np.sqrt(n2)
        r0 = r0 * f
        r1 = r1 * f
        r2 = r2 * f
        r3 = r3 * f
    a = b + ahead
    an = bn + ahead
    cn = bn - ahead
    err[a] += r0 * FS_AHEAD
    err[a + 1] += r1 * FS_AHEAD
    err[a + 2] += r2 * FS_AHEAD
    err[cn] += r0 * FS_BEHIND_BELOW
    err[cn + 1] += r1 * FS_BEHIND_BELOW
    err[cn + 2] += r2 * FS_BEHIND_BELOW
    err[bn] += r0 * FS_BELOW
    err[bn + 1] += r1 * FS_BELOW
    err[bn + 2] += r2 * FS_BELOW
    err[an] += r0 * FS_AHEAD_BELOW
    err[an + 1] += r1 * FS_AHEAD_BELOW
    err[an + 2] += r2 * FS_AHEAD_BELOW
    if four:
        err[a + 3] += r3 * FS_AHEAD
        err[cn + 3] += r3 * FS_BEHIND_BELOW
        err[bn + 3] += r3 * FS_BELOW
        err[an + 3] += r3 * FS_AHEAD_BELOW
    return j


@njit(parallel=True, cache=True)
def fs_dither(mode, pixels, height, table, keys, pbits, pkeys, plabels, drec,
              pal4, four, glo, ginv, gn, start, cand, strength, limit,
              band_rows, warm_rows, n_workers, labels):
    """Serpentine Floyd-Steinberg over fixed bands of rows.

    Band b covers rows [b * band_rows, (b + 1) * band_rows); it starts with
    zero error ``warm_rows`` rows above its first row (or at row 0), runs
    those rows without writing their labels, then its own rows.  Bands never
    share state, so the labels do not depend on which worker runs which band.

    Error diffusion is a chain of dependent float operations from pixel to
    pixel, so one band alone leaves the CPU mostly waiting: each worker runs
    ``LANES`` consecutive bands in lockstep, pixel by pixel, giving it that
    many independent chains to overlap.  ``band_rows`` must be even, so the
    lanes always scan in the same direction.

    pixels : (N, C) uint8, C-contiguous   # IN   N = height * width
    table : (W, 2) uint64                 # IN   mode TABLE (else unused)
    keys : (D,) uint32                    # IN   mode KEYS (else unused)
    pbits : (words,) uint64               # IN   mode DIRECT: palette colour keys present
    pkeys, plabels : (P,) int64           # IN   mode DIRECT: sorted palette keys, lowest index
    drec : (D, 4|8) int32                 # IN   modes TABLE/KEYS: features, snapped label or -1
    pal4 : (k, 4) float64                 # IN   palette features, padded with 0
    glo, ginv : (4,) float64; gn : (4,) int64; start : (cells + 1,) uint32;
    cand : uint16                         # IN   the grid (see module notes)
    labels : (N,) uint8|uint16            # OUT
    """
    n, n_ch = pixels.shape
    width = n // height
    flat = pixels.reshape(-1)
    limit2 = limit * limit
    n_bands = (height + band_rows - 1) // band_rows
    n_groups = (n_bands + LANES - 1) // LANES
    row_len = 4 * (width + 2)
    for t in prange(n_workers):
        err = np.zeros(LANES * 2 * row_len)     # lane g's rows: offsets (2g + parity) * row_len
        for group in range(t, n_groups, n_workers):
            lanes = min(LANES, n_bands - group * LANES)
            err[:] = 0.0
            first = group * LANES * band_rows - warm_rows     # lane 0's row at step 0
            for step in range(warm_rows + band_rows):
                y_lane0 = first + step
                odd = y_lane0 & 1
                write = step >= warm_rows
                # lanes g_lo..g_hi-1 have their row inside the image
                g_lo = 0 if y_lane0 >= 0 else (band_rows - 1 - y_lane0) // band_rows
                g_hi = min(lanes, (height - y_lane0 + band_rows - 1) // band_rows)
                for g in range(lanes):
                    nxt0 = (2 * g + 1 - odd) * row_len
                    err[nxt0:nxt0 + row_len] = 0.0
                ahead = 4 if odd == 0 else -4
                for s in range(width):
                    x = s if odd == 0 else width - 1 - s
                    for g in range(g_lo, g_hi):
                        p = (y_lane0 + g * band_rows) * width + x
                        snap, x0, x1, x2, x3 = _pixel(mode, flat, p, n_ch, table, keys, pbits,
                                                      pkeys, plabels, drec)
                        if snap >= 0:
                            if write:
                                labels[p] = snap
                            continue
                        b = (2 * g + odd) * row_len + 4 * (x + 1)
                        t0 = x0 + strength * err[b]
                        t1 = x1 + strength * err[b + 1]
                        t2 = x2 + strength * err[b + 2]
                        t3 = x3 + strength * err[b + 3]
                        j = _fs_pixel(t0, t1, t2, t3, pal4, four, glo, ginv, gn, start, cand,
                                      limit, limit2, err, b, b + (1 - 2 * odd) * row_len, ahead)
                        if write:
                            labels[p] = j


# --------------------------------------------------------------------------
# Ordered (Bayer) dither, and the plain nearest entry (amplitude 0)
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def ordered_dither(mode, pixels, height, table, keys, pbits, pkeys, plabels, drec,
                   pal4, four, glo, ginv, gn, start, cand, thresholds, amplitude,
                   n_workers, labels):
    """labels = nearest entry of (features + amplitude * threshold), per pixel.

    Channel c of pixel (y, x) adds ``amplitude * thresholds[(y + 3c) % 8, (x + 5c) % 8]``
    (only real channels: padding stays 0).  ``amplitude = 0`` gives the
    nearest entry of every pixel.

    thresholds : (8, 8) float64        # IN   Bayer matrix, values in (-1/2, 1/2)
    (other arguments as in :func:`fs_dither`)
    """
    n, n_ch = pixels.shape
    width = n // height
    flat = pixels.reshape(-1)
    m = thresholds
    for t in prange(n_workers):
        ya, yb = _share(height, t, n_workers)
        for y in range(ya, yb):
            row = flat[y * width * n_ch:(y + 1) * width * n_ch]
            out = labels[y * width:(y + 1) * width]
            mr0 = m[y % BAYER_SIZE]
            mr1 = m[(y + BAYER_SHIFT_ROW) % BAYER_SIZE]
            mr2 = m[(y + 2 * BAYER_SHIFT_ROW) % BAYER_SIZE]
            mr3 = m[(y + 3 * BAYER_SHIFT_ROW) % BAYER_SIZE]
            for x in range(width):
                snap, x0, x1, x2, x3 = _pixel(mode, row, x, n_ch, table, keys, pbits, pkeys,
                                              plabels, drec)
                if snap >= 0:
                    out[x] = snap
                    continue
                t0 = x0 + amplitude * mr0[x & BAYER_MASK]
                t1 = x1
                t2 = x2
                t3 = x3
                if n_ch >= 3:
                    t1 = x1 + amplitude * mr1[(x + BAYER_SHIFT_COL) & BAYER_MASK]
                    t2 = x2 + amplitude * mr2[(x + 2 * BAYER_SHIFT_COL) & BAYER_MASK]
                if n_ch == 4:
                    t3 = x3 + amplitude * mr3[(x + 3 * BAYER_SHIFT_COL) & BAYER_MASK]
                out[x] = _nearest(t0, t1, t2, t3, four, pal4, glo, ginv, gn, start, cand)
