"""Numba kernels of the PNG encoder (:mod:`kmeans_fast.png`).

Each kernel turns rows of palette indices into PNG scanlines: one filter byte
followed by the row's samples.  The filter is "None" (0: the samples as they
are; measured best for quantized images, see :mod:`.png`), except for a row
whose labels equal the row above's and are not all one value: that one is
written with "Up" (2), which makes it all zeros.  Each row depends only on
itself and the row above (read from the labels, which no worker writes), so
the kernels split the rows into ``n_workers`` contiguous shares and the output
is the same for any worker count; each kernel also has a serial twin compiled
from the same body.  Each worker also records the largest label it saw, so
the caller can reject labels outside the palette without a second pass over
the image.
Kernel arguments are marked ``# IN``, ``# OUT`` or ``# INOUT``.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit, prange


@njit(cache=True, inline="always")
def _share(n, t, n_workers):
    """Worker t's contiguous share [start, stop) of n items."""
    return n * t // n_workers, n * (t + 1) // n_workers


@njit(cache=True, inline="always")
def _pack_bytes(src, lut, remap, bits, per, n_bytes, dst):
    """Pack ``per`` pixels of ``bits`` bits into each of ``n_bytes`` bytes.

    With literal ``bits``/``per`` at the call site the loop has constant shifts.
    """
    if remap:
        for i in range(n_bytes):
            blk = src[i * per:(i + 1) * per]
            byte = np.uint8(0)
            for j in range(per):
                byte = (byte << np.uint8(bits)) | lut[blk[j]]
            dst[i] = byte
    else:
        for i in range(n_bytes):
            blk = src[i * per:(i + 1) * per]
            byte = np.uint8(0)
            for j in range(per):
                byte = (byte << np.uint8(bits)) | np.uint8(blk[j])
            dst[i] = byte


@njit(cache=True, inline="always")
def _row_max(src):
    """The largest label in a row: a plain max, which LLVM vectorises."""
    top = np.int64(0)
    for x in range(src.shape[0]):
        top = max(top, np.int64(src[x]))
    return top


@njit(cache=True, inline="always")
def _same_row(a, b):
    """Whether two rows of labels are equal (stops at the first difference)."""
    for x in range(a.shape[0]):
        if a[x] != b[x]:
            return False
    return True


@njit(cache=True, inline="always")
def _constant_row(a):
    """Whether a row of labels holds one value only."""
    for x in range(1, a.shape[0]):
        if a[x] != a[0]:
            return False
    return True


@njit(cache=True, inline="always")
def _filter_byte(labels, r, first_up, dst):
    """Filter type of row r, 0 or 2; for Up (2), ``dst`` (the row's samples) is zeroed.

    Up when the row repeats the row above and is not one value throughout
    (such a row is as short under None, and None keeps it like its
    neighbours).  The row above row 0 is the previous band's last row, equal
    to row 0 when ``first_up``.
    """
    if r == 0:
        up = first_up
    else:
        up = _same_row(labels[r], labels[r - 1])
    if up and not _constant_row(labels[r]):
        dst[:] = 0
        return np.uint8(2)
    return np.uint8(0)


@njit(cache=True)
def _pack_row(src, lut, remap, bits, dst):
    """One row of labels -> its packed samples, most significant bits first.

    src : (W,) uint8 or uint16                     # IN
    lut : (2**(8 * itemsize),) uint8               # IN  label -> palette index, used if remap
    remap : bool                                   # IN  False: labels are the indices
    bits : int, 1, 2, 4 or 8                       # IN
    dst : (ceil(W * bits / 8),) uint8              # OUT
    """
    width = src.shape[0]
    per = 8 // bits                        # pixels per byte
    full = width // per
    if bits == 8:
        _pack_bytes(src, lut, remap, 8, 1, full, dst)
    elif bits == 4:
        _pack_bytes(src, lut, remap, 4, 2, full, dst)
    elif bits == 2:
        _pack_bytes(src, lut, remap, 2, 4, full, dst)
    else:
        _pack_bytes(src, lut, remap, 1, 8, full, dst)
    rest = width - full * per
    if rest:                               # last byte: the pixels left, then zero bits
        blk = src[full * per:]
        byte = 0
        for j in range(rest):
            v = lut[blk[j]] if remap else blk[j]
            byte = (byte << bits) | np.int64(v)
        dst[full] = byte << (bits * (per - rest))


