"""Numba kernels of the PNG encoder (:mod:`kmeans_fast.png`).

Each kernel turns rows of palette indices into PNG scanlines: one filter byte
(always 0, "None": measured best for quantized images, see :mod:`.png`)
followed by the row's samples.  Rows are independent, so the kernels split the
rows into ``n_workers`` contiguous shares and the output is the same for any
worker count; each kernel also has a serial twin compiled from the same body.  Each worker also records the largest label it saw, so the caller
can reject labels outside the palette without a second pass over the image.
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


@njit(cache=True)
def _pack_row(src, lut, remap, bits, dst):
    """One row of labels -> its packed samples, most significant bits first.

    src : (W,) uint8 or uint16                     # IN
    lut : (2**(8 * itemsize),) uint8               # IN  label -> palette index, used if remap
    remap : bool                                   # IN  False: labels are the indices
    bits : int, 1, 2, 4 or 8                       # IN
    dst : (ceil(W * bits / 8),) uint8              # OUT
    returns the largest label in src
    """
    width = src.shape[0]
    top = np.int64(0)
    for x in range(width):                 # a plain max: LLVM vectorises it
        top = max(top, np.int64(src[x]))
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
    return top


def _pack_indexed(labels, lut, remap, bits, out, n_workers):
    """Scanlines of an indexed PNG at 1, 2, 4 or 8 bits per pixel.

    labels : (H, W) uint8 or uint16                # IN
    lut : (2**(8 * itemsize),) uint8               # IN  palette index written for each label
    remap : bool                                   # IN  apply lut (False: labels are the indices)
    bits : int, 1, 2, 4 or 8                       # IN
    out : (H, 1 + ceil(W * bits / 8)) uint8        # OUT filter byte 0, then the packed row
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
            row[0] = 0
            top = max(top, _pack_row(labels[r], lut, remap, bits, row[1:]))
        tops[t] = top
    return tops


@njit(cache=True)
def _gather_row(src, palette, dst):
    """One row of labels -> its colours, channels interleaved.

    src : (W,) uint8 or uint16                     # IN
    palette : (>= 2**(8 * itemsize), C) uint8      # IN
    dst : (W * C,) uint8                           # OUT
    returns the largest label in src
    """
    width = src.shape[0]
    n_ch = palette.shape[1]
    top = 0
    for x in range(width):
        top = max(top, np.int64(src[x]))
    for x in range(width):
        colour = palette[src[x]]
        px = dst[x * n_ch:(x + 1) * n_ch]
        for c in range(n_ch):
            px[c] = colour[c]
    return top


def _pack_truecolour(labels, palette, out, n_workers):
    """Scanlines of a gray, RGB or RGBA PNG of ``palette[labels]`` at 8 bits.

    labels : (H, W) uint8 or uint16                # IN
    palette : (>= 2**(8 * itemsize), C) uint8      # IN  padded so that any label is a row
    out : (H, 1 + W * C) uint8                     # OUT filter byte 0, then the pixels
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
            row[0] = 0
            top = max(top, _gather_row(labels[r], palette, row[1:]))
        tops[t] = top
    return tops


# Each body compiled twice: parallel for big inputs, and a serial twin for small
# bands, where starting the threads would cost more than the work.
# nogil: a streaming writer packs its next band while threads compress the last.
pack_indexed = njit(parallel=True, cache=True, nogil=True)(_pack_indexed)
pack_indexed_serial = njit(cache=True, nogil=True)(_pack_indexed)
pack_truecolour = njit(parallel=True, cache=True, nogil=True)(_pack_truecolour)
pack_truecolour_serial = njit(cache=True, nogil=True)(_pack_truecolour)
