"""The quality study's images: real photos, near-grey photos, flat graphics with gradients.

    from benchmarks.quality_images import quality_images
    for name, kind, image in quality_images("grey", quick=True):
        ...                                   # image: (H, W, 3) uint8 RGB

Three kinds, nothing downloaded:

``photo``
    The ten real photos bundled with scikit-image and scikit-learn, at their
    native size (0.1 to 2 MP).
``grey``
    Where k=16 k-means falls into poor local optima and undithered output bands:
    three of those photos desaturated and lowered in contrast (fog, dusk,
    overcast), and two generated skies (a dusk gradient over dark hills, an
    overcast sky of soft clouds) with mild sensor noise.
``graphic``
    Four flat graphics drawn with OpenCV and NumPy (a logo, a diagram, a map, a
    dashboard UI): a few flat colours, anti-aliased edges and text, linear and
    radial gradients, soft shadows; no noise.

Everything is deterministic (fixed seeds) and cached as ``.npy`` under
``benchmarks/_work/quality_images/`` (git-ignored), so a second call only loads
files.  ``size_mp`` resamples every image to that many megapixels (photos
upscaled bicubically get the suite's sensor noise, as in :mod:`benchmarks.images`;
generated images are drawn at that size).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .images import NOISE_SIGMA, _skimage_photo, _sklearn_photo

KINDS = ("photo", "grey", "graphic")
PACKAGES = {"sklearn": "scikit-learn", "skimage": "scikit-image"}   # module -> pip name
GENERATOR_VERSION = 1            # bump when any recipe changes: stale cache files are ignored
DEFAULT_WORK = Path(__file__).resolve().parent / "_work" / "quality_images"
QUICK_MP = 0.5                   # generated images in the quick set are at most this size
ASPECT = 1.5                     # width / height of generated images


@dataclass(frozen=True)
class Source:
    """One image of the set: how to make it and where it belongs."""

    name: str
    kind: str
    make: Callable               # make(megapixels or None) -> (H, W, 3) uint8
    default_mp: float | None     # None: a photo at its native size
    quick: bool                  # in the quick set
    about: str
    needs: str | None = None     # the module its pixels come from (a photo's package)

    def missing(self):
        """The package this image needs that is not installed, or None."""
        if self.needs is None or importlib.util.find_spec(self.needs) is not None:
            return None
        return PACKAGES.get(self.needs, self.needs)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _shape(megapixels, aspect=ASPECT):
    """(height, width) of a 3:2 image of about ``megapixels``."""
    width = max(16, round(math.sqrt(megapixels * 1e6 * aspect)))
    return max(11, round(width / aspect)), width


def _to_uint8(x):
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _noise(shape, sigma, seed):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * sigma


def resample(image, megapixels, *, seed=0):
    """``image`` resized to about ``megapixels``, keeping its aspect ratio.

    Upscaling is bicubic and adds Gaussian sensor noise of sigma
    :data:`benchmarks.images.NOISE_SIGMA` (an upscaled photo is otherwise
    unnaturally smooth); downscaling averages (``INTER_AREA``).
    """
    import cv2
    h, w = image.shape[:2]
    scale = math.sqrt(megapixels * 1e6 / (h * w))
    size = (max(16, round(w * scale)), max(11, round(h * scale)))
    if scale <= 1:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return _to_uint8(big + _noise(big.shape, NOISE_SIGMA, seed))


# --------------------------------------------------------------------------
# photos
# --------------------------------------------------------------------------
def _photo(name):
    if name.endswith(".jpg"):
        image = _sklearn_photo(name)
    else:
        image = _skimage_photo(name)
        if isinstance(image, tuple):      # stereo_motorcycle: (left, right, disparity)
            image = image[0]
    return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)


def _photo_module(name):
    return "sklearn" if name.endswith(".jpg") else "skimage"


def _photo_source(name, quick):
    label = name.removesuffix(".jpg")
    origin = "scikit-learn" if name.endswith(".jpg") else "scikit-image"
    return Source(label, "photo", lambda mp: _photo(name), None, quick,
                  f"{origin} {name}", _photo_module(name))


# --------------------------------------------------------------------------
# near-grey photos
# --------------------------------------------------------------------------
def near_grey(photo, *, saturation, contrast, level, tint=(0, 0, 0), haze=0.0,
              haze_colour=(205, 210, 215), blur=0.0):
    """A photo made near-grey: desaturated, lower in contrast, tinted, hazy.

    Parameters
    ----------
    photo : ndarray of shape (H, W, 3), dtype uint8
    saturation : float
        Chroma kept (0 grey, 1 unchanged), around BT.601 luma.
    contrast : float
        Luma spread kept around the mean, which moves to ``level``.
    level : float
        New mean level, 0 to 255.
    tint : sequence of 3 floats
        Added to every pixel (a colour cast).
    haze : float
        Fog: the image fades towards ``haze_colour``, by ``haze`` at the top
        row and not at all at the bottom row.
    blur : float
        Gaussian blur sigma in pixels (fog softens), 0 for none.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    import cv2
    x = photo.astype(np.float32)
    y = x @ np.float32([0.299, 0.587, 0.114])
    x = y[:, :, None] + np.float32(saturation) * (x - y[:, :, None])
    x += np.float32(level - y.mean()) + np.float32(contrast - 1) * (y - y.mean())[:, :, None]
    x += np.float32(tint)
    if haze:
        rows = np.linspace(1, 0, x.shape[0], dtype=np.float32) ** 1.5 * np.float32(haze)
        x += rows[:, None, None] * (np.float32(haze_colour) - x)
    if blur:
        x = cv2.GaussianBlur(x, (0, 0), blur)
    return _to_uint8(x)


