"""kmeans_fast.io against the hostile inputs of issue 11: the library's side.

Headers read before decoding (item 7), frames and pages (item 11), opaque
RGBA (item 11), all-or-nothing writes (item 3), special files and symbolic
links (item 1), names (item 6), signals while writing (item 2).
"""

import io as pyio
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from kmeans_fast import io as kio

from conftest import chunks, encode

REPO = Path(__file__).resolve().parents[1]


def png_claiming(width, height, depth=8, colour_type=2):
    """A small PNG whose header claims width x height; its data holds 1000 zero bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))


def jpeg_claiming(width, height):
    """An 8x8 JPEG whose frame header (SOF0) is patched to say width x height."""
    ok, data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(data.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# --------------------------------------------------------------------------
# item 7: the header first
# --------------------------------------------------------------------------
@pytest.mark.parametrize("make, expect", [
    (lambda rgb: encode(rgb), (64, 48, 3, 1, 1, "PNG")),
    (lambda rgb: encode(rgb[:, :, 0].copy()), (64, 48, 1, 1, 1, "PNG")),
    (lambda rgb: encode(np.dstack([rgb, rgb[:, :, 0]])), (64, 48, 4, 1, 1, "PNG")),
    (lambda rgb: encode(rgb.astype(np.uint16) * 257), (64, 48, 3, 2, 1, "PNG")),
    (lambda rgb: encode(rgb[:, :, 0].astype(np.uint16)), (64, 48, 1, 2, 1, "PNG")),
    (lambda rgb: encode(rgb.astype(np.uint16), ".tiff"), (64, 48, 3, 2, 1, "TIFF")),
    (lambda rgb: encode(rgb, ".jpg"), (64, 48, 3, 1, 1, "JPEG")),
    (lambda rgb: png_claiming(30000, 20000), (30000, 20000, 3, 1, 1, "PNG")),
    (lambda rgb: jpeg_claiming(40000, 30000), (40000, 30000, 3, 1, 1, "JPEG")),
])
def test_image_header(rgb, make, expect):
    h = kio.image_header(make(rgb))
    assert (h.width, h.height, h.channels, h.bytes_per_sample, h.frames, h.format) == expect


def test_image_header_of_what_pillow_does_not_know():
    assert kio.image_header(b"not an image at all") is None
    assert kio.image_header(b"\x89PNG\r\n\x1a\n" + bytes(40)) is None


def test_memory_needed_counts_the_decode_and_the_work():
    h = kio.ImageHeader(width=100, height=50, channels=3, bytes_per_sample=2, frames=1,
                        format="PNG")
    pixels = 100 * 50
    assert kio.memory_needed(h) == pixels * 3 * 2 + kio._WORKING_COPIES * pixels * 3


def test_available_memory():
    have = kio.available_memory()
    assert have is None or have > 0


def test_default_limit_refuses_before_decoding(monkeypatch):
    decoded = []
    real = kio._decode_raw
    monkeypatch.setattr(kio, "_decode_raw", lambda data: decoded.append(1) or real(data))
    started = time.perf_counter()
    with pytest.raises(kio.ImageIOError, match=r"30000x30000 \(900 megapixels\).*500,000,000"):
        kio.decode_image(jpeg_claiming(30000, 30000), "'huge.jpg'")
    assert time.perf_counter() - started < 1 and not decoded


def test_memory_limit(monkeypatch, rgb):
    monkeypatch.setattr(kio, "available_memory", lambda: 10 ** 6)
    with pytest.raises(kio.ImageIOError, match="2000x2000.*memory.*1 MB is available"):
        kio.decode_image(png_claiming(2000, 2000), "'big.png'")
    # a real 100 MP photo fits in 8 GB: the claim passes the check, and the decoder
    # then finds the data missing
    monkeypatch.setattr(kio, "available_memory", lambda: 8 * 2 ** 30)
    with pytest.raises(kio.ImageIOError, match="cannot decode"):
        kio.decode_image(png_claiming(12000, 8500), "'100mp.png'")
    monkeypatch.setattr(kio, "available_memory", lambda: None)      # unknown: no memory check
    assert kio.decode_image(encode(rgb)).shape == rgb.shape


def test_explicit_limits(rgb, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(encode(rgb))
    with pytest.raises(kio.ImageIOError, match="3,072 pixels.*limit of 3,000"):
        kio.read_image(path, max_pixels=3000)
    assert kio.read_image(path, max_pixels=3072).shape == rgb.shape
    with pytest.raises(kio.ImageIOError, match="cannot decode"):      # None: no limit
        kio.decode_image(png_claiming(30000, 30000), max_pixels=None)
    with pytest.raises(kio.ImageIOError, match="OpenCV decodes at most 1,073,741,824"):
        kio.decode_image(png_claiming(40000, 30000), max_pixels=None)
    with pytest.raises(TypeError, match="max_pixels='many'"):
        kio.read_image(path, max_pixels="many")
    with pytest.raises(ValueError, match="max_pixels=0"):
        kio.read_image(path, max_pixels=0)


# --------------------------------------------------------------------------
# item 11: frames and pages, opaque RGBA
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, kind", [("GIF", "frames"), ("TIFF", "pages"), ("PNG", "frames"),
                                       ("WEBP", "frames")])
def test_first_of_several_frames_is_read_with_a_warning(fmt, kind):
    frames = [Image.fromarray(np.full((12, 16, 3), 60 * i, np.uint8)) for i in range(3)]
    out = pyio.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], lossless=True)
    with pytest.warns(kio.MultiFrameWarning, match=f"has 3 {kind}: only the first is used"):
        image = kio.decode_image(out.getvalue(), "'x'")
    assert image.shape[:2] == (12, 16) and (image[:, :, :3] == 0).all()


def test_single_frame_files_give_no_warning(rgb, recwarn):
    one = pyio.BytesIO()
    Image.fromarray(rgb).save(one, "GIF")
    kio.decode_image(one.getvalue())
    kio.decode_image(encode(rgb, ".tiff"))
    assert not [w for w in recwarn if issubclass(w.category, kio.MultiFrameWarning)]


def test_opaque_rgba_palette_has_no_trns():
    palette = np.array([[10, 20, 30, 255], [40, 50, 60, 255], [70, 80, 90, 255]], np.uint8)
    labels = (np.arange(30).reshape(5, 6) % 3).astype(np.uint8)
    data = kio.png_bytes(palette, labels)
    assert "tRNS" not in chunks(data)
    assert np.array_equal(kio.decode_image(data), palette[labels][:, :, :3])
    palette[1, 3] = 128                                  # one translucent colour: tRNS again
    data = kio.png_bytes(palette, labels)
    assert "tRNS" in chunks(data)
    assert np.array_equal(kio.decode_image(data), palette[labels])


# --------------------------------------------------------------------------
# item 3: all or nothing
# --------------------------------------------------------------------------
def _replace_fails_for(monkeypatch, name, error=PermissionError(1, "Operation not permitted")):
    real_replace = os.replace
    failed = []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name and not failed:
            failed.append(dst)
            raise error
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return failed


@pytest.mark.parametrize("hard_links", [True, False])
def test_write_files_is_all_or_nothing(tmp_path, monkeypatch, hard_links):
    (tmp_path / "old.png").write_bytes(b"old png")
    (tmp_path / "b.jpg").write_bytes(b"old jpg")
    if not hard_links:                                   # a file system without them: copies
        monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(
            PermissionError(1, "Operation not permitted")))
    failed = _replace_fails_for(monkeypatch, "b.jpg")
    with pytest.raises(kio.ImageIOError, match="cannot write .*b.jpg.*no file was changed"):
        kio.write_files({tmp_path / "new.png": b"new", tmp_path / "old.png": b"newer",
                         tmp_path / "b.jpg": b"newest"})
    assert failed
    assert sorted(os.listdir(tmp_path)) == ["b.jpg", "old.png"]     # new.png taken back
    assert (tmp_path / "old.png").read_bytes() == b"old png"
    assert (tmp_path / "b.jpg").read_bytes() == b"old jpg"


def test_write_files_keeps_nothing_extra_when_it_works(tmp_path):
    (tmp_path / "a.png").write_bytes(b"old")
    kio.write_files({tmp_path / "a.png": b"A", tmp_path / "b.jpg": b"B"})
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.jpg"]
    assert (tmp_path / "a.png").read_bytes() == b"A"


def test_sticky_folder_other_owner(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "theirs.jpg").write_bytes(b"theirs")
    (shared / "mine.png").write_bytes(b"mine")
    if os.geteuid() == 0:
        os.chown(shared / "theirs.jpg", 12345, 12345)
        os.chown(shared, 23456, 23456)
    me = os.stat(shared / "mine.png").st_uid
    monkeypatch.setattr(os, "geteuid", lambda: me if me != 0 else 4242)
    if me == 0:
        os.chown(shared / "mine.png", 4242, 4242)
    with pytest.raises(kio.ImageIOError, match="theirs.jpg.*another user.*sticky"):
        kio.check_output(shared / "theirs.jpg")
    kio.check_output(shared / "mine.png")               # my own file: fine
    kio.check_output(shared / "new.png")                # a new file: fine
    shared.chmod(0o777)                                 # not sticky: anyone may replace it
    kio.check_output(shared / "theirs.jpg")


# --------------------------------------------------------------------------
# items 1 and 6: what a target may be
# --------------------------------------------------------------------------
def test_write_through_a_symbolic_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "t.png").write_bytes(b"old")
    os.symlink("real/t.png", tmp_path / "link.png")
    kio.check_output(tmp_path / "link.png")
    kio.write_bytes(tmp_path / "link.png", b"new")
    assert os.path.islink(tmp_path / "link.png")
    assert (tmp_path / "real" / "t.png").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path / "real")) == ["t.png"]


def test_long_names(tmp_path):
    longest = tmp_path / ("x" * 251 + ".png")           # 255 bytes
    kio.check_output(longest)
    kio.write_bytes(longest, b"ok")
    assert longest.read_bytes() == b"ok"
    too_long = tmp_path / ("x" * 252 + ".png")
    for call in (kio.check_output, lambda p: kio.write_bytes(p, b"no")):
        with pytest.raises(kio.ImageIOError, match=r"too long \(256 bytes; this file system "
                                                   r"allows 255\)") as caught:
            call(too_long)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 200
    assert sorted(os.listdir(tmp_path)) == [longest.name]


def test_temporary_names_are_short(tmp_path, monkeypatch):
    seen = []
    real_open = os.open

    def spy(path, flags, *args):
        seen.append(Path(path).name)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", spy)
    kio.write_bytes(tmp_path / ("y" * 200 + ".png"), b"data")
    temps = [n for n in seen if n.endswith(".tmp")]
    assert temps and all(len(n) <= 16 for n in temps)


# --------------------------------------------------------------------------
# item 2: signals while writing, in a real process
# --------------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    # as started from a terminal: a parent run under nohup hands down an ignored
    # SIGHUP, which io rightly leaves ignored
    for s in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # ignored under "pytest &"
    from kmeans_fast import io
    marker = sys.argv[1]
    real_fsync = os.fsync
    calls = []
    def slow_fsync(fd):
        real_fsync(fd)
        calls.append(fd)
        if len(calls) == 2:                 # both files written, none renamed yet
            open(marker, "w").close()
            time.sleep(60)
    os.fsync = slow_fsync
    try:
        io.write_files({"a.png": b"new a", "b.jpg": b"new b"})
    except BaseException as e:
        print(type(e).__name__, getattr(e, "signum", ""), e)
""")


@pytest.mark.parametrize("signum, caught", [(signal.SIGHUP, "Interrupted"),
                                            (signal.SIGQUIT, "Interrupted"),
                                            (signal.SIGTERM, "Interrupted"),
                                            (signal.SIGINT, "KeyboardInterrupt")])
def test_signals_while_writing_leave_nothing(tmp_path, signum, caught):
    work = tmp_path / "work"
    work.mkdir()
    (work / "b.jpg").write_bytes(b"old b")
    marker = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)], cwd=work,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert len([n for n in os.listdir(work) if n.endswith(".tmp")]) == 2
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out.startswith(caught), out
    if caught == "Interrupted":
        assert f"{signum.value} {signum.name} arrived while writing files" in out
    assert os.listdir(work) == ["b.jpg"] and (work / "b.jpg").read_bytes() == b"old b"