def _pack_indexed(labels, lut, remap, bits, first_up, out, n_workers):
    """Scanlines of an indexed PNG at 1, 2, 4 or 8 bits per pixel.

    labels : (H, W) uint8 or uint16                # IN
    lut : (2**(8 * itemsize),) uint8               # IN  palette index written for each label
    remap : bool                                   # IN  apply lut (False: labels are the indices)
    bits : int, 1, 2, 4 or 8                       # IN
    first_up : bool                                # IN  row 0 equals the row above it
    out : (H, 1 + ceil(W * bits / 8)) uint8        # OUT filter byte, then the (filtered) row
    n_workers : int >= 1                           # IN
    returns (n_workers,) int64: each worker's largest label (-1 if it had no rows)
    """
    height = labels.shape[0]
    tops = np.full(n_workers, -1, dtype=np.int64)
    for t in prange(n_workers):
        start, stop = _share(height, t, n_workers)
        top = -1
        for r in range(start, stop):
            row = out[r]
            src = labels[r]
            top = max(top, _row_max(src))
            row[0] = _filter_byte(labels, r, first_up, row[1:])
            if row[0] == 0:
                _pack_row(src, lut, remap, bits, row[1:])
        tops[t] = top
    return tops


@njit(cache=True)
def _gather_row(src, palette, dst):
    """One row of labels -> its colours, channels interleaved.

    src : (W,) uint8 or uint16                     # IN
    palette : (>= 2**(8 * itemsize), C) uint8      # IN
    dst : (W * C,) uint8                           # OUT
    """
    width = src.shape[0]
    n_ch = palette.shape[1]
    for x in range(width):
        colour = palette[src[x]]
        px = dst[x * n_ch:(x + 1) * n_ch]
        for c in range(n_ch):
            px[c] = colour[c]


def _pack_truecolour(labels, palette, first_up, out, n_workers):
    """Scanlines of a gray, RGB or RGBA PNG of ``palette[labels]`` at 8 bits.

    labels : (H, W) uint8 or uint16                # IN
    palette : (>= 2**(8 * itemsize), C) uint8      # IN  padded so that any label is a row
    first_up : bool                                # IN  row 0 equals the row above it
    out : (H, 1 + W * C) uint8                     # OUT filter byte, then the (filtered) pixels
    n_workers : int >= 1                           # IN
    returns (n_workers,) int64: each worker's largest label (-1 if it had no rows)
    """
    height = labels.shape[0]
    tops = np.full(n_workers, -1, dtype=np.int64)
    for t in prange(n_workers):
        start, stop = _share(height, t, n_workers)
        top = -1
        for r in range(start, stop):
            row = out[r]
            src = labels[r]
            top = max(top, _row_max(src))
            row[0] = _filter_byte(labels, r, first_up, row[1:])
            if row[0] == 0:
                _gather_row(src, palette, row[1:])
        tops[t] = top
    return tops


# Each body compiled twice: parallel for big inputs, and a serial twin for small
# bands, where starting the threads would cost more than the work.
# nogil: a streaming writer packs its next band while threads compress the last.
pack_indexed = njit(parallel=True, cache=True, nogil=True)(_pack_indexed)
pack_indexed_serial = njit(cache=True, nogil=True)(_pack_indexed)
pack_truecolour = njit(parallel=True, cache=True, nogil=True)(_pack_truecolour)
pack_truecolour_serial = njit(cache=True, nogil=True)(_pack_truecolour)
