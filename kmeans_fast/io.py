"""Reading and writing image files.

* :func:`read_image` decodes whatever OpenCV decodes (JPEG, PNG, TIFF, WebP,
  BMP, ...) from the file's bytes (so any path works, non-ASCII included),
  honours the EXIF orientation, reduces 16-bit samples to 8 bits with rounding
  and returns RGB, RGBA or gray (H, W) pixels.  The image's size is read from
  its header first: one too large for the memory available (or for a given
  ``max_pixels``) is refused before any decoding.
* :func:`write_png` writes a quantized image as an indexed PNG with Pillow, at
  the smallest bit depth its palette allows, or as a truecolour PNG when the
  palette holds more than 256 colours.
* :func:`encode_jpeg` and :func:`jpeg_for_size` make the JPEG comparison with
  OpenCV; :func:`write_bytes` and :func:`write_files` write encoded files.

Every write is atomic: the data goes to a temporary file in the target's
folder, which then replaces the target in one step (``os.replace``); on any
failure, and on SIGTERM, SIGHUP or SIGQUIT, the temporary file is removed, so a
failed write leaves nothing behind.  A symbolic link is written through (the
link stays, the file it points to is replaced); an existing target that is not
a regular file (``/dev/null``, a FIFO, a socket) is never replaced.  Problems
with files raise :class:`ImageIOError`, whose message is one line saying what
is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["ImageIOError", "Interrupted", "MultiFrameWarning", "PALETTE_MAX", "JPEG_QUALITY",
           "DEFAULT_MAX_PIXELS", "read_image", "decode_image", "image_header",
           "memory_needed", "available_memory", "return_freed_memory", "check_output",
           "palette_bit_depth", "png_bytes", "write_png", "encode_jpeg", "jpeg_for_size",
           "write_bytes", "write_files"]

PALETTE_MAX = 256           # the most colours an indexed PNG holds
JPEG_QUALITY = 95           # OpenCV's default JPEG quality
PNG_LEVEL = 5               # the PNG encoder's default level (kmeans_fast.png.DEFAULT_LEVEL)
DEFAULT_MAX_PIXELS = 500_000_000    # 500 MP: above the largest camera photos
# Memory for an image, in copies of its 8-bit pixels: the decoded image, the
# decoder's own copy, and what quantizing, encoding and measuring it add (the
# command peaks at ~4.5 copies on a 24 MP photo).
_WORKING_COPIES = 5
_EXIF_ORIENTATION = 0x0112

# EXIF orientation -> the transform that shows the stored pixels upright
_ORIENT = {
    2: lambda x: cv2.flip(x, 1),                                    # mirror left-right
    3: lambda x: cv2.rotate(x, cv2.ROTATE_180),
    4: lambda x: cv2.flip(x, 0),                                    # mirror top-bottom
    5: cv2.transpose,                                               # mirror along the diagonal
    6: lambda x: cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE),
    7: lambda x: cv2.rotate(cv2.transpose(x), cv2.ROTATE_180),     # the other diagonal
    8: lambda x: cv2.rotate(x, cv2.ROTATE_90_COUNTERCLOCKWISE),
}
_TO_RGB = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}
# what decoders print about damaged data that they may still decode
_DAMAGED = re.compile(r"premature end|truncated|incomplete|corrupt", re.IGNORECASE)
# ... except a few stray bytes just before the JPEG's end: common in camera
# files whose pixels are all there; many stray bytes mean the scan went wrong
_STRAY_END = re.compile(r"corrupt jpeg data: (\d+) extraneous bytes before marker 0xd9",
                        re.IGNORECASE)
_STRAY_END_OK = 16
_LOG_PREFIX = re.compile(r"^\[\s*\w+:\d+@[\d.]+\]\s+global\s+\S+\s+\S+\s+")   # OpenCV's log
# formats whose extra frames or pages are real images (not previews, as in MPO)
_MULTI_FRAME = {"GIF": "frames", "PNG": "frames", "WEBP": "frames", "AVIF": "frames",
                "TIFF": "pages"}
# Pillow mode -> the channels OpenCV decodes it to (palettes expand, gray+alpha gets colour)
_CHANNELS = {"1": 1, "L": 1, "I": 1, "F": 1, "P": 4, "PA": 4, "LA": 4, "RGB": 3,
             "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "CMYK": 4}


class ImageIOError(OSError):
    """An image file could not be read or written; the message says why."""


class Interrupted(BaseException):
    """SIGTERM, SIGHUP or SIGQUIT arrived while files were being written.

    The temporary files were removed and any target already replaced was put
    back, so nothing changed.  A ``BaseException``, like ``KeyboardInterrupt``:
    it ends the program unless caught.  ``signum`` is the signal's number.
    """

    def __init__(self, signum):
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} arrived while writing files: "
                         "nothing was written")


class MultiFrameWarning(UserWarning):
    """The file holds several frames or pages: only the first is read."""


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _decoder_messages():
    """Catch what C libraries print on file descriptor 2 while decoding.

    Yields a list that receives the text when the block ends.  Decoders
    (libpng, libjpeg, OpenCV's log) print warnings and errors straight to fd 2;
    catching them lets a failure be reported as one clear line instead.  Works
    with fd 2 closed (``2>&-``), and leaves it closed.
    """
    if sys.stderr is not None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
    text = []
    try:
        saved = os.dup(2)
    except OSError:             # fd 2 is closed
        saved = None
    try:
        with tempfile.TemporaryFile() as sink:
            # with fd 2 closed the sink itself may have got number 2
            if sink.fileno() != 2:
                os.dup2(sink.fileno(), 2)
            try:
                yield text
            finally:
                if saved is not None:
                    os.dup2(saved, 2)
                elif sink.fileno() != 2:
                    os.close(2)
                sink.seek(0)
                text.append(sink.read().decode("utf-8", "replace"))
    finally:
        if saved is not None:
            os.close(saved)


def _damaged(said):
    """Whether the decoders' messages say the pixels are damaged."""
    for line in said.splitlines():
        stray = _STRAY_END.search(line)
        if stray and int(stray.group(1)) <= _STRAY_END_OK:
            continue
        if _DAMAGED.search(line):
            return True
    return False


def _last_line(text):
    lines = [_LOG_PREFIX.sub("", line.strip()) for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _jpeg_is_cut(data):
    """True for a JPEG whose scan data has no end marker (EOI).

    libjpeg decodes such a file without a word when its tail is zeros (a
    download that stopped in a preallocated file).  Walk the marker segments
    to the first scan, then look for EOI: inside scan data 0xFF is always
    followed by 0x00 or a restart marker, so 0xFF 0xD9 there is the real end.
    """
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False            # not the layout expected: let the decoder judge
        marker = data[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
        elif marker == 0xDA:        # start of scan
            return data.find(b"\xff\xd9", i) < 0
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:     # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return True


@contextlib.contextmanager
def _quiet_pillow():
    """Pillow on untrusted headers: no warnings, no decompression-bomb limit.

    Pillow warns about damaged EXIF and large images through Python warnings;
    here they must neither reach stderr (where they would read as decoder
    damage) nor become errors under ``-W error``.  The size limit is ours
    (:func:`_check_size`), so Pillow's is lifted while a header is read.
    """
    saved = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _orientation_from_exif(exif):
    """The EXIF orientation (1 to 8) in raw EXIF bytes; 1 when absent or unreadable."""
    if not exif:
        return 1
    try:
        with _quiet_pillow():
            value = Image.Exif()
            value.load(exif)
            orientation = int(value.get(_EXIF_ORIENTATION, 1))
    except Exception:           # a damaged EXIF block must not stop the image
        return 1
    return orientation if orientation in _ORIENT else 1


def _orientation_with_pillow(data):
    """Fallback for OpenCV < 4.12 (no imdecodeWithMetadata): read EXIF with Pillow.

    Only for JPEG, PNG and WebP: OpenCV's TIFF decoder turns the pixels itself.
    """
    if not data.startswith((b"\xff\xd8", b"\x89PNG")) and data[8:12] != b"WEBP":
        return 1
    try:
        with _quiet_pillow(), Image.open(io.BytesIO(data)) as im:
            exif = im.getexif().tobytes()
    except Exception:           # Pillow may refuse what OpenCV reads: keep it upright
        return 1
    return _orientation_from_exif(exif)


def _decode_raw(data):
    """OpenCV decode of ``data`` (IMREAD_UNCHANGED) and its raw EXIF bytes (or None).

    Only OpenCV runs here: the caller catches what it prints on fd 2, and
    nothing else (Pillow's warnings about EXIF, say) may be taken for damage.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if hasattr(cv2, "imdecodeWithMetadata"):
        image, types, blocks = cv2.imdecodeWithMetadata(buf, cv2.IMREAD_UNCHANGED)
        exif = next((np.asarray(block).tobytes() for kind, block in zip(types, blocks)
                     if kind == cv2.IMAGE_METADATA_EXIF), None)
        return image, exif
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), None


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, before any decoding.

    Attributes
    ----------
    width, height : int
    channels : int
        Channels OpenCV decodes it to (1, 3 or 4; palettes count as 4).
    bytes_per_sample : int
        1 for 8-bit images, 2 for 16-bit ones, 4 for 32-bit ones.
    frames : int
        Frames (GIF, APNG, WebP, AVIF) or pages (TIFF); only the first is read.
    format : str
        Pillow's name for the format ("PNG", "JPEG", ...).
    """

    width: int
    height: int
    channels: int
    bytes_per_sample: int
    frames: int
    format: str


def image_header(data):
    """Size, channels, sample size and frames of an encoded image, from its header.

    Reads only the header (Pillow's lazy open), so a file claiming 100,000 x
    100,000 pixels costs nothing.

    Parameters
    ----------
    data : bytes
        The encoded image.

    Returns
    -------
    ImageHeader or None
        None when Pillow does not know the format (OpenCV may still decode it).
    """
    try:
        with _quiet_pillow(), Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            mode, fmt = im.mode, im.format or ""
            bits = 8
            if fmt == "PNG" and len(data) > 24:
                bits = data[24]                         # IHDR bit depth
            elif fmt == "TIFF":
                bits = max(im.tag_v2.get(258, (8,)) or (8,))
            elif mode.startswith("I;16"):
                bits = 16
            elif mode in ("I", "F"):
                bits = 32
            frames = int(getattr(im, "n_frames", 1)) if fmt in _MULTI_FRAME else 1
    except Exception:           # unknown to Pillow, or a header it cannot read
        return None
    channels = _CHANNELS.get(mode, 1 if mode.startswith("I") else 4)
    return ImageHeader(width=int(width), height=int(height), channels=channels,
                       bytes_per_sample=max(1, -(-int(bits) // 8)), frames=max(1, frames),
                       format=fmt)


def memory_needed(header):
    """Bytes that reading an image and working on it need, from its header.

    The decoder's output (at its own sample size) plus ``_WORKING_COPIES``
    copies of the 8-bit image: the RGB conversion, quantizing, encoding and
    measuring (the ``kmeans-fast`` command peaks at about 4.5 copies).
    """
    pixels = header.width * header.height
    decoded = pixels * header.channels * header.bytes_per_sample
    return decoded + _WORKING_COPIES * pixels * header.channels


def _read_int(path, scale=1):
    try:
        text = Path(path).read_text().split()
    except (OSError, ValueError):
        return None
    if not text or not text[0].isdigit():
        return None                             # "max": no limit
    return int(text[0]) * scale


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def available_memory():
    """Bytes of memory this process can still use, or None when unknown.

    Linux's MemAvailable (or the free physical pages elsewhere), lowered to
    what is left under a cgroup (container) memory limit.
    """
    found = [_meminfo_available()]
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:
            found.append(max(0, cap - used))
    found = [x for x in found if x is not None]
    return min(found) if found else None


_M_MMAP_THRESHOLD = -3      # glibc's mallopt() parameter
MMAP_THRESHOLD = 1 << 20    # blocks this big or bigger: straight from (and back to) the OS


def return_freed_memory():
    """Make this process's C allocator give large freed blocks back to the OS at once.

    glibc raises its mmap threshold each time a large block is freed (up to
    32 MiB), so later image-sized temporaries (labels, bands, buffers) come
    from its heap and stay there, freed but resident, under the next stage's
    arrays: about 90 MB more peak memory on a 24 MP photo.  A fixed threshold
    (:data:`MMAP_THRESHOLD`) keeps every block of 1 MiB or more mapped on its
    own, returned when freed.  Process-wide, so the command calls it (and its
    batch workers), not the library.  Does nothing on other C libraries.

    The price is page faults on fresh blocks: on a 24 MP photo, about 5x as
    many (0.3-0.8 s more system time on 2 cores; the command's wall time
    within noise).  Trimming the heaps between stages (``malloc_trim``)
    instead cost few faults but left the 96 MP peak 90 MB higher.

    Returns
    -------
    bool
        Whether the threshold was set (glibc only).
    """
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):     # not glibc
        return False
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


def _opencv_limit(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def _size(n_bytes):
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


def _check_max_pixels(max_pixels):
    if max_pixels is None or max_pixels == "auto":
        return max_pixels
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int):
        raise TypeError(f"max_pixels={max_pixels!r} must be 'auto', None or an integer")
    if max_pixels < 1:
        raise ValueError(f"max_pixels={max_pixels} must be >= 1 (None: no limit)")
    return max_pixels


def _check_size(header, name, max_pixels):
    """Refuse, before decoding, an image too large to read and work on."""
    w, h = header.width, header.height
    pixels = w * h
    count = f"{pixels / 1e6:,.0f} megapixels" if pixels >= 10**7 else f"{pixels:,} pixels"
    what = f"{name} is {w}x{h} ({count})"
    max_side = min(_opencv_limit("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20),
                   _opencv_limit("OPENCV_IO_MAX_IMAGE_HEIGHT", 1 << 20))
    opencv_max = _opencv_limit("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30)
    if pixels > opencv_max or w > max_side or h > max_side:
        raise ImageIOError(f"{what}: OpenCV decodes at most {opencv_max:,} pixels and "
                           f"{max_side:,} per side; use a smaller image")
    if max_pixels is None:
        return
    limit = DEFAULT_MAX_PIXELS if max_pixels == "auto" else max_pixels
    if pixels > limit:
        raise ImageIOError(f"{what}, more than the limit of {limit:,} pixels; use a smaller "
                           "image, or raise the limit (--max-pixels, max_pixels=)")
    if max_pixels == "auto":
        need, have = memory_needed(header), available_memory()
        if have is not None and need > have:
            raise ImageIOError(f"{what}: reading and quantizing it needs about {_size(need)} "
                               f"of memory, but {_size(have)} is available; use a smaller "
                               "image, or set the pixel limit yourself "
                               "(--max-pixels, max_pixels=)")


def decode_image(data, name="image", *, max_pixels="auto"):
    """Decode an encoded image (the bytes of a file) to 8-bit RGB, RGBA or gray.

    Parameters
    ----------
    data : bytes
        The encoded image: any format OpenCV decodes.
    name : str, optional
        How to name the image in error messages.
    max_pixels : "auto", int or None, optional
        Refuse, from the header and before decoding, an image of more pixels:
        "auto" (default) refuses more than :data:`DEFAULT_MAX_PIXELS` (500 MP)
        and more than fits in the available memory (see
        :func:`memory_needed`); an int is the limit itself; None sets no limit
        (OpenCV's own, 2**30 pixels, still holds).  Formats whose header Pillow
        cannot read are decoded unchecked.

    Returns
    -------
    ndarray of shape (H, W), (H, W, 3) or (H, W, 4), dtype uint8
        Gray, RGB or RGBA, turned upright as its EXIF orientation says; 16-bit
        samples are reduced to 8 bits with rounding (``round(v / 257)``).  Of
        a file with several frames or pages, the first, with a
        :class:`MultiFrameWarning`.

    Raises
    ------
    ImageIOError
        When the data is empty, not an image, corrupt or truncated, too large,
        or has samples other than 8- or 16-bit unsigned integers.
    """
    max_pixels = _check_max_pixels(max_pixels)
    if not data:
        raise ImageIOError(f"{name} is empty (0 bytes): it is not an image")
    header = image_header(data)
    if header is not None:
        _check_size(header, name, max_pixels)
    with _decoder_messages() as said:
        try:
            image, exif = _decode_raw(data)
        except cv2.error:
            image, exif = None, None
    said = said[0]
    cut = data.startswith(b"\xff\xd8") and _jpeg_is_cut(data)
    if cut and not said.strip():
        said = "the JPEG data stops before its end marker"
    if image is None or image.size == 0 or cut or _damaged(said):
        why = f" ({_last_line(said)})" if said.strip() else ""
        raise ImageIOError(f"cannot decode {name}: not an image, or a corrupt or truncated "
                           f"one{why}; use an intact JPEG, PNG, TIFF, WebP or BMP file")
    if said.strip() and sys.stderr is not None:     # warnings about an image that decoded
        sys.stderr.write(said)
    if header is not None and header.frames > 1:
        kind = _MULTI_FRAME[header.format]
        warnings.warn(f"{name} has {header.frames} {kind}: only the first is used",
                      MultiFrameWarning, stacklevel=2)
    orientation = (_orientation_from_exif(exif) if hasattr(cv2, "imdecodeWithMetadata")
                   else _orientation_with_pillow(data))
    if image.dtype == np.uint16:
        image = cv2.convertScaleAbs(image, alpha=1 / 257)   # round(v / 257), in one pass
    elif image.dtype != np.uint8:
        raise ImageIOError(f"{name} has {image.dtype} samples: only 8- and 16-bit images "
                           "are supported; convert it to 8-bit first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in _TO_RGB:
        # in place: no second full-size copy of the image while it converts
        image = cv2.cvtColor(image, _TO_RGB[image.shape[2]], dst=image)
    elif image.ndim != 2:
        raise ImageIOError(f"{name} has shape {image.shape}: only gray, RGB and RGBA images "
                           "are supported")
    if orientation in _ORIENT:
        image = _ORIENT[orientation](image)
    return np.ascontiguousarray(image)


def read_image(path, *, max_pixels="auto"):
    """Read an image file as 8-bit RGB, RGBA or gray pixels.

    Parameters
    ----------
    path : str or os.PathLike
        Any format OpenCV decodes (JPEG, PNG, TIFF, WebP, BMP, ...).
    max_pixels : "auto", int or None, optional
        The size limit, checked from the header before decoding; see
        :func:`decode_image`.

    Returns
    -------
    ndarray of shape (H, W), (H, W, 3) or (H, W, 4), dtype uint8
        See :func:`decode_image`.

    Raises
    ------
    ImageIOError
        When the file is missing, a folder, unreadable, empty, corrupt, too
        large or not an image.
    """
    max_pixels = _check_max_pixels(max_pixels)
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageIOError(f"'{path}' does not exist: check the path") from None
    except IsADirectoryError:
        raise ImageIOError(f"'{path}' is a folder: name an image file in it") from None
    except OSError as e:
        raise ImageIOError(f"cannot read '{path}': {e.strerror or e}") from None
    return decode_image(data, f"'{path}'", max_pixels=max_pixels)


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
_CAUGHT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT")
                        if hasattr(signal, name))
_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


_writes_under_way = []      # one entry per _signals_raise block: temporary files may exist


def _writing():
    """Whether temporary files may exist now (a write, or a probe, is under way).

    The command's SIGINT handler asks: while writing it unwinds (so that the
    files are removed), otherwise it may end the process at once.
    """
    return bool(_writes_under_way)


@contextlib.contextmanager
def _signals_raise():
    """While temporary files exist: SIGTERM, SIGHUP and SIGQUIT raise :class:`Interrupted`.

    Only signals left at their default action (which would kill the process
    and leave the files) are caught, only in the main thread (the only one
    Python lets set handlers), and only once: a second signal during the
    clean-up does not interrupt it.  The old handlers come back at the end.
    """
    _writes_under_way.append(True)
    try:
        with _signal_handlers():
            yield
    finally:
        _writes_under_way.pop()


@contextlib.contextmanager
def _signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise Interrupted(signum)

    saved = {}
    try:
        for signum in _CAUGHT_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_DFL:
                saved[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)


def _target(path):
    """The file a write to ``path`` replaces: a symbolic link's target, else ``path``."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _stat(path):
    """os.stat of ``path``, or None when it does not exist."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _euid():
    return os.geteuid() if hasattr(os, "geteuid") else 0


def _folder_name(folder):
    if str(folder) in ("", "."):
        return f"the current folder '{os.getcwd()}'"
    return f"folder '{folder}'"


def _refuse_special(path, st):
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise ImageIOError(f"'{path}' is {kind}, not a regular file, and is never "
                               "replaced; give a file name ('-' writes to standard output)")


def _os_error(path, e):
    """One line for an OSError met while checking or writing ``path``."""
    if e.errno == errno.ENAMETOOLONG:
        name = os.fsencode(Path(path).name)
        try:
            limit = os.pathconf(Path(path).parent, "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        shown = str(path) if len(str(path)) <= 80 else f"{str(path)[:50]}...{str(path)[-20:]}"
        if len(name) > limit:
            return ImageIOError(f"cannot write '{shown}': its name is too long ({len(name)} "
                                f"bytes; this file system allows {limit}); choose a shorter name")
        return ImageIOError(f"cannot write '{shown}': the path is too long; choose a shorter one")
    return ImageIOError(f"cannot write '{path}': {e.strerror or e}")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:             # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path, *, avoid=None):
    """Check, before any work, that a file can be written at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Where the file will go; it may exist (it will be replaced).  A
        symbolic link is written through: the file it points to is checked.
    avoid : dict of {str: path}, optional
        Files ``path`` must not be, by description, e.g.
        ``{"the input image": "photo.jpg"}``.  None entries are skipped.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ImageIOError
        When ``path`` is one of ``avoid``, a folder, not a regular file (a
        device, a FIFO, a socket), another user's file in a shared (sticky)
        folder, in a folder that does not exist or that this process cannot
        write to, or has a name too long for its file system.
    """
    path = Path(path)
    try:
        _check_output(path, avoid or {})
    except ImageIOError:
        raise
    except OSError as e:
        raise _os_error(path, e) from None
    return path


def _check_output(path, avoid):
    for what, other in avoid.items():
        if other is not None and _same_file(path, other):
            raise ImageIOError(f"'{path}' is {what}: choose another file name")
    target = _target(path)
    st = _stat(target)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ImageIOError(f"'{path}' is a folder: give a file name")
    if st is not None:
        _refuse_special(path, st)
    folder = target.parent
    folder_st = _stat(folder)
    if folder_st is None or not stat.S_ISDIR(folder_st.st_mode):
        state = "does not exist" if folder_st is None else "is not a folder"
        raise ImageIOError(f"cannot write '{path}': '{folder}' {state}; "
                           "create the folder or choose another path")
    if (st is not None and folder_st.st_mode & stat.S_ISVTX
            and _euid() not in (0, st.st_uid, folder_st.st_uid)):
        raise ImageIOError(f"cannot replace '{path}': it belongs to another user, and in "
                           f"{_folder_name(folder)} (shared: sticky bit) only its owner may "
                           "replace it; choose another file name")
    try:                        # the honest test: create (and remove) a file there
        with _signals_raise():
            fd, probe = _create_temp(folder)
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise ImageIOError(f"cannot write in {_folder_name(folder)} ({e.strerror or e}): "
                           "choose a folder you can write to") from None


def _create_temp(folder):
    """Create a new, empty, hidden file ``.kf-<8 hex>.tmp`` in ``folder``; (fd, path).

    A short name of its own, so that any target name the file system accepts
    works.  Made with O_EXCL and mode 0o666, so the umask decides its
    permissions, as for any new file.
    """
    for _ in range(100):
        temp = Path(folder) / f".kf-{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary file name in '{folder}'")


def _backup(target):
    """Keep the current ``target`` under a temporary name (a hard link, else a copy)."""
    for _ in range(100):
        backup = target.parent / f".kf-{secrets.token_hex(4)}.tmp"
        try:
            os.link(target, backup)
            return backup
        except FileExistsError:
            continue
        except OSError:         # no hard links here (or not allowed): copy instead
            break
    fd, backup = _create_temp(target.parent)
    try:
        with open(fd, "wb") as out, open(target, "rb") as old:
            shutil.copyfileobj(old, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(backup)
        raise
    return backup


def _roll_back(replaced, backups):
    """Put back the targets already replaced; the backups that could not be put back."""
    kept = []
    for target in reversed(replaced):
        try:
            if target in backups:
                os.replace(backups.pop(target), target)
            else:
                os.unlink(target)
        except OSError:
            if target in backups:
                kept.append((target, backups.pop(target)))
    return kept


def write_files(files):
    """Write several files, each atomically, all or none.

    Every file is first written in full to a temporary file in its target's
    folder; only when all are written do they replace their targets
    (``os.replace``).  A failure while writing (a full disk, a vanished folder)
    therefore changes nothing.  Until the last replacement succeeds, the old
    targets are kept under temporary names (hard links), so a failure there
    puts back the files already replaced: either every target is replaced or
    none.  On any failure, and on SIGTERM, SIGHUP or SIGQUIT (which then raise
    :class:`Interrupted`), the temporary files are removed.  A symbolic link is
    written through; an existing target that is not a regular file is refused.

    Parameters
    ----------
    files : dict of {path: bytes}

    Returns
    -------
    list of int
        The number of bytes written to each file, in order.

    Raises
    ------
    ImageIOError
        When a file cannot be written; nothing was changed.
    Interrupted
        When one of those signals arrived; nothing was changed.
    """
    items = [(Path(path), data) for path, data in files.items()]
    targets = {}
    path = None
    try:
        for path, _ in items:
            targets[path] = _target(path)
            st = _stat(targets[path])
            if st is not None and not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    raise ImageIOError(f"'{path}' is a folder: give a file name")
                _refuse_special(path, st)
    except OSError as e:
        if isinstance(e, ImageIOError):
            raise
        raise _os_error(path, e) from None

    temps, backups, replaced = {}, {}, []
    with _signals_raise():
        try:
            for path, data in items:
                fd, temps[path] = _create_temp(targets[path].parent)
                with open(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            if len(items) > 1:          # one file is replaced atomically: nothing to undo
                for path, _ in items:
                    if _stat(targets[path]) is not None:
                        backups[targets[path]] = _backup(targets[path])
            for path, _ in items:
                os.replace(temps[path], targets[path])
                del temps[path]
                replaced.append(targets[path])
        except BaseException as e:
            if len(replaced) == len(items):     # all replaced: a late signal undoes nothing
                raise
            kept = _roll_back(replaced, backups)
            if not isinstance(e, OSError):
                raise
            note = "".join(f"; the old '{t}' is kept as '{b}'" for t, b in kept)
            raise ImageIOError(f"{_os_error(path, e)}{note or '; no file was changed'}") \
                from None
        finally:
            for temp in (*temps.values(), *backups.values()):
                with contextlib.suppress(OSError):
                    os.unlink(temp)
    return [len(data) for _, data in items]


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (see :func:`write_files`); its size."""
    return write_files({path: data})[0]


def palette_bit_depth(n_colors):
    """Bits per pixel of an indexed PNG of n_colors: 1, 2, 4 or 8; None above 256."""
    return next((bits for bits in (1, 2, 4, 8) if n_colors <= 1 << bits), None)


def png_bytes(palette, labels, *, level=PNG_LEVEL, optimize=False):
    """Encode a quantized image as PNG: :func:`kmeans_fast.png.encode_png`.

    Indexed at the smallest bit depth for k <= 256 (tRNS only when some alpha
    is below 255), truecolour above; decoding gives exactly ``palette[labels]``.
    """
    from .png import encode_png
    return encode_png(palette, labels, level=level, optimize=optimize)


def write_png(path, palette, labels, *, level=PNG_LEVEL):
    """Write a quantized image as a PNG (see :func:`png_bytes`), atomically.

    Returns
    -------
    int
        The size of the file, in bytes.
    """
    return write_bytes(path, png_bytes(palette, labels, level=level))


def _jpeg_view(image):
    """The pixels as simplejpeg reads them, without a copy: (array, colorspace)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"image has dtype {image.dtype}: JPEG needs uint8 pixels")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.size == 0:
        raise ValueError(f"image has shape {image.shape}: expected (H, W) or (H, W, C), "
                         "C in 1, 3, 4")
    image = np.ascontiguousarray(image)
    return image, {1: "GRAY", 3: "RGB", 4: "RGBX"}[image.shape[2]]


def encode_jpeg(image, quality=JPEG_QUALITY):
    """Encode 8-bit gray, RGB or RGBA pixels as a baseline JPEG (libjpeg-turbo).

    JPEG has no alpha channel: RGBA images lose theirs.  Colour images use 4:2:0
    chroma subsampling, as libjpeg and OpenCV do by default.  The pixels are
    read in place (``simplejpeg``): no channel-swapped copy of the image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
    quality : int, optional
        1 to 100; 95 by default.

    Returns
    -------
    bytes
    """
    import simplejpeg

    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality} must be between 1 and 100")
    image, colorspace = _jpeg_view(image)
    return simplejpeg.encode_jpeg(image, quality=int(quality), colorspace=colorspace,
                                  colorsubsampling="420" if image.shape[2] > 1 else "Gray")


def decode_jpeg_like(data, image):
    """Decode a JPEG made by :func:`encode_jpeg` of ``image``, for comparing with it.

    Returns an array of ``image``'s height and width, gray or RGB (a JPEG has no
    alpha), decoded straight into a new array: no second full-size buffer.
    """
    import simplejpeg

    height, width = image.shape[:2]
    gray = image.ndim == 2 or image.shape[2] == 1
    out = np.empty((height, width, 1 if gray else 3), dtype=np.uint8)
    simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB", buffer=out)
    return out[:, :, 0] if image.ndim == 2 else out


def jpeg_for_size(image, target_bytes):
    """The JPEG quality whose file size is closest to ``target_bytes``.

    JPEG size grows with quality (almost always strictly), so a bisection over
    qualities 1 to 100 finds the largest quality that fits, and the next one up
    is the only other candidate.

    Returns
    -------
    quality : int
    data : bytes
        The JPEG at that quality.
    """
    tried = {}

    def size(q):
        if q not in tried:
            tried[q] = encode_jpeg(image, q)
        return len(tried[q])

    low, high = 1, 100                  # invariant: the answer's lower bracket is in [low, high]
    while low < high:
        mid = (low + high + 1) // 2
        if size(mid) <= target_bytes:
            low = mid
        else:
            high = mid - 1
    best = min((q for q in (low, low + 1) if q <= 100),
               key=lambda q: (abs(size(q) - target_bytes), q))
    return best, tried[best]
