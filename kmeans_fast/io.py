"""Reading and writing image files.

* :func:`read_image` decodes whatever OpenCV decodes (JPEG, PNG, TIFF, WebP,
  BMP, ...) from the file's bytes (so any path works, non-ASCII included),
  honours the EXIF orientation, reduces 16-bit samples to 8 bits with rounding
  and returns RGB, RGBA or gray (H, W) pixels.
* :func:`write_png` writes a quantized image as an indexed PNG with Pillow, at
  the smallest bit depth its palette allows, or as a truecolour PNG when the
  palette holds more than 256 colours.
* :func:`encode_jpeg` and :func:`jpeg_for_size` make the JPEG comparison with
  OpenCV; :func:`write_bytes` and :func:`write_files` write encoded files.

Every write is atomic: the data goes to a temporary file in the target folder,
which then replaces the target in one step (``os.replace``); on any failure the
temporary file is removed, so a failed write leaves nothing behind.  Problems
with files raise :class:`ImageIOError`, whose message is one line saying what
is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["ImageIOError", "PALETTE_MAX", "JPEG_QUALITY", "read_image", "decode_image",
           "check_output", "palette_bit_depth", "png_bytes", "write_png", "encode_jpeg",
           "jpeg_for_size", "write_bytes", "write_files"]

PALETTE_MAX = 256           # the most colours an indexed PNG holds
JPEG_QUALITY = 95           # OpenCV's default JPEG quality
PNG_LEVEL = 6               # zlib level: 9 is ~2% smaller and ~4x slower on photos
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
_FROM_RGB = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGR}          # JPEG has no alpha
# what decoders print about damaged data that they may still decode
_DAMAGED = re.compile(r"premature end|truncated|incomplete|corrupt", re.IGNORECASE)
# ... except a few stray bytes just before the JPEG's end: common in camera
# files whose pixels are all there; many stray bytes mean the scan went wrong
_STRAY_END = re.compile(r"corrupt jpeg data: (\d+) extraneous bytes before marker 0xd9",
                        re.IGNORECASE)
_STRAY_END_OK = 16
_LOG_PREFIX = re.compile(r"^\[\s*\w+:\d+@[\d.]+\]\s+global\s+\S+\s+\S+\s+")   # OpenCV's log


class ImageIOError(OSError):
    """An image file could not be read or written; the message says why."""


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _decoder_messages():
    """Catch what C libraries print on file descriptor 2 while decoding.

    Yields a list that receives the text when the block ends.  Decoders
    (libpng, libjpeg, OpenCV's log) print warnings and errors straight to fd 2;
    catching them lets a failure be reported as one clear line instead.
    """
    sys.stderr.flush()
    text = []
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield text
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                text.append(sink.read().decode("utf-8", "replace"))
    finally:
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


def _orientation_from_exif(exif):
    """The EXIF orientation (1 to 8) in raw EXIF bytes; 1 when absent or unreadable."""
    if not exif:
        return 1
    try:
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
        with Image.open(io.BytesIO(data)) as im:
            return _orientation_from_exif(im.getexif().tobytes())
    except Exception:           # Pillow may refuse what OpenCV reads: keep it upright
        return 1


def _decode_raw(data):
    """OpenCV decode of ``data`` (IMREAD_UNCHANGED) and its EXIF orientation."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if hasattr(cv2, "imdecodeWithMetadata"):
        image, types, blocks = cv2.imdecodeWithMetadata(buf, cv2.IMREAD_UNCHANGED)
        exif = next((np.asarray(block).tobytes() for kind, block in zip(types, blocks)
                     if kind == cv2.IMAGE_METADATA_EXIF), None)
        return image, _orientation_from_exif(exif)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return image, _orientation_with_pillow(data)


def decode_image(data, name="image"):
    """Decode an encoded image (the bytes of a file) to 8-bit RGB, RGBA or gray.

    Parameters
    ----------
    data : bytes
        The encoded image: any format OpenCV decodes.
    name : str, optional
        How to name the image in error messages.

    Returns
    -------
    ndarray of shape (H, W), (H, W, 3) or (H, W, 4), dtype uint8
        Gray, RGB or RGBA, turned upright as its EXIF orientation says; 16-bit
        samples are reduced to 8 bits with rounding (``round(v / 257)``).

    Raises
    ------
    ImageIOError
        When the data is empty, not an image, corrupt or truncated, or has
        samples other than 8- or 16-bit unsigned integers.
    """
    if not data:
        raise ImageIOError(f"{name} is empty (0 bytes): it is not an image")
    with _decoder_messages() as said:
        try:
            image, orientation = _decode_raw(data)
        except cv2.error:
            image, orientation = None, 1
    said = said[0]
    cut = data.startswith(b"\xff\xd8") and _jpeg_is_cut(data)
    if cut and not said.strip():
        said = "the JPEG data stops before its end marker"
    if image is None or image.size == 0 or cut or _damaged(said):
        why = f" ({_last_line(said)})" if said.strip() else ""
        raise ImageIOError(f"cannot decode {name}: not an image, or a corrupt or truncated "
                           f"one{why}; use an intact JPEG, PNG, TIFF, WebP or BMP file")
    if said.strip():            # warnings about an image that did decode: pass them on
        sys.stderr.write(said)
    if image.dtype == np.uint16:
        image = cv2.convertScaleAbs(image, alpha=1 / 257)   # round(v / 257), in one pass
    elif image.dtype != np.uint8:
        raise ImageIOError(f"{name} has {image.dtype} samples: only 8- and 16-bit images "
                           "are supported; convert it to 8-bit first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in _TO_RGB:
        image = cv2.cvtColor(image, _TO_RGB[image.shape[2]])
    elif image.ndim != 2:
        raise ImageIOError(f"{name} has shape {image.shape}: only gray, RGB and RGBA images "
                           "are supported")
    if orientation in _ORIENT:
        image = _ORIENT[orientation](image)
    return np.ascontiguousarray(image)


def read_image(path):
    """Read an image file as 8-bit RGB, RGBA or gray pixels.

    Parameters
    ----------
    path : str or os.PathLike
        Any format OpenCV decodes (JPEG, PNG, TIFF, WebP, BMP, ...).

    Returns
    -------
    ndarray of shape (H, W), (H, W, 3) or (H, W, 4), dtype uint8
        See :func:`decode_image`.

    Raises
    ------
    ImageIOError
        When the file is missing, a folder, unreadable, empty, corrupt or not an
        image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageIOError(f"'{path}' does not exist: check the path") from None
    except IsADirectoryError:
        raise ImageIOError(f"'{path}' is a folder: name an image file in it") from None
    except OSError as e:
        raise ImageIOError(f"cannot read '{path}': {e.strerror or e}") from None
    return decode_image(data, f"'{path}'")


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
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
        Where the file will go; it may exist (it will be replaced).
    avoid : dict of {str: path}, optional
        Files ``path`` must not be, by description, e.g.
        ``{"the input image": "photo.jpg"}``.  None entries are skipped.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ImageIOError
        When ``path`` is one of ``avoid``, a folder, in a folder that does not
        exist, or in one this process cannot write to.
    """
    path = Path(path)
    for what, other in (avoid or {}).items():
        if other is not None and _same_file(path, other):
            raise ImageIOError(f"'{path}' is {what}: choose another file name "
                               "(the input is never overwritten)")
    if path.is_dir():
        raise ImageIOError(f"'{path}' is a folder: give a file name")
    folder = path.parent
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise ImageIOError(f"cannot write '{path}': '{folder}' {state}; "
                           "create the folder or choose another path")
    try:                        # the honest test: create (and remove) a file there
        fd, probe = _create_temp(folder, path.name)
    except OSError as e:
        raise ImageIOError(f"cannot write in folder '{folder}' ({e.strerror or e}): "
                           "choose a folder you can write to") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _create_temp(folder, name):
    """Create a new, empty, hidden file next to ``name``; (fd, path).

    Made with O_EXCL and mode 0o666, so the umask decides its permissions,
    as for any new file.
    """
    for _ in range(100):
        temp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in '{folder}'")


def write_files(files):
    """Write several files, each atomically, all or none as far as can be.

    Every file is first written in full to a temporary file in its target
    folder; only when all are written do they replace their targets
    (``os.replace``).  A failure while writing (a full disk, a vanished folder)
    therefore changes nothing; on any failure the temporary files are removed.

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
        When a file cannot be written.
    """
    files = {Path(path): data for path, data in files.items()}
    temps = {}
    path = None
    try:
        for path, data in files.items():
            fd, temps[path] = _create_temp(path.parent, path.name)
            with open(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path in files:
            os.replace(temps[path], path)
            del temps[path]
    except OSError as e:
        raise ImageIOError(f"cannot write '{path}': {e.strerror or e}") from None
    finally:
        for temp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(temp)
    return [len(data) for data in files.values()]


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (see :func:`write_files`); its size."""
    return write_files({path: data})[0]


def palette_bit_depth(n_colors):
    """Bits per pixel of an indexed PNG of n_colors: 1, 2, 4 or 8; None above 256."""
    return next((bits for bits in (1, 2, 4, 8) if n_colors <= 1 << bits), None)


def png_bytes(palette, labels, *, level=PNG_LEVEL):
    """Encode a quantized image as PNG: indexed when the palette allows.

    Parameters
    ----------
    palette : ndarray of shape (k, C), dtype uint8
        C is 1 (gray), 3 (RGB) or 4 (RGBA).
    labels : ndarray of shape (H, W), dtype uint8 or uint16
        Palette index of each pixel.
    level : int, optional
        zlib compression level, 0 (none, fastest) to 9 (smallest; on photos a
        few percent smaller than 6 and several times slower).

    Returns
    -------
    bytes
        For k <= 256, an indexed PNG (colour type 3) with a PLTE chunk of the k
        colours at the smallest bit depth that holds them (1, 2, 4 or 8 bits
        for k <= 2, 4, 16, 256); gray palettes become gray PLTE entries, and
        RGBA palettes put their alpha in a tRNS chunk.  For k > 256, a
        truecolour (or truecolour + alpha) PNG of ``palette[labels]``.
        Decoding it gives back exactly ``palette[labels]``.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    labels = np.ascontiguousarray(labels)
    n_colors, n_channels = palette.shape
    if n_channels not in (1, 3, 4):
        raise ValueError(f"palette has {n_channels} channels: expected 1, 3 or 4")
    if not 0 <= level <= 9:
        raise ValueError(f"level={level} must be between 0 and 9")
    height, width = labels.shape
    if n_colors <= PALETTE_MAX:
        im = Image.frombuffer("P", (width, height), labels.astype(np.uint8, copy=False),
                              "raw", "P", 0, 1)
        entries = np.repeat(palette, 3, axis=1) if n_channels == 1 else palette
        im.putpalette(entries.tobytes(), rawmode="RGBA" if n_channels == 4 else "RGB")
        options = {"bits": palette_bit_depth(n_colors)}
    else:
        pixels = palette[labels]
        im = Image.fromarray(pixels[:, :, 0] if n_channels == 1 else pixels)
        options = {}
    out = io.BytesIO()
    im.save(out, "PNG", compress_level=level, **options)
    return out.getvalue()


def write_png(path, palette, labels, *, level=PNG_LEVEL):
    """Write a quantized image as a PNG (see :func:`png_bytes`), atomically.

    Returns
    -------
    int
        The size of the file, in bytes.
    """
    return write_bytes(path, png_bytes(palette, labels, level=level))


def encode_jpeg(image, quality=JPEG_QUALITY):
    """Encode 8-bit gray, RGB or RGBA pixels as JPEG with OpenCV.

    JPEG has no alpha channel: RGBA images lose theirs.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), dtype uint8
    quality : int, optional
        1 to 100; OpenCV's default is 95.

    Returns
    -------
    bytes
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality} must be between 1 and 100")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        image = cv2.cvtColor(image, _FROM_RGB[image.shape[2]])
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageIOError("OpenCV could not encode the image as JPEG")
    return data.tobytes()


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
