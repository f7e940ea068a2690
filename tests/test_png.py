"""Tests of kmeans_fast.png: the fast PNG encoder, its streaming writer and optimizer.

Every file is decoded by two independent decoders (Pillow and OpenCV/libpng)
and compared with ``palette[labels]`` exactly; the chunks are parsed here, CRCs
checked with the standard library's zlib, and the scanlines are inflated and
unpacked here with NumPy, so that what the decoders forgive (padding bits,
filter bytes, a long tRNS) is checked too.
"""

import io
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numba
import numpy as np
import pytest
from PIL import Image

from kmeans_fast import _png_kernels as kernels
from kmeans_fast import png

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODE = {1: "L", 3: "RGB", 4: "RGBA"}


# --------------------------------------------------------------------------
# helpers, independent of the module under test
# --------------------------------------------------------------------------
def parse(data):
    """[(type, payload)] of a PNG's bytes; checks lengths, CRCs, order, IEND."""
    assert data[:8] == SIGNATURE
    found, i = [], 8
    while i < len(data):
        assert i + 12 <= len(data), "truncated chunk"
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind, payload = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        assert len(payload) == n, f"{kind} shorter than its length field"
        (crc,) = struct.unpack(">I", data[i + 8 + n:i + 12 + n])
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind}"
        found.append((kind, payload))
        i += 12 + n
    kinds = [kind for kind, _ in found]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and kinds.count(b"IEND") == 1
    assert found[-1][1] == b""
    idat = [j for j, kind in enumerate(kinds) if kind == b"IDAT"]
    assert idat and idat == list(range(idat[0], idat[-1] + 1)), "IDAT chunks must be consecutive"
    return found


def header(data):
    """IHDR fields: (width, height, bit depth, colour type, compression, filter, interlace)."""
    return struct.unpack(">IIBBBBB", parse(data)[0][1])


def payloads(data, kind):
    return [payload for k, payload in parse(data) if k == kind]


def scanlines(data):
    """Inflate the IDAT data: (H, row_bytes) uint8, filter bytes included."""
    width, height, bits, colour_type = header(data)[:4]
    channels = {0: 1, 2: 3, 3: 1, 6: 4}[colour_type]
    raw = zlib.decompress(b"".join(payloads(data, b"IDAT")))
    row = 1 + (width * bits * channels + 7) // 8
    assert len(raw) == height * row
    return np.frombuffer(raw, np.uint8).reshape(height, row)


def expected(palette, labels):
    """palette[labels], (H, W) for gray."""
    out = palette[labels.astype(np.int64)]
    return out[:, :, 0] if palette.shape[1] == 1 else out


def decode_pillow(data, n_channels):
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im.convert(MODE[n_channels]))


