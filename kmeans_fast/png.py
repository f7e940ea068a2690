"""Fast PNG encoding of quantized images (palette + labels).

:func:`encode_png` writes the same kind of file as :func:`kmeans_fast.io.png_bytes`
(an indexed PNG at the smallest bit depth for k <= 256 colours, truecolour
above) several times faster, and usually smaller:

* **Row packing** (labels -> 1, 2, 4 or 8-bit scanlines, or palette colours
  for truecolour) is one parallel Numba pass over fixed row shares
  (:mod:`kmeans_fast._png_kernels`), which also checks that every label is
  below k.
* **Row filter**: "None", except "Up" for a row that repeats the row above.
  Quantized images repeat exact values, which deflate's matches catch
  directly; the other filters and the adaptive minimum-sum heuristic (libpng's,
  and Pillow's) turn those repeats into less regular differences.  On 24 MP
  photo-like images at k = 16, 64 and 256 the adaptive choice made the
  compressed data 30%, 81% and 41% larger than None (39% for truecolour at
  k = 1000), and the best single other filter 4-32% larger (12-15% at level 5
  and 8 bits), whether the palette was kept as quantized or sorted by luma or
  by frequency; with None, those palette orders changed the size by 0.1% at
  most, so the palette keeps its order (``python -m benchmarks.png_encode
  --alternatives``).  A row whose labels equal the row above's is the
  exception: under None deflate codes it as matches one row back, each
  carrying a long distance's extra bits (10-13 for rows of 2-32 KB) per 258
  bytes, while Up turns it into zeros, matched at distance 1 with none.  On
  a 6 MP horizontal gradient (every row the same) that took the file from
  1.8-3.7x Pillow's size to 0.32-1.02x (k = 16-256), and made a UI-like
  graphic 4% and a logo 1-3% smaller; photos have no such rows.  A repeated
  row of one value throughout stays None: it is as short either way, and on a
  vertical gradient Up made the file 1-7% larger.
* **Deflate**: zlib-ng, in fixed pieces of :data:`PIECE_SIZE` bytes of
  scanline data compressed on parallel threads, joined as pigz joins them:
  each piece starts with the 32 KiB that precede it as its dictionary (so
  matches still reach back across the join) and ends with a sync flush (an
  empty stored block that byte-aligns it); the last ends the stream.  The
  Adler-32 of the whole data closes the zlib stream.  The pieces are fixed by
  the data alone, so **the bytes written never depend on the thread count**.
  Each compressed piece is written as one IDAT chunk.
* **Streaming**: :class:`PngWriter` takes the labels in bands of rows and
  writes each piece as soon as it is compressed, so an image larger than
  memory is never held whole; :func:`write_png_bands` drives it from an
  iterable.  :func:`encode_png` is the same writer fed 2 MiB bands of
  scanlines, so both write exactly the same bytes.
* **Optimizing**: :func:`optimize_png` (or ``optimize=True``) runs oxipng, a
  lossless optimizer, for a smaller file at a much higher cost in time.

Compression levels 0-9 are zlib-ng's (see :data:`LEVELS`).  Threads: the
packing kernel and the compression both use ``numba.get_num_threads()``
workers.
"""

from __future__ import annotations

import collections
import numbers
import struct
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from zlib_ng import zlib_ng

from . import _png_kernels as _k

__all__ = ["DEFAULT_LEVEL", "LEVELS", "PIECE_SIZE", "PALETTE_MAX", "encode_png", "optimize_png",
           "PngWriter", "write_png_bands"]

PALETTE_MAX = 256           # the most colours an indexed PNG holds
PNG_MAX_SIDE = 2**31 - 1    # the largest width or height PNG allows
PIECE_SIZE = 1 << 18        # bytes of scanline data per independently compressed piece
_PARALLEL_MIN = 1 << 16     # labels below which a band is packed on one thread
_BAND_BYTES = 1 << 21       # scanline bytes encode_png packs at a time
DEFAULT_LEVEL = 5

