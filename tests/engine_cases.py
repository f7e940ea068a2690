"""Images and helpers shared by the engine tests: seeded random images and small real photos."""

from pathlib import Path

import cv2
import numpy as np

from kmeans_fast import colour

DATA = Path(__file__).parent / "data"
PHOTOS = ("astronaut", "coffee", "chelsea")  # crops of scikit-image's public-domain / CC0 photos
WORKERS = (1, 2, 3, 7)                      # forced worker counts: tiny images get one otherwise


def photo(name):
    """A real photo crop, (96, 128, 3) uint8 RGB."""
    bgr = cv2.imread(str(DATA / f"{name}.png"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing test photo {name}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def with_channels(rgb, n_ch, *, clear=False):
    """Derive a 1-, 3- or 4-channel image from an RGB one (alpha from a
    gradient; ``clear``: its first columns fully transparent)."""
    if n_ch == 1:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if n_ch == 3:
        return rgb
    h, w = rgb.shape[:2]
    alpha = (np.arange(w, dtype=np.int64)[None, :] * 255 // max(1, w - 1)) // 32 * 32 + 31
    if clear:
        alpha[:, : max(1, w // 5)] = 0
    alpha = np.broadcast_to(np.clip(alpha, 0, 255), (h, w)).astype(np.uint8)
    return np.dstack([rgb, alpha])


def random_image(shape, seed, levels=256):
    """Seeded random image; ``levels`` < 256 limits the number of distinct colours."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, levels, size=shape, dtype=np.int64) * (255 // max(1, levels - 1))
    return img.astype(np.uint8)


def assert_same(a, b, context):
    """Two quantizations are the same: arrays equal, errors and history equal (==)."""
    assert np.array_equal(a.palette, b.palette), context
    assert np.array_equal(a.labels, b.labels), context
    assert a.labels.dtype == b.labels.dtype, context
    assert np.array_equal(a.centers, b.centers), context
    assert a.inertia == b.inertia and a.sse == b.sse, (context, a.inertia, b.inertia)
    assert a.history == b.history, (context, a.history, b.history)
    assert (a.steps_run, a.converged) == (b.steps_run, b.converged), context


def error_of(image, palette, space):
    """Exact squared error, in the space's features, of every pixel's nearest
    palette entry (brute force over the palette)."""
    n_ch = palette.shape[1]
    x = colour.features(image.reshape(-1, n_ch), space).astype(np.int64)
    p = colour.features(palette, space).astype(np.int64)
    d = ((x[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)
    return int(d.min(axis=1).astype(object).sum())


def next_palette(image, q, space):
    """One more palette step (reference, step 9) from a quantization: each
    entry with pixels moves to their features' mean made an 8-bit colour;
    entries without pixels keep their colour."""
    n_ch = q.palette.shape[1]
    feats = colour.features(image.reshape(-1, n_ch), space).astype(np.float64)
    labels = q.labels.reshape(-1)
    means = q.centers.copy()
    for j in np.unique(labels):
        means[j] = feats[labels == j].sum(axis=0) / (labels == j).sum()
    step = colour.palette_from_centres(means, space, n_ch)
    unused = np.setdiff1d(np.arange(len(q.palette)), labels)
    step[unused] = q.palette[unused]
    return step