GREY_RECIPES = {
    "fog_china": ("china.jpg", dict(saturation=0.25, contrast=0.45, level=172,
                                    tint=(-3, 0, 4), haze=0.55, blur=1.0)),
    "dusk_rocket": ("rocket", dict(saturation=0.35, contrast=0.5, level=80,
                                   tint=(9, -3, 12))),
    "overcast_chelsea": ("chelsea", dict(saturation=0.22, contrast=0.55, level=128,
                                         tint=(0, 1, 3))),
}


def _grey_source(name, quick):
    photo, recipe = GREY_RECIPES[name]
    about = f"{photo} near-grey: " + ", ".join(f"{k}={v}" for k, v in recipe.items())
    return Source(name, "grey", lambda mp: near_grey(_photo(photo), **recipe), None, quick,
                  about, _photo_module(photo))


def sky_dusk(megapixels, seed=1):
    """A dusk sky: smooth gradient, a sun glow, dark hills, mild noise (sigma 1.2)."""
    h, w = _shape(megapixels)
    t = np.linspace(0, 1, h, dtype=np.float32)
    stops = np.float32([0, 0.45, 0.75, 0.86])
    colours = np.float32([(38, 48, 92), (112, 104, 146), (214, 146, 128), (240, 178, 120)])
    sky = np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=-1)
    img = np.broadcast_to(sky[:, None, :], (h, w, 3)).astype(np.float32)
    yy, xx = np.ogrid[0:h, 0:w]
    r2 = ((xx - 0.62 * w) ** 2 + (yy - 0.8 * h) ** 2) / np.float32(0.3 * h) ** 2
    img += np.exp(-r2).astype(np.float32)[:, :, None] * np.float32([30, 20, 2])
    u = np.arange(w, dtype=np.float32) / w
    ridge = h * (0.84 + 0.04 * np.sin(2 * np.pi * 1.3 * u + 0.5)
                 + 0.02 * np.sin(2 * np.pi * 3.7 * u + 1.1))
    cover = np.clip(yy - ridge[None, :] + 0.5, 0, 1).astype(np.float32)[:, :, None]
    hills = np.float32([28, 26, 40]) + (yy / h).astype(np.float32)[:, :, None] * np.float32(
        [6, 4, 8])
    img += cover * (hills - img)
    return _to_uint8(img + _noise(img.shape, 1.2, seed))


