import io as pyio
import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from kmeans_fast import io as kio

from conftest import chunks, digest, encode, ihdr, sample, save


def palette_of(n_colors, n_channels, seed=0):
    rng = np.random.default_rng(seed)
    # distinct rows, so that the round trip can be checked colour by colour
    keys = rng.choice(1 << 24, n_colors, replace=False)
    cols = [(keys >> s) & 255 for s in (0, 8, 16, 4)][:n_channels]
    if n_channels == 1:
        cols = [np.arange(n_colors) % 256]
    return np.stack(cols, axis=1).astype(np.uint8)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff", ".webp"])
def test_read_lossless_formats_as_rgb(tmp_path, rgb, ext):
    params = (cv2.IMWRITE_WEBP_QUALITY, 101) if ext == ".webp" else ()
    got = kio.read_image(save(tmp_path / f"a{ext}", rgb, params=params))
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.array_equal(got, rgb)


@pytest.mark.parametrize("params", [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)])
def test_read_jpeg(tmp_path, rgb, params):
    got = kio.read_image(save(tmp_path / "a.jpg", rgb, params=params))
    assert got.shape == rgb.shape
    assert np.abs(got.astype(int) - rgb).mean() < 8


def test_read_rgba_and_gray(tmp_path, rgb):
    rgba = np.dstack([rgb, np.arange(rgb[:, :, 0].size, dtype=np.uint8).reshape(rgb.shape[:2])])
    assert np.array_equal(kio.read_image(save(tmp_path / "a.png", rgba)), rgba)
    gray = rgb[:, :, 1].copy()
    got = kio.read_image(save(tmp_path / "g.png", gray))
    assert got.shape == gray.shape and np.array_equal(got, gray)