def decode_opencv(data, n_channels):
    """OpenCV's decode, brought to the palette's channels (an absent alpha is 255)."""
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert got is not None and got.dtype == np.uint8
    if got.ndim == 3:
        got = cv2.cvtColor(got, cv2.COLOR_BGR2RGB if got.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if n_channels == 1:
        if got.ndim == 3:
            assert (got[:, :, :3] == got[:, :, :1]).all(), "gray decoded as colour"
            got = got[:, :, 0]
        return got
    if got.ndim == 2:
        got = np.repeat(got[:, :, None], 3, axis=2)
    if n_channels == 4 and got.shape[2] == 3:
        got = np.dstack([got, np.full(got.shape[:2], 255, np.uint8)])
    return got


def assert_decodes_to(data, palette, labels):
    want = expected(palette, labels)
    for decode in (decode_pillow, decode_opencv):
        got = decode(data, palette.shape[1])
        assert got.shape == want.shape, decode.__name__
        assert np.array_equal(got, want), decode.__name__


def pack_reference(indices, bits):
    """Pack (H, W) indices MSB first at ``bits`` bits, rows padded with zero bits."""
    planes = np.unpackbits(indices.astype(np.uint8)[:, :, None], axis=2)[:, :, 8 - bits:]
    return np.packbits(planes.reshape(indices.shape[0], -1), axis=1)


def up_rows(labels, first_up=False):
    """(H,) bool: rows written with the Up filter: equal to the row above, not one value."""
    same = np.zeros(labels.shape[0], bool)
    same[1:] = (labels[1:] == labels[:-1]).all(axis=1)
    same[:1] = first_up
    return same & (labels != labels[:, :1]).any(axis=1)


def scanlines_reference(samples, labels, first_up=False):
    """Expected scanlines: filter 0 and ``samples``, or filter 2 and zeros for repeated rows."""
    up = up_rows(labels, first_up)
    want = np.hstack([np.where(up, 2, 0).astype(np.uint8)[:, None], samples])
    want[up, 1:] = 0
    return want


def palette_of(k, n_channels, seed=0, alpha=None):
    """k distinct colours (gray: distinct while k <= 256)."""
    rng = np.random.default_rng(seed)
    if n_channels == 1:
        return (rng.permutation(256)[np.arange(k) % 256]).astype(np.uint8)[:, None]
    keys = rng.choice(1 << 24, k, replace=False)
    cols = [(keys >> s) & 255 for s in (0, 8, 16)]
    if n_channels == 4:
        cols.append(np.full(k, 255) if alpha is None else alpha)
    return np.stack(cols, axis=1).astype(np.uint8)


def labels_of(k, shape, seed=1, dtype=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=shape)
    if labels.size >= k:        # every colour appears
        labels.flat[:k] = rng.permutation(k)
    return labels.astype(dtype or (np.uint8 if k <= 256 else np.uint16))


@pytest.fixture
def threads():
    """Restore numba's thread count after a test that sets it to 1 or 2."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba to allow 2 threads")
    saved = numba.get_num_threads()
    yield
    numba.set_num_threads(saved)


# --------------------------------------------------------------------------
# chunk writer
# --------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 3])
def test_chunk_layout_and_crc(payload):
    got = png._chunk(b"tEXt", payload)
    assert got[:4] == struct.pack(">I", len(payload)) and got[4:8] == b"tEXt"
    assert got[8:-4] == payload
    assert got[-4:] == struct.pack(">I", zlib.crc32(b"tEXt" + payload))


def test_write_chunk_in_parts_equals_chunk():
    parts = [b"ab", memoryview(b"cdef"), b"", b"g" * 1000]
    written = []
    png._write_chunk(written.append, b"IDAT", parts)
    assert b"".join(written) == png._chunk(b"IDAT", b"".join(bytes(p) for p in parts))


def test_every_chunk_of_a_file_has_a_good_crc():
    data = png.encode_png(palette_of(5, 4, alpha=[255, 0, 255, 9, 255]), labels_of(5, (9, 11)))
    kinds = [kind for kind, _ in parse(data)]
    assert kinds == [b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"]


# --------------------------------------------------------------------------
# round trips: Pillow and OpenCV give back palette[labels]
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_channels", [1, 3, 4])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 16, 17, 255, 256, 257, 1000])
def test_round_trip_and_structure(k, n_channels):
    alpha = None
    if n_channels == 4:     # some translucent entries, spread through the palette
        alpha = np.where(np.arange(k) % 3 == 1, np.arange(k) % 200, 255)
    palette = palette_of(k, n_channels, seed=k, alpha=alpha)
    labels = labels_of(k, (37, 41), seed=k)
    data = png.encode_png(palette, labels)
    assert_decodes_to(data, palette, labels)

    width, height, bits, colour_type, *rest = header(data)
    assert (width, height) == (41, 37) and rest == [0, 0, 0]
    if k <= 256:
        assert colour_type == 3
        assert bits == min(b for b in (1, 2, 4, 8) if k <= 1 << b)
        plte = np.frombuffer(payloads(data, b"PLTE")[0], np.uint8).reshape(-1, 3)
        assert len(plte) == k
        # the PLTE holds exactly the palette's colours, once each
        rgb = np.repeat(palette, 3, axis=1) if n_channels == 1 else palette[:, :3]
        assert sorted(map(tuple, plte)) == sorted(map(tuple, rgb))
        trns = payloads(data, b"tRNS")
        n_translucent = int(np.count_nonzero(alpha < 255)) if alpha is not None else 0
        if n_translucent:
            assert len(trns) == 1 and len(trns[0]) == n_translucent
            assert max(trns[0]) < 255
        else:
            assert trns == []
    else:
        assert bits == 8 and colour_type == {1: 0, 3: 2, 4: 6}[n_channels]
        assert payloads(data, b"PLTE") == [] and payloads(data, b"tRNS") == []


@pytest.mark.parametrize("shape", [(1, 1), (1, 77), (77, 1), (3, 1000)])
@pytest.mark.parametrize("k", [2, 4, 16, 256, 300])
def test_thin_shapes(shape, k):
    palette, labels = palette_of(k, 3), labels_of(k, shape, seed=sum(shape))
    assert_decodes_to(png.encode_png(palette, labels), palette, labels)


@pytest.mark.parametrize("k", [2, 3, 4, 16])
@pytest.mark.parametrize("width", range(1, 10))
def test_bit_packing_and_padding(k, width):
    """Samples MSB first, padding bits zero, filter 0 (2 on repeated rows), at 1, 2 and 4 bits."""
    palette, labels = palette_of(k, 3), labels_of(k, (5, width), seed=width)
    data = png.encode_png(palette, labels)
    bits = header(data)[2]
    assert bits == {2: 1, 3: 2, 4: 2, 16: 4}[k]
    # PLTE is the palette, in order (no alpha): samples are the labels themselves
    want = scanlines_reference(pack_reference(labels, bits), labels)
    assert np.array_equal(scanlines(data), want)
    assert_decodes_to(data, palette, labels)


def repeating_labels(k, shape, seed=3, dtype=None):
    """Labels with runs of repeated rows, repeated rows of one value, and single rows."""
    labels = labels_of(k, shape, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for r in range(1, shape[0]):
        if rng.random() < 0.6:
            labels[r] = labels[r - 1]
    labels[4:7] = labels[4, 0]          # one value throughout, three times
    labels[8:10] = labels[7]
    return labels


@pytest.mark.parametrize("k, n_channels", [(2, 3), (3, 1), (16, 4), (256, 3), (1000, 4)])
def test_repeated_rows_are_written_up_as_zeros(k, n_channels):
    """Filter 2 and zeros on exactly the rows that repeat the row above, unless of one value."""
    alpha = np.arange(k) % 256 if n_channels == 4 else None       # remapped PLTE, for k <= 256
    palette, labels = palette_of(k, n_channels, alpha=alpha), repeating_labels(k, (40, 13))
    up = up_rows(labels)
    assert up.sum() > 10 and not up[0] and not up[4:7].any()
    data = png.encode_png(palette, labels)
    lines = scanlines(data)
    assert np.array_equal(lines[:, 0], np.where(up, 2, 0))
    assert (lines[up, 1:] == 0).all()
    assert_decodes_to(data, palette, labels)


def test_horizontal_gradient_is_small():
    """Every row the same: as Up rows of zeros, under half of zlib -9's size of None rows."""
    k, height, width = 256, 400, 3000
    labels = np.broadcast_to((np.arange(width) * k // width).astype(np.uint8), (height, width))
    palette = palette_of(k, 3)
    data = png.encode_png(palette, labels)
    assert (scanlines(data)[1:, 0] == 2).all()
    none_rows = np.hstack([np.zeros((height, 1), np.uint8), labels])
    idat = sum(len(p) for p in payloads(data, b"IDAT"))
    assert 2 * idat < len(zlib.compress(none_rows.tobytes(), 9))
    assert_decodes_to(data, palette, labels)


def test_gray_palette_gives_gray_plte_entries():
    palette = np.array([[0], [7], [200], [255], [31]], np.uint8)
    data = png.encode_png(palette, labels_of(5, (6, 7)))
    plte = np.frombuffer(payloads(data, b"PLTE")[0], np.uint8).reshape(-1, 3)
    assert (plte == plte[:, :1]).all() and sorted(plte[:, 0]) == sorted(palette[:, 0])


def test_opaque_rgba_writes_no_trns():
    palette = palette_of(16, 4)
    assert (palette[:, 3] == 255).all()
    data = png.encode_png(palette, labels_of(16, (8, 9)))
    assert payloads(data, b"tRNS") == []
    assert_decodes_to(data, palette, labels_of(16, (8, 9)))


def test_trns_is_as_short_as_possible():
    """Translucent entries move to the front of PLTE; tRNS stops at the last of them."""
    alpha = [255, 255, 255, 40, 255, 255, 0, 255]
    palette, labels = palette_of(8, 4, alpha=alpha), labels_of(8, (10, 13))
    data = png.encode_png(palette, labels)
    (trns,) = payloads(data, b"tRNS")
    assert sorted(trns) == [0, 40]
    assert_decodes_to(data, palette, labels)
    # a palette already in that order is kept as it is
    front = palette[[3, 6, 0, 1, 2, 4, 5, 7]]
    plte = payloads(png.encode_png(front, labels), b"PLTE")[0]
    assert plte == front[:, :3].tobytes()


@pytest.mark.parametrize("k", [16, 256, 1000])
def test_uint16_and_other_integer_labels(k):
    palette = palette_of(k, 3)
    labels = labels_of(k, (19, 23), dtype=np.uint16)
    data = png.encode_png(palette, labels)
    assert_decodes_to(data, palette, labels)
    for dtype in (np.int32, np.int64, np.uint32):
        assert png.encode_png(palette, labels.astype(dtype)) == data
    if k <= 256:
        assert png.encode_png(palette, labels.astype(np.uint8)) == data


def test_non_contiguous_labels_and_list_palette():
    labels = labels_of(16, (20, 30))
    palette = palette_of(16, 3)
    view = labels[::2, 1::3]
    data = png.encode_png(palette.tolist(), view)
    assert data == png.encode_png(palette, np.ascontiguousarray(view))
    assert_decodes_to(data, palette, view)


# --------------------------------------------------------------------------
# levels and the optimizer
# --------------------------------------------------------------------------
@pytest.mark.parametrize("level", range(10))
def test_every_level_decodes(level):
    palette, labels = palette_of(16, 4, alpha=np.arange(16) * 16), labels_of(16, (40, 50))
    data = png.encode_png(palette, labels, level=level)
    assert_decodes_to(data, palette, labels)
    assert zlib.decompress(b"".join(payloads(data, b"IDAT")))   # standard zlib reads it too


def test_level_0_stores_and_9_compresses():
    palette = palette_of(4, 3)
    labels = np.repeat(labels_of(4, (1, 300)), 60, axis=0)     # very compressible
    raw_size = 60 * (1 + 300 * 2 // 8)
    stored = b"".join(payloads(png.encode_png(palette, labels, level=0), b"IDAT"))
    small = b"".join(payloads(png.encode_png(palette, labels, level=9), b"IDAT"))
    assert len(stored) > raw_size and len(small) < raw_size // 10


@pytest.mark.parametrize("level", [-1, 10, 100])
def test_level_out_of_range(level):
    with pytest.raises(ValueError, match=f"level={level} must be between 0"):
        png.encode_png(palette_of(2, 3), labels_of(2, (2, 2)), level=level)


@pytest.mark.parametrize("level", [6.0, "6", True, None])
def test_level_of_wrong_type(level):
    with pytest.raises(TypeError, match="level=.* must be an int"):
        png.encode_png(palette_of(2, 3), labels_of(2, (2, 2)), level=level)


@pytest.mark.parametrize("k, n_channels", [(2, 3), (16, 4), (200, 1), (300, 3)])
def test_optimize_keeps_the_pixels(k, n_channels):
    alpha = np.arange(k) % 256 if n_channels == 4 else None
    palette = palette_of(k, n_channels, alpha=alpha)
    labels = np.sort(labels_of(k, (64, 64)), axis=1)           # runs: something to gain
    plain = png.encode_png(palette, labels)
    optimized = png.encode_png(palette, labels, optimize=True)
    assert optimized == png.optimize_png(plain)
    assert len(optimized) < len(plain)
    parse(optimized)
    assert_decodes_to(optimized, palette, labels)


@pytest.mark.parametrize("data", [b"", b"not a png", SIGNATURE + bytes(30)])
def test_optimize_png_rejects_bad_data(data):
    with pytest.raises(ValueError, match="oxipng cannot optimize this data") as caught:
        png.optimize_png(data)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------
# streaming writer
# --------------------------------------------------------------------------
def bands_of(labels, sizes):
    start = 0
    for size in sizes:
        yield labels[start:start + size]
        start += size


@pytest.mark.parametrize("k, n_channels", [(2, 3), (16, 4), (256, 1), (1000, 3)])
def test_streaming_equals_encode_png(k, n_channels, monkeypatch):
    monkeypatch.setattr(png, "PIECE_SIZE", 100)     # many pieces, cut across rows and bands
    alpha = np.arange(k) % 256 if n_channels == 4 else None
    palette, labels = palette_of(k, n_channels, alpha=alpha), labels_of(k, (61, 29))
    whole = png.encode_png(palette, labels)
    assert len(payloads(whole, b"IDAT")) > 3
    sizes = [0, 1, 7, 0, 2, 30, 1, 20]
    assert sum(sizes) == 61
    out = io.BytesIO()
    written = png.write_png_bands(out, palette, 61, 29, bands_of(labels, sizes))
    assert written == len(out.getvalue())
    assert out.getvalue() == whole
    assert_decodes_to(whole, palette, labels)


@pytest.mark.parametrize("k, n_channels", [(4, 3), (256, 1), (1000, 3)])
def test_streaming_repeated_rows_across_bands(k, n_channels, monkeypatch):
    """A band's first row is compared with the previous band's last, by value."""
    monkeypatch.setattr(png, "PIECE_SIZE", 64)
    palette, labels = palette_of(k, n_channels), repeating_labels(k, (30, 9), seed=k)
    labels[12:15] = labels[11]
    whole = png.encode_png(palette, labels)
    # bands that start on repeated rows, one row, empty, and of a different dtype
    sizes = [3, 9, 0, 1, 1, 6, 10]
    assert sum(sizes) == 30
    bands = [b.astype(np.uint16) if i % 2 else b for i, b in enumerate(bands_of(labels, sizes))]
    out = io.BytesIO()
    png.write_png_bands(out, palette, 30, 9, bands)
    assert out.getvalue() == whole
    assert_decodes_to(whole, palette, labels)


def test_streaming_compares_band_rows_by_value():
    """A uint16 row holding 300 + i is not the uint8 row holding 44 + i after it."""
    k, width = 1000, 6
    palette = palette_of(k, 3)
    top = np.arange(300, 300 + width, dtype=np.uint16)[None]
    bottom = (top % 256).astype(np.uint8)
    labels = np.vstack([top, bottom]).astype(np.uint16)
    out = io.BytesIO()
    png.write_png_bands(out, palette, 2, width, [top, bottom])
    assert out.getvalue() == png.encode_png(palette, labels)
    assert_decodes_to(out.getvalue(), palette, labels)


def test_streaming_bands_may_reuse_one_buffer():
    """A reader that fills the same array for each band: the row above is the
    previous band's, kept by value, not whatever the buffer holds now."""
    palette = palette_of(4, 3)
    labels = np.array([[0, 1, 2], [3, 2, 1], [1, 0, 3], [1, 0, 3]], np.uint8)
    buffer = np.empty((2, 3), np.uint8)
    out = io.BytesIO()
    with png.PngWriter(out, palette, 4, 3) as writer:
        for start in (0, 2):
            buffer[:] = labels[start:start + 2]     # the 2nd band's rows repeat each other
            writer.write_rows(buffer)
    assert out.getvalue() == png.encode_png(palette, labels)
    assert_decodes_to(out.getvalue(), palette, labels)


def test_streaming_rejected_band_is_not_the_row_above():
    palette = palette_of(4, 3)
    labels = np.array([[0, 1, 2], [3, 2, 1], [3, 2, 1]], np.uint8)
    bad = labels[1:2].copy()
    bad[0, 0] = 4                                   # rejected: holds a label >= k
    out = io.BytesIO()
    with png.PngWriter(out, palette, 3, 3) as writer:
        writer.write_rows(labels[:1])
        with pytest.raises(ValueError, match="labels hold 4"):     # ends as the next starts
            writer.write_rows(np.vstack([bad, labels[1:2]]))
        writer.write_rows(labels[1:])
    assert out.getvalue() == png.encode_png(palette, labels)


def test_streaming_context_manager_and_row_by_row():
    palette, labels = palette_of(17, 3), labels_of(17, (9, 10))
    out = io.BytesIO()
    with png.PngWriter(out, palette, 9, 10, level=3) as writer:
        for row in labels:
            writer.write_rows(row[None, :])
        assert writer.rows_written == 9
    assert out.getvalue() == png.encode_png(palette, labels, level=3)
    assert writer.close() == len(out.getvalue())            # closing twice is harmless


@pytest.mark.parametrize("sizes", [[3, 3], [8], [], [4, 0, 4]])
def test_streaming_too_few_rows(sizes):
    palette, labels = palette_of(4, 3), labels_of(4, (9, 5))
    with pytest.raises(ValueError, match=r"only \d+ of height=9 rows"):
        png.write_png_bands(io.BytesIO(), palette, 9, 5, bands_of(labels, sizes))


def test_streaming_too_many_rows():
    palette, labels = palette_of(4, 3), labels_of(4, (9, 5))
    writer = png.PngWriter(io.BytesIO(), palette, 8, 5)
    writer.write_rows(labels[:6])
    with pytest.raises(ValueError, match=r"6 \+ 3 rows pass the image's height=8"):
        writer.write_rows(labels[6:])
    writer.write_rows(labels[6:8])          # nothing of the rejected band was taken
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write_rows(labels[:1])


def test_streaming_bad_band():
    palette = palette_of(4, 3)
    writer = png.PngWriter(io.BytesIO(), palette, 8, 5)
    with pytest.raises(ValueError, match=r"band has shape \(2, 6\)"):
        writer.write_rows(np.zeros((2, 6), np.uint8))
    with pytest.raises(ValueError, match=r"band has shape \(5,\)"):
        writer.write_rows(np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="labels hold 4"):
        writer.write_rows(np.full((2, 5), 4, np.uint8))
    assert writer.rows_written == 0


def test_streaming_error_inside_with_keeps_the_error():
    with pytest.raises(KeyError):
        with png.PngWriter(io.BytesIO(), palette_of(4, 3), 8, 5) as writer:
            writer.write_rows(labels_of(4, (3, 5)))
            raise KeyError("boom")


@pytest.mark.parametrize("height, width", [(0, 5), (5, 0), (2**31, 1), (-1, 3)])
def test_streaming_bad_size(height, width):
    with pytest.raises(ValueError, match="must be between 1 and"):
        png.PngWriter(io.BytesIO(), palette_of(4, 3), height, width)


# --------------------------------------------------------------------------
# bad input: one-line messages
# --------------------------------------------------------------------------
@pytest.mark.parametrize("palette, error, match", [
    (np.zeros((4, 2), np.uint8), ValueError, r"palette has shape \(4, 2\)"),
    (np.zeros((4,), np.uint8), ValueError, r"palette has shape \(4,\)"),
    (np.zeros((0, 3), np.uint8), ValueError, r"palette has shape \(0, 3\)"),
    (np.zeros((4, 3, 1), np.uint8), ValueError, r"palette has shape \(4, 3, 1\)"),
    (np.zeros((4, 3), np.float32), TypeError, "palette has dtype float32"),
    (np.full((4, 3), 256), ValueError, "palette holds 256"),
    (np.full((4, 3), -1), ValueError, "palette holds -1"),
])
def test_bad_palette(palette, error, match):
    with pytest.raises(error, match=match) as caught:
        png.encode_png(palette, np.zeros((2, 2), np.uint8))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("labels, error, match", [
    (np.zeros((2, 2, 1), np.uint8), ValueError, r"labels have shape \(2, 2, 1\)"),
    (np.zeros(5, np.uint8), ValueError, r"labels have shape \(5,\)"),
    (np.zeros((0, 5), np.uint8), ValueError, r"labels have shape \(0, 5\)"),
    (np.zeros((2, 2), np.float64), TypeError, "labels have dtype float64"),
    (np.zeros((2, 2), bool), TypeError, "labels have dtype bool"),
    (np.array([[0, 1], [2, 5]], np.uint8), ValueError, r"labels hold 5: palette indices must be 0..4"),
    (np.array([[0, 1], [2, 5]], np.uint16), ValueError, r"labels hold 5: palette indices must be 0..4"),
    (np.array([[0, 1], [2, 9]], np.int64), ValueError, r"labels hold 9"),
    (np.array([[0, -1]], np.int64), ValueError, r"labels hold -1"),
])
def test_bad_labels(labels, error, match):
    with pytest.raises(error, match=match) as caught:
        png.encode_png(palette_of(5, 3), labels)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("k", [3, 256, 300])
def test_label_equal_to_k_is_caught_in_any_row(k, threads, monkeypatch):
    """The kernel's check sees every worker's rows, not only the first."""
    monkeypatch.setattr(png, "_PARALLEL_MIN", 0)        # the parallel kernel, even this small
    numba.set_num_threads(2)
    labels = labels_of(k, (30, 7), dtype=np.uint16 if k >= 256 else np.uint8)
    labels[-1, -1] = k
    with pytest.raises(ValueError, match=f"labels hold {k}"):
        png.encode_png(palette_of(k, 3), labels)


# --------------------------------------------------------------------------
# determinism: threads, workers, pieces
# --------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 16, 200, 700])
def test_pack_kernels_at_forced_worker_counts(k):
    labels = labels_of(k, (13, 21), seed=k)
    layout = png._Layout(palette_of(k, 3), 13, 21)
    table = layout._table(labels.dtype)
    outs = []
    for serial in (False, True):
        for n_workers in (1, 2, 3, 7):
            out = np.full((13, layout.row_bytes), 77, np.uint8)   # no stale zeros to hide in
            if layout.indexed:
                kernel = kernels.pack_indexed_serial if serial else kernels.pack_indexed
                tops = kernel(labels, table, layout.remap, layout.bits, False, out, n_workers)
            else:
                kernel = kernels.pack_truecolour_serial if serial else kernels.pack_truecolour
                tops = kernel(labels, table, False, out, n_workers)
            assert len(tops) == n_workers and tops.max() == labels.max()
            outs.append(out)
    want = (pack_reference(labels, layout.bits) if layout.indexed
            else palette_of(k, 3)[labels].reshape(13, -1))
    for out in outs:
        assert np.array_equal(out, scanlines_reference(want, labels))


@pytest.mark.parametrize("first_up", [False, True])
@pytest.mark.parametrize("k", [2, 16, 200, 700])
def test_up_rows_at_share_boundaries(k, first_up):
    """Every row repeats the one above: each worker's first row must look across its share."""
    height, width = 14, 11
    labels = np.broadcast_to(labels_of(k, (1, width), seed=k), (height, width)).copy()
    layout = png._Layout(palette_of(k, 3), height, width)
    table = layout._table(labels.dtype)
    want = (pack_reference(labels, layout.bits) if layout.indexed
            else palette_of(k, 3)[labels].reshape(height, -1))
    want = scanlines_reference(want, labels, first_up)
    assert want[0, 0] == (2 if first_up else 0) and (want[1:, 0] == 2).all()
    for serial in (False, True):
        for n_workers in (1, 2, 3, 7):
            out = np.full((height, layout.row_bytes), 77, np.uint8)
            if layout.indexed:
                kernel = kernels.pack_indexed_serial if serial else kernels.pack_indexed
                kernel(labels, table, layout.remap, layout.bits, first_up, out, n_workers)
            else:
                kernel = kernels.pack_truecolour_serial if serial else kernels.pack_truecolour
                kernel(labels, table, first_up, out, n_workers)
            assert np.array_equal(out, want), (serial, n_workers)


@pytest.mark.parametrize("k, n_channels", [(16, 3), (256, 4), (1000, 3)])
def test_bytes_do_not_depend_on_threads(k, n_channels, threads, monkeypatch):
    monkeypatch.setattr(png, "PIECE_SIZE", 500)         # several pieces in flight
    monkeypatch.setattr(png, "_BAND_BYTES", 1500)       # encode_png packs in several bands
    alpha = np.arange(k) % 256 if n_channels == 4 else None
    palette, labels = palette_of(k, n_channels, alpha=alpha), labels_of(k, (50, 120))
    got = {}
    for n in (1, 2):
        numba.set_num_threads(n)
        got[n] = png.encode_png(palette, labels)
    assert got[1] == got[2]
    assert len(payloads(got[1], b"IDAT")) > 4
    assert_decodes_to(got[1], palette, labels)


def test_pieces_at_the_real_size(threads):
    """Real pieces: dictionaries and sync flushes across rows, threads in flight."""
    k, shape = 256, (700, 1000)                         # 2.7 pieces of scanlines
    palette = palette_of(k, 3)
    labels = (np.add.outer(np.arange(shape[0]) // 7, np.arange(shape[1]) // 5) % k).astype(np.uint8)
    got = {}
    for n in (1, 2):
        numba.set_num_threads(n)
        got[n] = png.encode_png(palette, labels, level=1)
    assert got[1] == got[2]
    assert len(payloads(got[1], b"IDAT")) == shape[0] * (shape[1] + 1) // png.PIECE_SIZE + 1 == 3
    assert_decodes_to(got[1], palette, labels)


def test_zlib_stream_header_and_adler():
    palette, labels = palette_of(16, 3), labels_of(16, (20, 20))
    for level, flevel in ((0, 0), (1, 0), (4, 1), (6, 2), (9, 3)):
        stream = b"".join(payloads(png.encode_png(palette, labels, level=level), b"IDAT"))
        cmf, flg = stream[0], stream[1]
        assert cmf == 0x78 and (cmf * 256 + flg) % 31 == 0 and flg >> 6 == flevel
        assert not flg & 0x20                                   # no preset dictionary
        raw = zlib.decompress(stream)
        assert stream[-4:] == struct.pack(">I", zlib.adler32(raw))


# --------------------------------------------------------------------------
# the benchmark keeps running
# --------------------------------------------------------------------------
def test_benchmark_script_runs(capsys):
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:        # benchmarks/ is a folder of the repository, not installed
        sys.path.insert(0, root)
    from benchmarks import png_encode

    argv = ["--size", "24x40", "--k", "4", "300", "--repeats", "1", "--alternatives"]
    assert png_encode.main(argv) == 0
    out = capsys.readouterr().out
    default = f"encode_png default (level {png.DEFAULT_LEVEL})"
    for text in ("k=4 ", "k=300 ", "Pillow level 6", default, "write_png_bands",
                 "optimize=True", "by luma       filter adaptive min-sum"):
        assert text in out