LEVELS = {
    0: "no compression (stored blocks): fastest, larger than the raw scanlines",
    1: "'quick': static Huffman codes, very fast, but 1.4-2.3x Pillow's size",
    2: "'fast': greedy matching, hash chains of 4; 0.91-1.29x Pillow's size",
    3: "'medium': lazy matching, chains of 6; 0.86-1.26x Pillow's size",
    4: "'medium', chains of 24; 0.84-1.05x Pillow's size",
    5: "'medium', chains of 32 (default); 0.82-1.02x Pillow's size",
    6: "'medium', chains of 128; 0.81-1.01x Pillow's size, 1.1-1.6x the time of 5",
    7: "'slow': full lazy matching, chains of 256",
    8: "'slow', chains of 1024",
    9: "'slow', chains of 4096; 0.77-1.0x Pillow's size, 3-17x the time of 5",
}
"""What each ``level`` does: levels are zlib-ng's own levels 0-9.

The strategies and hash-chain lengths are those of zlib-ng 2.3 (its
``configuration_table``; they may change between versions, and so may the
exact bytes).  Sizes are relative to Pillow level 6
(``benchmarks.e2e.pillow_png``, what ``kmeans_fast.io.png_bytes`` used before
this encoder) on two 24 MP photo-like images (the benchmark's photo and
``sample_image(4000, 6000)``) quantized to k = 16, 64 and 256 colours; times
are compression CPU seconds on one thread.  The default, 5, is the fastest
level within 2% of Pillow's size on all six (level 4 was 4-5% larger at
k = 64); level 6 takes 1.1-1.6x as long for 0.1-2.7% less.  On 6 MP flat
graphics (a logo, a map, a diagram, a UI: 36-200 KB files) level 5 gave
0.85-1.11x Pillow's size and level 6 0.83-1.07x.
"""

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_WINDOW = 1 << 15           # deflate's window: a piece's dictionary
_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}        # truecolour PNG colour type by channel count
_INDEXED = 3


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------
def _check_level(level):
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise TypeError(f"level={level!r} must be an int from 0 (fastest) to 9 (smallest)")
    if not 0 <= level <= 9:
        raise ValueError(f"level={level} must be between 0 (fastest) and 9 (smallest)")
    return int(level)


