"""Dithering: Numba kernels vs the plain reference, invariants, the grid search, arguments."""

import numpy as np
import pytest

from kmeans_fast import _dither_kernels as DK
from kmeans_fast import colour
from kmeans_fast import dither as D
from kmeans_fast import reference_dither as R
from kmeans_fast.dither import dither
from kmeans_fast.io import png_bytes

from conftest import sample

WORKERS = (1, 2, 3, 7)
BANDS = ((2, 1), (4, 3))        # (band_rows, warm_rows): many bands on tiny images


def image_for(shape, n_ch, seed):
    """Photo-like pixels of the given (H, W) and channel count; RGBA has alpha 0,
    255 and values between, and invisible pixels with arbitrary colours."""
    img = sample(max(shape[0], 8), max(shape[1], 8), seed=seed)[:shape[0], :shape[1]]
    if n_ch == 1:
        return np.ascontiguousarray(img[:, :, 1:2])
    if n_ch == 3:
        return np.ascontiguousarray(img)
    rng = np.random.default_rng(seed)
    alpha = rng.choice(np.array([0, 255, 255, 128, 40], dtype=np.uint8), size=shape)
    return np.ascontiguousarray(np.concatenate([img, alpha[:, :, None]], axis=2))


def palette_for(image, k, seed):
    """k colours: some taken from the image (those pixels snap), a duplicate
    (ties), the rest random; RGBA palettes hold a transparent entry."""
    rng = np.random.default_rng(seed + 1000)
    n_ch = image.shape[2]
    pal = rng.integers(0, 256, size=(k, n_ch), dtype=np.uint8)
    pixels = image.reshape(-1, n_ch)
    n_from_image = min(k // 2, pixels.shape[0])
    pal[:n_from_image] = pixels[rng.choice(pixels.shape[0], n_from_image, replace=False)]
    if k >= 4:
        pal[-1] = pal[1]                          # duplicate: ties go to the lower index
    if n_ch == 4 and k >= 3:
        pal[2] = (7, 9, 11, 0)                    # transparent
    return pal


def kernel_labels(image, palette, method, strength, space, n_workers, bands):
    band_rows, warm_rows = bands
    labels = D._dither_image(D._check_image(image), palette, method, strength, space,
                             n_workers, band_rows=band_rows, warm_rows=warm_rows)
    return labels.reshape(image.shape[:2])


# (shape, k, strength): shapes 1x1, 1xN, Nx1, odd sizes; k up to 300 (uint16 labels)
CASES = [((1, 1), 2, 1.0), ((1, 23), 16, 1.0), ((19, 1), 16, 0.5), ((9, 13), 1, 1.0),
         ((11, 17), 256, 1.0), ((7, 21), 300, 0.5), ((13, 8), 16, 0.0), ((10, 12), 2, 1.0)]


@pytest.mark.parametrize("n_ch", [1, 3, 4])
@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("method", ["fs", "ordered", "none"])
def test_kernels_equal_reference(n_ch, space, method):
    for i, (shape, k, strength) in enumerate(CASES):
        image = image_for(shape, n_ch, seed=i)
        palette = palette_for(image, k, seed=i)
        bands = BANDS[i % 2]
        expected = R.dither(image, palette, method=method, strength=strength, space=space,
                            band_rows=bands[0], warm_rows=bands[1])
        assert expected.dtype == (np.uint8 if k <= 256 else np.uint16)
        for n_workers in WORKERS:
            got = kernel_labels(image, palette, method, strength, space, n_workers, bands)
            context = (shape, k, strength, n_workers, bands)
            assert got.dtype == expected.dtype, context
            assert np.array_equal(got, expected), context


@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("bands", [(2, 5), (4, 9)])
def test_warm_rows_spanning_several_bands(space, bands):
    image = image_for((23, 17), 3, seed=11)
    palette = palette_for(image, 6, seed=11)
    expected = R.dither(image, palette, space=space, band_rows=bands[0], warm_rows=bands[1])
    for n_workers in WORKERS:
        got = kernel_labels(image, palette, "fs", 1.0, space, n_workers, bands)
        assert np.array_equal(got, expected), n_workers


@pytest.mark.parametrize("n_ch, space", [(3, "rgb"), (3, "oklab"), (4, "rgb"), (1, "oklab")])
def test_public_default_bands_equal_reference(n_ch, space):
    """Three default-height bands (one partial), the public function, any worker count."""
    image = image_for((2 * D.BAND_ROWS + 5, 6), n_ch, seed=5)
    palette = palette_for(image, 12, seed=5)
    expected = R.dither(image, palette, method="fs", space=space)
    for n_workers in WORKERS:
        got = dither(image if n_ch > 1 else image[:, :, 0], palette, method="fs", space=space,
                     n_workers=n_workers)
        assert np.array_equal(got, expected), n_workers


def test_prebuilt_histogram_gives_same_labels():
    image = image_for((20, 30), 3, seed=2)
    palette = palette_for(image, 16, seed=2)
    hist = D._histogram(image.reshape(-1, 3), 1)
    got = D._dither_image(image, palette, "fs", 1.0, "oklab", 2, histogram=hist)
    assert np.array_equal(got.reshape(20, 30), dither(image, palette, space="oklab"))


def test_constants_match_reference():
    assert (D.BAND_ROWS, D.WARM_ROWS, D.ERROR_LIMIT, D.ORDERED_AMPLITUDE, D.SNAP,
            D.LATTICE_PIXELS) == (R.BAND_ROWS, R.WARM_ROWS, R.ERROR_LIMIT,
                                  R.ORDERED_AMPLITUDE, R.SNAP, R.LATTICE_PIXELS)
    assert D.BAND_ROWS % 2 == 0
    taps = [(DK.FS_AHEAD, 7 / 16), (DK.FS_BEHIND_BELOW, 3 / 16), (DK.FS_BELOW, 5 / 16),
            (DK.FS_AHEAD_BELOW, 1 / 16)]
    assert taps == [(w, w) for _, _, w in R.FS_TAPS] == [(a, a) for a, _ in taps]
    assert np.array_equal(D.bayer_matrix(), (R.bayer(8) + 0.5) / 64 - 0.5)


# --------------------------------------------------------------------------
# The algorithm itself (these hold the reference to the spec, not just the kernels)
# --------------------------------------------------------------------------
def test_serpentine_by_hand():
    """2x2 gray 100 on {0, 255}: q = 100, no limiting.  Row 0 left to right:
    (0,0) -> 0, residual 100; (0,1) gets 43.75 -> 255, residual -111.25.  Row 1
    right to left: (1,1) gets 6.25 - 34.765625 -> 0, residual 71.484375, 7/16
    of it ahead to (1,0), which then has 141.66 -> 255.  (Scanning row 1 left to
    right would give 0 at (1,0).)"""
    image = np.full((2, 2), 100, dtype=np.uint8)
    palette = np.array([[0], [255]], dtype=np.uint8)
    expected = np.array([[0, 1], [1, 0]])
    assert np.array_equal(R.dither(image, palette), expected)
    for n_workers in WORKERS:
        assert np.array_equal(dither(image, palette, n_workers=n_workers), expected)


@pytest.mark.parametrize("level", [64, 128, 200])
def test_fs_keeps_the_mean_of_a_flat_gray(level):
    image = np.full((60, 70), level, dtype=np.uint8)
    palette = np.array([[0], [255]], dtype=np.uint8)
    labels = dither(image, palette)
    assert abs(labels.mean() * 255 - level) < 2.0
    assert 0 < labels.mean() < 1                          # it does dither


def brute_nearest(image, palette, space):
    """Nearest entry of every pixel, by brute force (float64, channels added in order)."""
    n_ch = palette.shape[1]
    f = colour.features(image.reshape(-1, n_ch), space).astype(np.float64)
    p = colour.features(palette, space).astype(np.float64)
    d = np.zeros((f.shape[0], p.shape[0]))
    for c in range(n_ch):
        d = d + (f[:, c:c + 1] - p[None, :, c]) ** 2
    return d.argmin(axis=1).reshape(image.shape[:2])


@pytest.mark.parametrize("n_ch", [1, 3, 4])
@pytest.mark.parametrize("space", ["rgb", "oklab"])
def test_strength_zero_and_none_are_the_nearest_entry(n_ch, space):
    image = image_for((37, 41), n_ch, seed=7)
    palette = palette_for(image, 20, seed=7)
    expected = brute_nearest(image, palette, space)
    for method in ("fs", "ordered"):
        assert np.array_equal(dither(image, palette, method=method, strength=0, space=space),
                              expected)
    assert np.array_equal(dither(image, palette, method="none", space=space), expected)


@pytest.mark.parametrize("n_ch", [1, 3, 4])
@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("method", ["fs", "ordered"])
def test_image_with_palette_colours_only_is_unchanged(n_ch, space, method):
    """<= k colours, all in the palette (one of them twice): every pixel keeps
    its colour, and the lowest index of it."""
    rng = np.random.default_rng(3)
    palette = rng.integers(0, 256, size=(9, n_ch), dtype=np.uint8)
    palette[5] = palette[2]
    image = palette[rng.integers(0, 9, size=(45, 50))]
    labels = dither(image, palette, method=method, space=space)
    assert np.array_equal(labels, brute_nearest(image, palette, space))
    assert np.array_equal(palette[labels], image)
    assert not (labels == 5).any()


@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("method", ["fs", "ordered"])
def test_flat_area_in_the_palette_stays_flat(space, method):
    """A flat square of a palette colour inside a textured photo: no speckle."""
    image = sample(96, 128, seed=4)
    palette = np.array([[40, 90, 160], [200, 180, 150], [90, 120, 60], [30, 40, 30],
                        [230, 230, 230], [120, 60, 40]], dtype=np.uint8)
    image[30:70, 40:100] = palette[2]
    labels = dither(image, palette, method=method, space=space)
    assert (labels[30:70, 40:100] == 2).all()
    assert len(np.unique(labels)) > 3                      # the rest is dithered


def flat_graphic(height=160, width=200, supersample=4):
    """Flat colours with anti-aliased edges: rectangles, discs, a diagonal bar."""
    h, w = height * supersample, width * supersample
    yy, xx = np.mgrid[0:h, 0:w] / supersample
    colours = np.array([[236, 232, 220], [30, 70, 150], [220, 60, 40], [250, 200, 40],
                        [40, 140, 80]], dtype=np.float64)
    img = np.empty((h, w, 3))
    img[:] = colours[0]
    img[(yy > 20) & (yy < 90) & (xx > 15) & (xx < 110)] = colours[1]
    img[(yy - 110) ** 2 + (xx - 140) ** 2 < 40 ** 2] = colours[2]
    img[(yy - 50) ** 2 + (xx - 150) ** 2 < 25 ** 2] = colours[3]
    img[np.abs((yy - 20) - 0.6 * xx) < 4] = colours[4]
    img = img.reshape(height, supersample, width, supersample, 3).mean(axis=(1, 3))
    return np.rint(img).astype(np.uint8)


@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("k", [8, 16])
def test_flat_graphic_grows_little(space, k):
    """pngquant issue #40: dithering must not speckle a flat graphic."""
    from kmeans_fast import quantize
    image = flat_graphic()
    palette = quantize(image, k, seed=0).palette
    plain = len(png_bytes(palette, dither(image, palette, method="none", space=space)))
    for method in ("fs", "ordered"):
        dithered = len(png_bytes(palette, dither(image, palette, method=method, space=space)))
        assert dithered <= 1.10 * plain, (method, plain, dithered)


@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("method", ["fs", "ordered"])
def test_invisible_pixels_take_the_transparent_entry(space, method):
    image = image_for((40, 45), 4, seed=9)
    image[image[:, :, 3] == 0, :3] = np.array([255, 0, 0], dtype=np.uint8)  # any colour
    rng = np.random.default_rng(9)
    palette = rng.integers(0, 256, size=(16, 4), dtype=np.uint8)
    palette[:, 3] = rng.integers(30, 256, size=16)
    palette[0] = (255, 0, 0, 255)             # the invisible pixels' colour, opaque: not them
    palette[2] = (7, 9, 11, 0)                # the transparent entry
    palette[5] = (0, 0, 0, 0)                 # another: ties go to the lower index
    labels = dither(image, palette, method=method, space=space)
    invisible = image[:, :, 3] == 0
    assert invisible.any() and (labels[invisible] == 2).all()
    assert (palette[labels[image[:, :, 3] == 255], 3] > 0).all()


# --------------------------------------------------------------------------
# The grid search: exactly brute force, ties to the lowest index
# --------------------------------------------------------------------------
def brute_force(points, pal4, four):
    d = (points[:, None, 0] - pal4[None, :, 0]) ** 2 + (points[:, None, 1] - pal4[None, :, 1]) ** 2
    d = d + (points[:, None, 2] - pal4[None, :, 2]) ** 2
    if four:
        d = d + (points[:, None, 3] - pal4[None, :, 3]) ** 2
    j = d.argmin(axis=1)
    return j, d[np.arange(len(j)), j]


@pytest.mark.parametrize("n_ch, scale", [(1, 255), (3, 255), (3, 40000), (4, 65025)])
@pytest.mark.parametrize("k", [1, 2, 16, 256, 300])
def test_grid_search_is_brute_force(n_ch, scale, k):
    rng = np.random.default_rng(k * 10 + n_ch)
    pal = rng.integers(0, scale + 1, size=(k, n_ch)).astype(np.float64)
    if k >= 4:
        pal[k // 2] = pal[1]                                # duplicate entries
        pal[3] = pal[0] + 1                                 # near neighbours
    if scale == 40000:
        pal[:, 1:] -= scale / 2                             # negative features (Oklab a, b)
    pal4 = D._padded(pal)
    lo, hi = pal.min(axis=0), pal.max(axis=0)
    span = np.maximum(hi - lo, 1)
    queries = [rng.uniform(lo - 0.4 * span, hi + 0.4 * span, size=(4000, n_ch)),   # some outside
               pal,                                                              # on entries
               (pal[rng.integers(0, k, 500)] + pal[rng.integers(0, k, 500)]) / 2,  # midpoints: ties
               rng.integers(-20, scale + 20, size=(500, n_ch)).astype(np.float64)]
    points = D._padded(np.concatenate(queries))
    expected, expected_sq = brute_force(points, pal4, n_ch == 4)
    cells = []
    # the grid of a large image, and the few cells of a small one's
    for n_queries in (1 << (24 if k in (16, 256) else 16), 200):
        grid = D._Grid(pal4, n_ch, lo - 10, hi + 10, n_queries)
        got = np.empty(points.shape[0], dtype=np.int64)
        sq = np.empty(points.shape[0])
        DK.nearest_entries(points, pal4, n_ch == 4, *grid.args(), got, sq)
        assert np.array_equal(got, expected), n_queries
        assert np.array_equal(sq, expected_sq), n_queries
        inside = np.all((points[:, :n_ch] >= grid.lo[:n_ch])
                        & (points[:, :n_ch] < grid.lo[:n_ch] + grid.n[:n_ch] / grid.inv[:n_ch]),
                        1)
        assert inside.mean() > 0.25                        # the grid, not the fallback, ran
        cells.append((int(np.prod(grid.n)), grid.levels))
    assert cells[1][0] < cells[0][0], cells                # (a smaller grid was tried)
    if k == 256:
        assert cells[0][1] == D.GRID_LEVELS[n_ch]           # lists built from parent lists


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------
GOOD_IMAGE = np.zeros((4, 5, 3), dtype=np.uint8)
GOOD_PALETTE = np.zeros((2, 3), dtype=np.uint8)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(strength=2), ValueError, r"^strength=2 must be between 0 and 1$"),
    (dict(strength=-0.1), ValueError, r"strength=-0.1 must be between 0 and 1"),
    (dict(strength=float("nan")), ValueError, r"must be between 0 and 1"),
    (dict(strength="1"), TypeError, r"strength='1' must be a number"),
    (dict(strength=True), TypeError, r"strength=True must be a number"),
    (dict(method="floyd"), ValueError, r"method='floyd' is not one of 'fs', 'ordered', 'none'"),
    (dict(space="lab"), ValueError, r"space='lab' is not one of 'rgb', 'oklab'"),
    (dict(n_workers=0), ValueError, r"n_workers=0 must be >= 1"),
    (dict(n_workers=1.5), TypeError, r"n_workers=1.5 must be an integer"),
    (dict(image=GOOD_IMAGE.astype(float)), TypeError, r"dtype float64 .* convert it to uint8"),
    (dict(image=[[1, 2]]), TypeError, r"image must be a numpy ndarray"),
    (dict(image=np.zeros((4, 5, 2), np.uint8)), ValueError, r"2 channels"),
    (dict(image=np.zeros((0, 5, 3), np.uint8)), ValueError, r"empty"),
    (dict(palette=np.zeros((2, 4), np.uint8)), ValueError, r"palette has shape \(2, 4\): expected \(k, 3\)"),
    (dict(palette=np.zeros((0, 3), np.uint8)), ValueError, r"palette has 0 colours"),
    (dict(palette=np.zeros((2, 3), np.int64)), TypeError, r"palette dtype int64"),
])
def test_bad_arguments(kwargs, error, message):
    args = dict(image=GOOD_IMAGE, palette=GOOD_PALETTE)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        dither(args.pop("image"), args.pop("palette"), **args)