def sky_overcast(megapixels, seed=2):
    """An overcast sky: near-grey gradient, soft low-contrast clouds, noise sigma 1."""
    import cv2
    h, w = _shape(megapixels)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.float32([196, 200, 208]) + t * np.float32([-28, -28, -28])
    img = np.broadcast_to(img, (h, w, 3)).astype(np.float32)
    rng = np.random.default_rng(seed)
    coarse = cv2.GaussianBlur(rng.standard_normal((36, 54)).astype(np.float32), (0, 0), 2.2)
    clouds = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    clouds *= np.float32(10 / max(1e-6, float(np.abs(clouds).max())))
    img += clouds[:, :, None] * np.float32([1.0, 1.0, 0.92])
    return _to_uint8(img + _noise(img.shape, 1.0, seed + 1))


# --------------------------------------------------------------------------
# flat graphics
# --------------------------------------------------------------------------
def linear(p0, c0, p1, c1):
    """A linear gradient from colour ``c0`` at point ``p0`` to ``c1`` at ``p1``."""
    p0, d = np.float32(p0), np.float32(p1) - np.float32(p0)
    c0, dc = np.float32(c0), np.float32(c1) - np.float32(c0)

    def fill(yy, xx):
        t = ((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / np.float32(d @ d)
        return c0 + np.clip(t, 0, 1)[:, :, None] * dc
    return fill


def radial(centre, radius, c_in, c_out):
    """A radial gradient from ``c_in`` at ``centre`` to ``c_out`` at ``radius``."""
    c_in, dc = np.float32(c_in), np.float32(c_out) - np.float32(c_in)

    def fill(yy, xx):
        r = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / np.float32(radius)
        return c_in + np.clip(r, 0, 1)[:, :, None] * dc
    return fill


class Canvas:
    """A float32 RGB picture painted with anti-aliased masks.

    Coordinates are in design units, 1000 across; ``s`` converts them to pixels.
    Each :meth:`paint` draws a shape with value 255 and ``cv2.LINE_AA`` into an
    8-bit mask (anti-aliased coverage), optionally blurs it (soft shadows), then
    blends a flat colour or a gradient into the picture inside the mask's
    bounding box only.
    """

    def __init__(self, megapixels, background):
        self.h, self.w = _shape(megapixels)
        self.s = self.w / 1000
        self.px = np.empty((self.h, self.w, 3), np.float32)
        self.px[:] = np.float32(background)

    def p(self, x, y):
        """Design point -> pixel point, fixed-point with 4 fractional bits (shift=4)."""
        return int(round(x * self.s * 16)), int(round(y * self.s * 16))

    def n(self, v):
        """Design length -> whole pixels (at least 1)."""
        return max(1, int(round(v * self.s)))

    def paint(self, draw, colour, *, opacity=1.0, blur=0.0):
        import cv2
        mask = np.zeros((self.h, self.w), np.uint8)
        draw(mask)
        x, y, bw, bh = cv2.boundingRect(mask)
        if bw == 0:
            return
        if blur:
            pad = int(3 * blur * self.s) + 1
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(self.w, x + bw + pad), min(self.h, y + bh + pad)
            mask[y0:y1, x0:x1] = cv2.GaussianBlur(mask[y0:y1, x0:x1], (0, 0), blur * self.s)
            x, y, bw, bh = x0, y0, x1 - x0, y1 - y0
        a = mask[y:y + bh, x:x + bw].astype(np.float32)[:, :, None] * np.float32(opacity / 255)
        region = self.px[y:y + bh, x:x + bw]
        if callable(colour):
            yy, xx = np.ogrid[y:y + bh, x:x + bw]
            src = colour(yy.astype(np.float32) / np.float32(self.s),
                         xx.astype(np.float32) / np.float32(self.s))
        else:
            src = np.float32(colour)
        region += a * (src - region)

    # shapes ---------------------------------------------------------------
    def poly(self, points, colour, **kw):
        import cv2
        pts = np.array([self.p(x, y) for x, y in points], np.int32)
        self.paint(lambda m: cv2.fillPoly(m, [pts], 255, cv2.LINE_AA, 4), colour, **kw)

    def rect(self, x0, y0, x1, y1, colour, *, r=0.0, **kw):
        self.poly(_rounded(x0, y0, x1, y1, r), colour, **kw)

    def circle(self, cx, cy, r, colour, *, thickness=-1, **kw):
        import cv2
        t = thickness if thickness < 0 else self.n(thickness)
        self.paint(lambda m: cv2.circle(m, self.p(cx, cy), int(round(r * self.s * 16)), 255,
                                        t, cv2.LINE_AA, 4), colour, **kw)

    def line(self, points, colour, width, *, arrow=False, **kw):
        import cv2
        pts = [self.p(x, y) for x, y in points]

        def draw(m):
            if arrow:
                cv2.arrowedLine(m, pts[0], pts[1], 255, self.n(width), cv2.LINE_AA, 4,
                                0.12)
            else:
                cv2.polylines(m, [np.array(pts, np.int32)], False, 255, self.n(width),
                              cv2.LINE_AA, 4)
        self.paint(draw, colour, **kw)

    def text(self, x, y, text, colour, size, *, bold=False, **kw):
        import cv2
        font = cv2.FONT_HERSHEY_DUPLEX if bold else cv2.FONT_HERSHEY_SIMPLEX
        org = (int(round(x * self.s)), int(round(y * self.s)))
        self.paint(lambda m: cv2.putText(m, text, org, font, size * self.s / 30, 255,
                                         self.n(size / 14 * (2 if bold else 1)),
                                         cv2.LINE_AA), colour, **kw)

    def image(self):
        return _to_uint8(self.px)


def _rounded(x0, y0, x1, y1, r, per_corner=10):
    """Polygon of a rectangle with corners rounded by radius r (design units)."""
    if r <= 0:
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    pts = []
    for cx, cy, a0 in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90),
                       (x0 + r, y0 + r, 180)):
        for i in range(per_corner + 1):
            a = math.radians(a0 + 90 * i / per_corner)
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _blob(cx, cy, rx, ry, seed, n=90):
    """A closed, wavy coastline-like polygon around an ellipse (deterministic)."""
    rng = np.random.default_rng(seed)
    amp, freq, phase = rng.uniform(0.03, 0.1, 5), rng.integers(2, 9, 5), rng.uniform(0, 6.3, 5)
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        f = 1 + sum(float(A) * math.sin(int(F) * a + float(P))
                    for A, F, P in zip(amp, freq, phase))
        pts.append((cx + rx * f * math.cos(a), cy + ry * f * math.sin(a)))
    return pts