def _check_side(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an int")
    if not 1 <= value <= PNG_MAX_SIDE:
        raise ValueError(f"{name}={value} must be between 1 and {PNG_MAX_SIDE} (PNG's limit)")
    return int(value)


def _check_palette(palette):
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[0] < 1 or palette.shape[1] not in (1, 3, 4):
        raise ValueError(f"palette has shape {palette.shape}: expected (k, C) with k >= 1 colours "
                         "and C = 1 (gray), 3 (RGB) or 4 (RGBA) channels")
    if palette.dtype != np.uint8:
        if palette.dtype.kind not in "iu":
            raise TypeError(f"palette has dtype {palette.dtype}: expected uint8 colours "
                            "(convert with np.clip(palette, 0, 255).astype(np.uint8))")
        low, high = int(palette.min()), int(palette.max())
        if low < 0 or high > 255:
            raise ValueError(f"palette holds {low if low < 0 else high}: colours must be 0..255")
        palette = palette.astype(np.uint8)
    return np.ascontiguousarray(palette)


def _check_labels(labels, n_colors, width=None):
    """Labels as a C-contiguous uint8 or uint16 array of shape (h, W).

    Labels >= k in uint8/uint16 arrays are caught by the packing kernel, in
    the same pass; other integer dtypes are checked and converted here.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels have dtype {labels.dtype}: expected uint8 or uint16 "
                        "palette indices")
    if width is None:
        if labels.ndim != 2 or 0 in labels.shape:
            raise ValueError(f"labels have shape {labels.shape}: expected (H, W) with H, W >= 1")
        _check_side("height", labels.shape[0])
        _check_side("width", labels.shape[1])
    elif labels.ndim != 2 or labels.shape[1] != width:
        raise ValueError(f"band has shape {labels.shape}: expected (rows, {width}), "
                         f"rows of the image's width={width}")
    if labels.dtype not in (np.uint8, np.uint16):
        if labels.size:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= n_colors:
                raise ValueError(f"labels hold {low if low < 0 else high}: palette indices must "
                                 f"be 0..{n_colors - 1} for a palette of k={n_colors} colours")
        labels = labels.astype(np.uint8 if n_colors <= 256 else np.uint16)
    return np.ascontiguousarray(labels)


# --------------------------------------------------------------------------
# chunks and header
# --------------------------------------------------------------------------
def _chunk(kind, data=b""):
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    crc = zlib_ng.crc32(data, zlib_ng.crc32(kind))
    return struct.pack(">I", len(data)) + kind + bytes(data) + struct.pack(">I", crc)


def _write_chunk(write, kind, parts):
    """Write a chunk whose data is the concatenation of ``parts``, without joining them."""
    crc = zlib_ng.crc32(kind)
    for part in parts:
        crc = zlib_ng.crc32(part, crc)
    write(struct.pack(">I", sum(len(part) for part in parts)) + kind)
    for part in parts:
        write(part)
    write(struct.pack(">I", crc))


_IEND = _chunk(b"IEND")


class _Layout:
    """How labels become scanlines: colour type, bit depth, header chunks, tables."""

    def __init__(self, palette, height, width):
        k, n_ch = palette.shape
        self.n_colors, self.height, self.width = k, height, width
        self.palette = palette
        self.indexed = k <= PALETTE_MAX
        if self.indexed:
            self.bits = next(b for b in (1, 2, 4, 8) if k <= 1 << b)
            colour_type = _INDEXED
            self.row_bytes = 1 + (width * self.bits + 7) // 8
            # translucent entries first, so that tRNS stops at the last of them
            alpha = palette[:, 3] if n_ch == 4 else np.full(k, 255, np.uint8)
            order = np.argsort(alpha == 255, kind="stable")
            self.index_of = np.empty(k, np.uint8)         # label -> PLTE index
            self.index_of[order] = np.arange(k)
            self.remap = bool(np.any(order != np.arange(k)))
            entries = palette[order]
            rgb = np.repeat(entries, 3, axis=1) if n_ch == 1 else entries[:, :3]
            chunks = [_chunk(b"PLTE", np.ascontiguousarray(rgb).tobytes())]
            n_translucent = int(np.count_nonzero(alpha < 255))
            if n_translucent:
                chunks.append(_chunk(b"tRNS", alpha[order][:n_translucent].tobytes()))
        else:
            self.bits = 8
            colour_type = _COLOUR_TYPE[n_ch]
            self.row_bytes = 1 + width * n_ch
            chunks = []
        ihdr = struct.pack(">IIBBBBB", width, height, self.bits, colour_type, 0, 0, 0)
        self.header = _SIGNATURE + _chunk(b"IHDR", ihdr) + b"".join(chunks)
        self._tables = {}

    def _table(self, dtype):
        """The kernel's lookup table for labels of ``dtype``: any label value is a valid index."""
        if dtype not in self._tables:
            size = max(self.n_colors, 1 << (8 * np.dtype(dtype).itemsize))
            if self.indexed:
                table = np.zeros(size, np.uint8)
                table[:self.n_colors] = self.index_of
            else:
                table = np.zeros((size, self.palette.shape[1]), np.uint8)
                table[:self.n_colors] = self.palette
            self._tables[dtype] = table
        return self._tables[dtype]

    def pack(self, labels, n_workers, first_up=False):
        """Scanlines (filter byte + samples) of ``labels``: (h, row_bytes) uint8.

        ``first_up``: the first row's labels equal the row above's (the last
        row of the previous band), so the kernel may write it with the Up
        filter, as zeros.
        """
        out = np.empty((labels.shape[0], self.row_bytes), np.uint8)
        serial = labels.size < _PARALLEL_MIN or n_workers == 1
        n_workers = 1 if serial else min(n_workers, labels.shape[0])
        table = self._table(labels.dtype)
        if self.indexed:
            kernel = _k.pack_indexed_serial if serial else _k.pack_indexed
            tops = kernel(labels, table, self.remap, self.bits, first_up, out, n_workers)
        else:
            kernel = _k.pack_truecolour_serial if serial else _k.pack_truecolour
            tops = kernel(labels, table, first_up, out, n_workers)
        top = int(tops.max())
        if top >= self.n_colors:
            raise ValueError(f"labels hold {top}: palette indices must be 0..{self.n_colors - 1} "
                             f"for a palette of k={self.n_colors} colours")
        return out


# --------------------------------------------------------------------------
# the zlib stream, in pieces
# --------------------------------------------------------------------------
def _zlib_header(level):
    """CMF and FLG bytes: deflate, 32 KiB window, level hint as zlib sets it."""
    hint = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    cmf = 0x78
    flg = hint << 6
    flg += 31 - (cmf * 256 + flg) % 31
    return bytes((cmf, flg))


def _deflate_piece(window, data, level, final):
    """Raw deflate of ``data`` with ``window`` as its dictionary; sync-flushed unless final."""
    if len(window):
        comp = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, 8, zlib_ng.Z_DEFAULT_STRATEGY,
                                   window)
    else:
        comp = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)
    return comp.compress(data) + comp.flush(zlib_ng.Z_FINISH if final else zlib_ng.Z_SYNC_FLUSH)