def test_16_bit_is_rounded_to_8_bit(tmp_path):
    values = np.arange(1 << 16, dtype=np.uint32)
    expect = ((values + 128) // 257).astype(np.uint8)       # round(v / 257)
    got = kio.read_image(save(tmp_path / "g16.png", values.astype(np.uint16).reshape(256, 256)))
    assert got.dtype == np.uint8 and np.array_equal(got.ravel(), expect)
    colour = np.stack([values, values[::-1], values], axis=1).astype(np.uint16)
    got = kio.read_image(save(tmp_path / "c16.tiff", colour.reshape(256, 256, 3)))
    assert np.array_equal(got.reshape(-1, 3), np.stack([expect, expect[::-1], expect], axis=1))


def _with_orientation(image, orientation, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = pyio.BytesIO()
    Image.fromarray(image).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def _upright(data):
    return np.asarray(ImageOps.exif_transpose(Image.open(pyio.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_exif_orientation(orientation, fmt):
    image = sample(30, 50)
    data = _with_orientation(image, orientation, fmt)
    assert np.array_equal(kio.decode_image(data), _upright(data))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_jpeg(orientation):
    data = _with_orientation(sample(30, 50), orientation, "JPEG")
    got = kio.decode_image(data)
    assert got.shape == _upright(data).shape
    assert np.abs(got.astype(int) - _upright(data)).mean() < 2


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_without_imdecode_with_metadata(monkeypatch, fmt):
    """OpenCV < 4.12 has no imdecodeWithMetadata: Pillow reads the orientation."""
    monkeypatch.delattr(cv2, "imdecodeWithMetadata", raising=False)
    data = _with_orientation(sample(30, 50), 6, fmt)
    assert kio.decode_image(data).shape == (50, 30, 3)


def test_non_ascii_path(tmp_path, rgb):
    path = save(tmp_path / "fotó_画像.png", rgb)
    assert np.array_equal(kio.read_image(path), rgb)
    out = tmp_path / "ünï_k4.png"
    kio.write_bytes(out, b"abc")
    assert out.read_bytes() == b"abc"


def _truncated_png(rgb):
    data = encode(rgb)
    return data[: len(data) // 2]


def _zero_tail_jpeg(rgb):
    """A download that stopped in a preallocated file: the tail is zeros."""
    data = bytearray(encode(rgb, ".jpg"))
    data[len(data) // 3:] = bytes(len(data) - len(data) // 3)
    return bytes(data)


def _corrupt_jpeg(rgb):
    data = bytearray(encode(rgb, ".jpg"))
    data[len(data) // 3 : len(data) // 3 + 200] = bytes(200)
    return bytes(data)


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"plain text, not an image\n", "cannot decode"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "cannot decode"),
    ("truncated png", "cannot decode"),
    ("truncated jpeg", "cannot decode"),
    ("zero-tail jpeg", "end marker"),
    ("corrupt jpeg", "Corrupt JPEG data"),
])
def test_bad_files(tmp_path, capfd, rgb, content, words):
    if content == "truncated png":
        content = _truncated_png(rgb)
    elif content == "truncated jpeg":
        data = encode(rgb, ".jpg")
        content = data[: len(data) * 2 // 3]
    elif content == "zero-tail jpeg":
        content = _zero_tail_jpeg(rgb)
    elif content == "corrupt jpeg":
        content = _corrupt_jpeg(rgb)
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(kio.ImageIOError, match=words) as caught:
        kio.read_image(path)
    assert "\n" not in str(caught.value)
    assert "bad.png" in str(caught.value)
    assert capfd.readouterr().err == ""         # the decoders' own chatter is caught


def test_a_few_stray_bytes_before_the_end_pass(rgb):
    """Some cameras leave a byte or two before EOI: the pixels are all there."""
    data = encode(rgb, ".jpg")
    stray = data[:-2] + b"\x12\x34" + data[-2:]
    assert np.array_equal(kio.decode_image(stray), kio.decode_image(data))


@pytest.mark.parametrize("said, damaged", [
    ("", False),
    ("libpng warning: iCCP: known incorrect sRGB profile\n", False),
    ("Corrupt JPEG data: 2 extraneous bytes before marker 0xd9\n", False),
    ("Corrupt JPEG data: 283 extraneous bytes before marker 0xd9\n", True),
    ("Corrupt JPEG data: bad Huffman code\n", True),
    ("Premature end of JPEG file\n", True),
    ("libpng error: PNG input buffer is incomplete\n", True),
    ("Corrupt JPEG data: 1 extraneous bytes before marker 0xd9\nPremature end of JPEG file",
     True),
])
def test_which_decoder_messages_mean_damage(said, damaged):
    assert kio._damaged(said) is damaged


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(kio.ImageIOError, match="does not exist"):
        kio.read_image(tmp_path / "nope.png")
    with pytest.raises(kio.ImageIOError, match="is a folder"):
        kio.read_image(tmp_path)


def test_float_samples_are_refused(tmp_path):
    path = tmp_path / "f.tiff"
    ok, data = cv2.imencode(".tiff", np.zeros((4, 4), np.float32))
    assert ok
    path.write_bytes(data.tobytes())
    with pytest.raises(kio.ImageIOError, match="float32"):
        kio.read_image(path)


# --------------------------------------------------------------------------
# the PNG
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_colors, bits", [
    (1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (200, 8), (256, 8)])
@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_indexed_png(tmp_path, n_colors, bits, n_channels):
    if n_channels == 1 and n_colors > 256:
        pytest.skip("gray has 256 levels")
    palette = palette_of(n_colors, n_channels)
    labels = (np.arange(24 * 20) % n_colors).reshape(24, 20).astype(np.uint8)
    data = kio.png_bytes(palette, labels)
    found = chunks(data)
    assert ihdr(data) == (bits, 3)                           # indexed, smallest depth
    plte = np.frombuffer(found["PLTE"][0], np.uint8).reshape(-1, 3)
    assert len(plte) == n_colors
    if n_channels == 4:
        # translucent entries may move to the front, so that tRNS stays short
        trns = np.frombuffer(found["tRNS"][0], np.uint8)
        alpha = np.concatenate([trns, np.full(n_colors - len(trns), 255, np.uint8)])
        assert (trns < 255).all() or len(trns) == 0
        entries = np.concatenate([plte, alpha[:, None]], axis=1)
        assert sorted(map(tuple, entries)) == sorted(map(tuple, palette))
    else:
        assert np.array_equal(plte, np.repeat(palette, 3, axis=1) if n_channels == 1
                              else palette)
        assert "tRNS" not in found
        with Image.open(pyio.BytesIO(data)) as im:           # indices come back as written
            assert im.mode == "P"
            assert np.array_equal(np.asarray(im), labels)
    path = tmp_path / "q.png"
    assert kio.write_png(path, palette, labels) == len(data) == path.stat().st_size
    back = kio.read_image(path)                              # pixels come back exactly
    want = palette[labels]
    if n_channels == 1:                                      # OpenCV expands a palette to colour
        want = np.repeat(want, 3, axis=2)
    assert np.array_equal(back, want)


@pytest.mark.parametrize("n_channels, colour_type", [(3, 2), (4, 6)])
def test_truecolour_png_above_256_colours(tmp_path, n_channels, colour_type):
    palette = palette_of(300, n_channels)
    labels = (np.arange(30 * 20) % 300).reshape(30, 20).astype(np.uint16)
    path = tmp_path / "t.png"
    kio.write_png(path, palette, labels)
    assert ihdr(path.read_bytes()) == (8, colour_type)
    assert np.array_equal(kio.read_image(path), palette[labels])


def test_png_level(rgb):
    labels = (rgb[:, :, 0] // 16).astype(np.uint8)
    palette = palette_of(16, 3)
    assert len(kio.png_bytes(palette, labels, level=0)) > len(kio.png_bytes(palette, labels))
    with pytest.raises(ValueError, match="level=10"):
        kio.png_bytes(palette, labels, level=10)


@pytest.mark.parametrize("n", [(1, 1), (2, 1), (3, 2), (16, 4), (17, 8), (256, 8), (257, None)])
def test_palette_bit_depth(n):
    assert kio.palette_bit_depth(n[0]) == n[1]


# --------------------------------------------------------------------------
# atomic writes and output checks
# --------------------------------------------------------------------------
def test_write_replaces_atomically_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    kio.write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["out.png"]

    def refuse(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(kio.ImageIOError, match="No space left"):
        kio.write_bytes(path, b"newer")
    assert path.read_bytes() == b"new"                       # the target is untouched
    assert sorted(os.listdir(tmp_path)) == ["out.png"]       # and no temporary file is left


def test_written_file_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        kio.write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640


def test_check_output(tmp_path, rgb):
    image = save(tmp_path / "in.png", rgb)
    assert kio.check_output(tmp_path / "out.png", avoid={"the input image": image}) \
        == tmp_path / "out.png"
    same = tmp_path / "sub" / ".." / "in.png"
    (tmp_path / "sub").mkdir()
    for path in (image, same):
        with pytest.raises(kio.ImageIOError, match="is the input image"):
            kio.check_output(path, avoid={"the input image": image})
    os.symlink(image, tmp_path / "link.png")
    with pytest.raises(kio.ImageIOError, match="is the input image"):
        kio.check_output(tmp_path / "link.png", avoid={"the input image": image})
    with pytest.raises(kio.ImageIOError, match="is a folder"):
        kio.check_output(tmp_path / "sub")
    with pytest.raises(kio.ImageIOError, match="does not exist"):
        kio.check_output(tmp_path / "nowhere" / "out.png")
    with pytest.raises(kio.ImageIOError, match="is not a folder"):
        kio.check_output(image / "out.png")
    assert sorted(os.listdir(tmp_path)) == ["in.png", "link.png", "sub"]   # probes removed
    assert digest(image) == digest(save(tmp_path / "again.png", rgb))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_check_output_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(kio.ImageIOError, match="cannot write in folder"):
            kio.check_output(folder / "out.png")
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------
def test_encode_jpeg(rgb):
    for image in (rgb, rgb[:, :, 0], np.dstack([rgb, rgb[:, :, 0]])):
        data = kio.encode_jpeg(image)
        assert data[:2] == b"\xff\xd8"
        back = kio.decode_image(data)
        assert back.shape[:2] == rgb.shape[:2]
        assert back.ndim == (2 if image.ndim == 2 else 3)
    assert len(kio.encode_jpeg(rgb, 30)) < len(kio.encode_jpeg(rgb, 95))
    with pytest.raises(ValueError, match="quality=0"):
        kio.encode_jpeg(rgb, 0)


@pytest.mark.parametrize("target", [1, 1500, 3000, 10 ** 7])
def test_jpeg_for_size_is_the_closest_quality(rgb, target):
    sizes = {q: len(kio.encode_jpeg(rgb, q)) for q in range(1, 101)}
    quality, data = kio.jpeg_for_size(rgb, target)
    assert len(data) == sizes[quality]
    assert abs(sizes[quality] - target) == min(abs(s - target) for s in sizes.values())