def graphic_logo(megapixels):
    """A logo sheet: gradient badge, radial emblem, bold text, flat stripes."""
    c = Canvas(megapixels, (250, 250, 248))
    c.rect(88, 148, 928, 428, (0, 0, 0), r=40, opacity=0.25, blur=8)            # shadow
    c.rect(80, 140, 920, 420, linear((80, 0), (35, 92, 180), (920, 0), (120, 60, 170)), r=40)
    c.circle(230, 280, 95, radial((215, 250), 110, (255, 214, 96), (232, 116, 38)))
    c.circle(230, 280, 95, (255, 255, 255), thickness=6)
    c.text(350, 305, "kmeans-fast", (255, 255, 255), 62, bold=True)
    c.text(352, 360, "exact colour quantization", (214, 222, 245), 26)
    for i, col in enumerate(((230, 60, 70), (250, 190, 40), (40, 160, 120))):
        c.rect(80 + 280 * i, 520, 360 + 280 * i, 580, col)
    c.text(80, 640, "palette: 16 colours, anti-aliased text and gradients", (90, 90, 100), 22)
    return c.image()


def graphic_diagram(megapixels):
    """A flow diagram: boxes with shadows, arrows, labels, one gradient box, a radial node."""
    c = Canvas(megapixels, (244, 246, 250))
    c.text(40, 70, "Pipeline", (30, 40, 60), 44, bold=True)
    c.line([(40, 88), (960, 88)], (200, 205, 215), 2)
    boxes = [("decode", (70, 130, 200)), ("histogram", (90, 170, 110)),
             ("init", (235, 150, 60)), ("Lloyd steps", (150, 90, 190)),
             ("remap", (210, 80, 90)), ("encode PNG", (60, 160, 170))]
    centres = []
    for i, (label, col) in enumerate(boxes):
        x0, y0 = 60 + 320 * (i % 3), 150 + 260 * (i // 3)
        c.rect(x0 + 6, y0 + 8, x0 + 246, y0 + 128, (0, 0, 0), r=14, opacity=0.3, blur=6)
        fill = linear((0, y0), (255, 255, 255), (0, y0 + 120), col) if i == 3 else col
        c.rect(x0, y0, x0 + 240, y0 + 120, fill, r=14)
        c.text(x0 + 24, y0 + 72, label, (255, 255, 255) if i != 3 else (40, 30, 60), 30,
               bold=True)
        centres.append((x0, y0))
    for a, b in ((0, 1), (1, 2), (3, 4), (4, 5)):
        c.line([(centres[a][0] + 244, centres[a][1] + 60), (centres[b][0] - 8, centres[b][1] + 60)],
               (60, 70, 90), 4, arrow=True)
    down, across = centres[2][0] + 120, centres[3][0] + 120
    c.line([(down, 278), (down, 340), (across, 340)], (60, 70, 90), 4)
    c.line([(across, 340), (across, 402)], (60, 70, 90), 4, arrow=True)
    c.circle(880, 600, 45, radial((865, 585), 55, (255, 250, 200), (240, 170, 30)))
    c.text(866, 612, "k", (60, 40, 10), 36, bold=True)
    for i, (label, col) in enumerate(boxes[:3]):
        c.rect(60 + 180 * i, 605, 82 + 180 * i, 627, col)
        c.text(92 + 180 * i, 624, label, (70, 75, 90), 20)
    return c.image()


def graphic_map(megapixels):
    """A map: radial-gradient water, flat land and parks, roads, a river, labels, a grid."""
    c = Canvas(megapixels, (0, 0, 0))
    c.rect(0, 0, 1000, 667, radial((480, 330), 650, (150, 200, 232), (52, 110, 176)))
    land = _blob(430, 330, 330, 230, seed=5)
    c.poly(land, (236, 230, 212))
    c.poly(_blob(860, 140, 90, 60, seed=7), (236, 230, 212))
    c.poly(_blob(420, 260, 120, 90, seed=11), radial((420, 260), 130, (214, 204, 176),
                                                      (236, 230, 212)))  # hills
    c.poly(_blob(560, 420, 80, 55, seed=13), (196, 224, 176))           # park
    c.poly(_blob(300, 420, 45, 28, seed=17), (160, 206, 236))           # lake
    river = [(300, 420), (260, 470), (240, 530), (200, 590)]
    c.line(river, (130, 184, 226), 5)
    for road in ([(150, 250), (400, 300), (600, 330), (740, 360)],
                 [(430, 120), (450, 300), (470, 520)]):
        c.line(road, (238, 160, 70), 10)
        c.line(road, (255, 255, 255), 5)
    for x in range(0, 1001, 125):
        c.line([(x, 0), (x, 667)], (255, 255, 255), 1, opacity=0.35)
    for y in range(0, 668, 125):
        c.line([(0, y), (1000, y)], (255, 255, 255), 1, opacity=0.35)
    for x, y, name in ((400, 300, "Ostwick"), (600, 330, "Lund Ferry"), (455, 450, "Hale")):
        c.circle(x, y, 7, (60, 60, 64))
        c.circle(x, y, 4, (255, 255, 255))
        c.text(x + 12, y - 10, name, (40, 40, 48), 24, bold=True)
    c.text(80, 620, "North Sound", (235, 242, 250), 30)
    c.rect(820, 590, 980, 650, (255, 255, 255), r=6, opacity=0.85)
    c.line([(835, 625), (935, 625)], (40, 40, 48), 3)
    c.text(835, 615, "0      5 km", (40, 40, 48), 18)
    return c.image()


def graphic_ui(megapixels):
    """A dashboard UI: gradient header, flat sidebar, shadowed cards, buttons, a chart."""
    c = Canvas(megapixels, (246, 247, 249))
    c.rect(0, 0, 1000, 60, linear((0, 0), (52, 84, 209), (1000, 0), (98, 56, 190)))
    c.text(220, 40, "Dashboard", (255, 255, 255), 30, bold=True)
    c.circle(960, 30, 20, radial((953, 23), 24, (255, 220, 180), (205, 120, 90)))
    c.rect(0, 60, 200, 667, (33, 37, 48))
    c.text(24, 40, "kmf", (255, 255, 255), 34, bold=True)
    for i, item in enumerate(("Overview", "Images", "Palettes", "Settings")):
        if i == 0:
            c.rect(12, 84, 188, 124, (52, 84, 209), r=8)
        c.text(32, 112 + 50 * i, item, (230, 232, 240) if i == 0 else (150, 156, 170), 22)
    for i, (title, value, col) in enumerate((("Images", "1,284", (40, 170, 120)),
                                             ("Saved", "61 %", (52, 84, 209)),
                                             ("Colours", "16", (235, 150, 60)))):
        x0 = 230 + 250 * i
        c.rect(x0 + 3, 88, x0 + 233, 238, (0, 0, 0), r=12, opacity=0.18, blur=7)
        c.rect(x0, 84, x0 + 230, 232, (255, 255, 255), r=12)
        c.text(x0 + 20, 120, title, (120, 125, 140), 20)
        c.text(x0 + 20, 180, value, (30, 35, 50), 44, bold=True)
        c.rect(x0 + 20, 200, x0 + 210, 212, (232, 234, 240), r=6)
        c.rect(x0 + 20, 200, x0 + 90 + 40 * i, 212,
               linear((x0 + 20, 0), col, (x0 + 210, 0), (120, 220, 230)), r=6)
    c.rect(233, 263, 963, 643, (0, 0, 0), r=12, opacity=0.18, blur=7)
    c.rect(230, 260, 960, 640, (255, 255, 255), r=12)
    c.text(250, 295, "Bytes saved per day", (30, 35, 50), 24, bold=True)
    for y in range(340, 620, 50):
        c.line([(260, y), (930, y)], (230, 232, 238), 1)
    xs = np.linspace(260, 930, 12)
    ys = 580 - 130 * np.abs(np.sin(np.arange(12) / 2.2)) - 8 * np.arange(12)
    pts = list(zip(xs.tolist(), ys.tolist()))
    c.poly(pts + [(930, 590), (260, 590)], linear((0, 330), (150, 170, 240), (0, 590),
                                                  (255, 255, 255)))
    c.line(pts, (52, 84, 209), 4)
    for i, (label, col) in enumerate((("Export", (52, 84, 209)), ("Share", (40, 170, 120)))):
        c.rect(760 + 100 * i, 275, 850 + 100 * i, 310, col, r=17)
        c.text(776 + 100 * i, 300, label, (255, 255, 255), 20, bold=True)
    return c.image()


# --------------------------------------------------------------------------
# the set
# --------------------------------------------------------------------------
SOURCES = (
    _photo_source("astronaut", True),
    _photo_source("coffee", True),
    _photo_source("chelsea", False),
    _photo_source("rocket", False),
    _photo_source("hubble_deep_field", False),
    _photo_source("immunohistochemistry", False),
    _photo_source("retina", False),
    _photo_source("stereo_motorcycle", False),
    _photo_source("china.jpg", True),
    _photo_source("flower.jpg", False),
    _grey_source("fog_china", True),
    _grey_source("dusk_rocket", False),
    _grey_source("overcast_chelsea", False),
    Source("sky_dusk", "grey", sky_dusk, 2.0, True,
           "generated dusk sky: gradient, sun glow, hills, noise sigma 1.2"),
    Source("sky_overcast", "grey", sky_overcast, 1.5, False,
           "generated overcast sky: near-grey gradient, soft clouds, noise sigma 1"),
    Source("logo", "graphic", graphic_logo, 1.0, True,
           "generated logo: gradient badge, radial emblem, text, flat stripes"),
    Source("diagram", "graphic", graphic_diagram, 2.0, False,
           "generated diagram: flat boxes with soft shadows, arrows, text, gradients"),
    Source("map", "graphic", graphic_map, 4.0, True,
           "generated map: radial-gradient water, flat land, roads, labels, grid"),
    Source("ui", "graphic", graphic_ui, 1.5, False,
           "generated dashboard: gradient header, flat panels, shadows, chart"),
)
BY_NAME = {s.name: s for s in SOURCES}


def _size_for(source, quick, size_mp):
    """Megapixels to make ``source`` at, or None for a photo's native size."""
    if size_mp is not None:
        return float(size_mp)
    if source.default_mp is None:
        return None
    return min(source.default_mp, QUICK_MP) if quick else source.default_mp


def load(source, megapixels=None, *, work=None):
    """One image of the set, (H, W, 3) uint8, from the cache or made and cached."""
    work = Path(DEFAULT_WORK if work is None else work)
    tag = "native" if megapixels is None else f"{megapixels:g}mp"
    path = work / f"{source.name}_{tag}_v{GENERATOR_VERSION}.npy"
    if path.exists():
        return np.load(path)
    if source.missing():
        raise ModuleNotFoundError(f"image {source.name!r} needs {source.missing()}: "
                                  "pip install '.[bench]'")
    if source.default_mp is None:             # photo (or near-grey photo): native, resampled
        image = source.make(None)
        if megapixels is not None:
            image = resample(image, megapixels)
    else:
        image = source.make(megapixels if megapixels is not None else source.default_mp)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    work.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, image)
    os.replace(tmp, path)
    return image