class _IdatStream:
    """The IDAT chunks of a stream of scanline bytes fed in any slices.

    The data is cut at multiples of ``piece_size`` from its start, whatever the
    slices fed; each piece is compressed (on ``n_threads`` threads) and written,
    in order, as one IDAT chunk: the first with the zlib header before it, the
    last with the Adler-32 after it.  At most ``2 * n_threads`` pieces are in
    flight, which bounds the memory.
    """

    def __init__(self, write, level, n_threads, piece_size=None):
        self._write = write
        self._level = level
        self._piece = PIECE_SIZE if piece_size is None else piece_size
        self._threads = n_threads
        self._pool = None                      # started with the first piece that can overlap
        self._max_queue = 2 * n_threads
        self._queue = collections.deque()      # futures (or bytes) of pieces, in order
        self._pending = bytearray()            # the start of the next piece
        self._window = b""                     # the 32 KiB before the next piece
        self._adler = 1
        self._first = True

    def feed(self, data):
        data = memoryview(data).cast("B")
        self._adler = zlib_ng.adler32(data, self._adler)
        pos = 0
        if self._pending:
            pos = min(self._piece - len(self._pending), len(data))
            self._pending += data[:pos]
            if len(self._pending) == self._piece:
                self._submit(bytes(self._pending), final=False)
                self._pending = bytearray()
        while len(data) - pos >= self._piece:    # whole pieces straight from the caller's data
            self._submit(data[pos:pos + self._piece], final=False)
            pos += self._piece
        if pos < len(data):
            self._pending += data[pos:]

    def finish(self):
        """Compress what is left as the final piece and write every chunk."""
        self._submit(bytes(self._pending), final=True)
        self._pending = bytearray()
        self._drain(0)
        self.close()

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _submit(self, piece, final):
        window = self._window
        if len(piece) >= _WINDOW:
            self._window = bytes(piece[len(piece) - _WINDOW:])
        else:
            self._window = (window + bytes(piece))[-_WINDOW:]
        if self._threads == 1 or (final and not self._queue):     # nothing to overlap with
            self._queue.append((_deflate_piece(window, piece, self._level, final), final))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads)
            self._queue.append((self._pool.submit(_deflate_piece, window, piece, self._level,
                                                  final), final))
        self._drain(self._max_queue)

    def _drain(self, keep):
        """Write finished pieces in order; wait for the oldest while more than ``keep`` are queued."""
        while self._queue:
            job, final = self._queue[0]
            if not isinstance(job, bytes):
                if len(self._queue) <= keep and not job.done():
                    break
                job = job.result()
            self._queue.popleft()
            parts = [job]
            if self._first:
                parts.insert(0, _zlib_header(self._level))
                self._first = False
            if final:
                parts.append(struct.pack(">I", self._adler))
            _write_chunk(self._write, b"IDAT", parts)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
class PngWriter:
    """Write a PNG from bands of labels, streaming it to a binary file object.

    Each band is packed and compressed as it comes, and the compressed data is
    written as soon as it is ready, so the whole image is never held in memory
    (only a band, and a few pieces of :data:`PIECE_SIZE` bytes in flight).
    The file is the same, byte for byte, as ``encode_png(palette, labels,
    level=level)`` of the whole image.

    Parameters
    ----------
    fileobj : binary file object
        A buffered binary file (``open(path, "wb")``, ``io.BytesIO``): anything
        whose ``write(bytes)`` writes all it is given.  It is not closed.
    palette : ndarray of shape (k, C), dtype uint8
        C is 1 (gray), 3 (RGB) or 4 (RGBA); see :func:`encode_png`.
    height, width : int
        The image's size, 1 to 2**31 - 1.
    level : int, optional
        Compression level 0 (fastest) to 9 (smallest); see :data:`LEVELS`.

    Examples
    --------
    >>> with open("big.png", "wb") as f, PngWriter(f, palette, h, w) as png:  # doctest: +SKIP
    ...     for start in range(0, h, 1024):
    ...         png.write_rows(labels_of_rows(start, start + 1024))

    Notes
    -----
    The header (signature, IHDR, PLTE, tRNS) is written at once.  Leaving the
    ``with`` block normally calls :meth:`close`; leaving it on an exception
    stops the compression threads and writes nothing more, leaving an
    incomplete file for the caller to remove.
    """

    def __init__(self, fileobj, palette, height, width, *, level=DEFAULT_LEVEL):
        level = _check_level(level)
        palette = _check_palette(palette)
        self.height = _check_side("height", height)
        self.width = _check_side("width", width)
        self._file = fileobj
        self._layout = _Layout(palette, self.height, self.width)
        self._workers = numba.get_num_threads()
        self.rows_written = 0
        self.bytes_written = 0
        self._last_row = None           # labels of the last row written
        self._closed = False
        self._write(self._layout.header)
        self._stream = _IdatStream(self._write, level, self._workers)

    def _write(self, data):
        self._file.write(data)
        self.bytes_written += len(data)

    def write_rows(self, band):
        """Append the next rows of labels.

        Parameters
        ----------
        band : ndarray of shape (rows, width), dtype uint8 or uint16
            Palette indices (< k) of the next ``rows`` rows; any number of rows,
            0 included.

        Raises
        ------
        ValueError
            When the writer is closed, the band has the wrong width, a label
            is >= k, or the rows would pass the image's height.  Nothing of a
            rejected band is written.
        """
        if self._closed:
            raise ValueError("write_rows() on a closed PngWriter: open a new one")
        band = _check_labels(band, self._layout.n_colors, self.width)
        rows = band.shape[0]
        if self.rows_written + rows > self.height:
            raise ValueError(f"{self.rows_written} + {rows} rows pass the image's "
                             f"height={self.height}: write exactly height rows")
        if rows:
            # the row above the band's first: compared by value (bands may differ in dtype)
            first_up = self._last_row is not None and np.array_equal(band[0], self._last_row)
            self._stream.feed(self._layout.pack(band, self._workers, first_up).reshape(-1))
            self._last_row = band[-1].copy()
            self.rows_written += rows

    def close(self):
        """Finish the file: the last compressed data and the IEND chunk.

        Returns
        -------
        int
            The number of bytes written.

        Raises
        ------
        ValueError
            When fewer than ``height`` rows were written (the file is then
            left incomplete).
        """
        if self._closed:
            return self.bytes_written
        self._closed = True
        if self.rows_written != self.height:
            self._stream.close()
            raise ValueError(f"only {self.rows_written} of height={self.height} rows were "
                             "written: write exactly height rows before close()")
        self._stream.finish()
        self._write(_IEND)
        return self.bytes_written

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:                   # keep the original error: just stop the threads
            self._closed = True
            self._stream.close()


def write_png_bands(fileobj, palette, height, width, bands, *, level=DEFAULT_LEVEL):
    """Write a PNG from an iterable of label bands (see :class:`PngWriter`).

    Parameters
    ----------
    fileobj : binary file object
        Anything with a ``write(bytes)`` method.  It is not closed.
    palette : ndarray of shape (k, C), dtype uint8
    height, width : int
    bands : iterable of ndarray of shape (rows, width), dtype uint8 or uint16
        The labels, top to bottom, in bands of any number of rows that add
        up to ``height``.
    level : int, optional
        0 (fastest) to 9 (smallest); see :data:`LEVELS`.

    Returns
    -------
    int
        The number of bytes written.

    Raises
    ------
    ValueError
        When the bands' rows do not add up to ``height``, or a band is bad.
    """
    with PngWriter(fileobj, palette, height, width, level=level) as png:
        for band in bands:
            png.write_rows(band)
    return png.bytes_written