def selection(kind=None, quick=False, *, names=None, installed=False):
    """The :class:`Source` entries ``quality_images`` would yield, in order.

    ``installed=True`` leaves out the photos whose package is not installed
    (:meth:`Source.missing`); otherwise they are kept, and loading one fails.
    """
    kinds = KINDS if kind is None else (kind,) if isinstance(kind, str) else tuple(kind)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"kind={bad[0]!r} is not one of {', '.join(KINDS)}")
    if names is not None:
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise ValueError(f"image {unknown[0]!r} is not in the set: choose from "
                             f"{', '.join(BY_NAME)}")
    return [s for s in SOURCES if s.kind in kinds and (not quick or s.quick)
            and (names is None or s.name in names) and not (installed and s.missing())]


def quality_images(kind=None, quick=False, *, size_mp=None, work=None, names=None,
                   installed=False):
    """Yield ``(name, kind, image)`` for the quality study's images.

    Parameters
    ----------
    kind : {"photo", "grey", "graphic"}, sequence of them, or None, optional
        Only images of these kinds (None: all, photos first).
    quick : bool, optional
        The quick set: 2 to 3 images of each kind, generated ones at most
        :data:`QUICK_MP` megapixels.
    size_mp : float or None, optional
        Resample (photos) or draw (generated images) every image at about this
        many megapixels; None: photos at their native size, generated images
        at their default size (1 to 4 MP; :data:`QUICK_MP` at most when quick).
    work : path-like or None, optional
        Cache folder (default ``benchmarks/_work/quality_images``).
    names : collection of str or None, optional
        Only the images of these names.
    installed : bool, optional
        Leave out the photos whose package (scikit-learn, scikit-image) is not
        installed, instead of failing on them.

    Yields
    ------
    name : str
    kind : str
    image : ndarray of shape (H, W, 3), dtype uint8
        RGB.
    """
    for source in selection(kind, quick, names=names, installed=installed):
        yield source.name, source.kind, load(source, _size_for(source, quick, size_mp),
                                             work=work)