class _Parts:
    """A write-only sink that keeps what is written, for :func:`encode_png`."""

    def __init__(self):
        self.parts = []
        self.write = self.parts.append


def encode_png(palette, labels, *, level=DEFAULT_LEVEL, optimize=False):
    """Encode a quantized image as PNG: indexed when the palette allows.

    Parameters
    ----------
    palette : ndarray of shape (k, C), dtype uint8
        C is 1 (gray), 3 (RGB) or 4 (RGBA).
    labels : ndarray of shape (H, W), dtype uint8 or uint16
        Palette index of each pixel, < k.
    level : int, optional
        Compression level, 0 (none, fastest) to 9 (smallest): zlib-ng's
        levels.  The default 5 gives files within 2% of Pillow's level 6 on
        photo-like images (0.82-1.02x), in 0.6-0.9x the time of level 6.
        See :data:`LEVELS`.
    optimize : bool, optional
        Also run :func:`optimize_png` (lossless, smaller, much slower).

    Returns
    -------
    bytes
        For k <= 256, an indexed PNG (colour type 3) at the smallest bit depth
        that holds k (1, 2, 4 or 8 bits for k <= 2, 4, 16, 256), with a PLTE
        chunk of the k colours (gray palettes as r = g = b) and, only when some
        alpha is below 255, a tRNS chunk that stops at the last translucent
        entry (translucent colours are moved to the front of PLTE for that).
        For k > 256, an 8-bit gray, RGB or RGBA PNG (colour type 0, 2 or 6).
        Decoding it gives exactly ``palette[labels]``.  The bytes do not depend
        on the number of threads.

    Raises
    ------
    ValueError
        For a palette not of shape (k, C) with C in (1, 3, 4), labels not 2-D
        or empty, a label >= k, or a level outside 0..9.
    TypeError
        For non-integer palettes or labels.
    """
    level = _check_level(level)
    palette = _check_palette(palette)
    labels = _check_labels(labels, palette.shape[0])
    sink = _Parts()
    height, width = labels.shape
    with PngWriter(sink, palette, height, width, level=level) as png:
        # in bands: scanlines are packed just before they are compressed, in
        # memory that is reused, and never all at once
        rows = max(1, _BAND_BYTES // png._layout.row_bytes)
        for start in range(0, height, rows):
            png.write_rows(labels[start:start + rows])
    data = b"".join(sink.parts)
    return optimize_png(data) if optimize else data


def optimize_png(data):
    """Losslessly shrink a PNG with oxipng; the pixels stay exactly the same.

    oxipng (``pyoxipng``) tries bit depth, colour type and palette reductions
    (sorting the palette among them), row filters and libdeflate's strongest
    levels, and keeps the smallest result.  It runs at its default effort
    (``level=2``), chosen by measurement: on 24 MP photo-like images it makes
    :func:`encode_png`'s default output about 19%, 13% and 6% smaller at
    k = 16, 64 and 256, in several seconds.  libdeflate level 12 instead of
    oxipng's 11 gained 2% more at k = 16, 0.2% at 64 and lost 0.4% at 256, for
    1.5-2x the time; efforts 3 to 6 and Zopfli gained at most 0.3% (Zopfli:
    lost 1.3%) for 3-8x the time.  Metadata chunks are kept (the files
    :func:`encode_png` writes have none to strip).

    Parameters
    ----------
    data : bytes
        A PNG file.

    Returns
    -------
    bytes
        The optimized PNG (``data`` unchanged when nothing smaller is found).

    Raises
    ------
    ValueError
        When ``data`` is not a PNG oxipng can read.
    """
    import oxipng

    try:
        return oxipng.optimize_from_memory(bytes(data), level=_OXIPNG_LEVEL)
    except oxipng.PngError as e:
        raise ValueError(f"oxipng cannot optimize this data ({e}): pass the bytes of a "
                         "valid PNG file") from None


_OXIPNG_LEVEL = 2
