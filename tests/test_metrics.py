import math

import cv2
import numpy as np
import pytest

from kmeans_fast import metrics, quantize
from kmeans_fast.metrics import psnr, psnr_indexed, quality, size_stats, ssim, ssim_indexed

from conftest import sample

from engine_cases import photo, with_channels


def _degraded(image):
    out = cv2.GaussianBlur(image, (5, 5), 1.5)
    out[::9] = 0
    return out


def test_psnr_identical_is_inf(rgb):
    assert psnr(rgb, rgb.copy()) == math.inf


def test_psnr_of_a_known_mse():
    a = np.full((10, 20, 3), 100, np.uint8)
    b = a.copy()
    b[0, :, 0] = 110                    # 20 values off by 10: MSE = 2000 / 600
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / (2000 / 600)), abs=1e-12)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)  # MSE 1


def test_psnr_matches_numpy(rgb):
    b = _degraded(rgb)
    mse = np.mean((rgb.astype(float) - b) ** 2)
    assert psnr(rgb, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-12)


@pytest.mark.parametrize("image", [
    sample(40, 50), sample(40, 50)[:, :, 1],
    np.dstack([sample(40, 50), np.arange(2000, dtype=np.uint8).reshape(40, 50)])])
def test_ssim_identical_is_one(image):
    assert ssim(image, image.copy()) == 1.0


def _skimage_luma_ssim(a, b):
    skm = pytest.importorskip("skimage.metrics")
    if a.ndim == 3:
        code = cv2.COLOR_RGB2GRAY if a.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        a, b = cv2.cvtColor(a, code), cv2.cvtColor(b, code)
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)


@pytest.mark.parametrize("shape", [(60, 80, 3), (97, 31, 3), (11, 11, 3), (64, 64), (50, 70, 4)])
def test_ssim_matches_skimage(shape):
    rng = np.random.default_rng(1)
    a = sample(*shape[:2], seed=4)
    if len(shape) == 2:
        a = a[:, :, 0].copy()
    elif shape[2] == 4:
        a = np.dstack([a, rng.integers(0, 256, shape[:2], dtype=np.uint8)])
    b = _degraded(a)
    assert ssim(a, b) == pytest.approx(_skimage_luma_ssim(a, b), abs=1e-5)


def test_ssim_same_in_bands(monkeypatch):
    """Per-row sums: the band height changes nothing, to the last bit."""
    a = sample(150, 90, seed=1)
    b = _degraded(a)
    monkeypatch.setattr(metrics, "_BAND_PIXELS", 1 << 30)      # one band
    whole = ssim(a, b)
    for band_pixels in (90 * 13, 90 * 64, 1):                   # 13 rows, 64 rows, one row
        monkeypatch.setattr(metrics, "_BAND_PIXELS", band_pixels)
        assert ssim(a, b) == whole


def test_ssim_orders_quality(rgb):
    slightly = cv2.GaussianBlur(rgb, (3, 3), 0.5)
    badly = cv2.GaussianBlur(rgb, (9, 9), 4)
    assert 1 > ssim(rgb, slightly) > ssim(rgb, badly) > 0


def test_ssim_of_a_tiny_image():
    a = sample(6, 9)
    assert ssim(a, a) == 1.0
    assert -1 <= ssim(a, 255 - a) < 1


def test_single_channel_axis_is_gray(rgb):
    gray = rgb[:, :, :1]
    b = _degraded(gray[:, :, 0])[:, :, None]
    assert ssim(gray, b) == ssim(gray[:, :, 0], b[:, :, 0])
    assert psnr(gray, b) == psnr(gray[:, :, 0], b[:, :, 0])


@pytest.mark.parametrize("measure", [psnr, ssim])
def test_bad_arguments(measure, rgb):
    with pytest.raises(ValueError, match="differ in shape"):
        measure(rgb, rgb[:, :-1])
    with pytest.raises(TypeError, match="uint8"):
        measure(rgb, rgb.astype(np.float32))
    with pytest.raises(TypeError, match="ndarray"):
        measure(rgb, rgb.tolist())
    with pytest.raises(ValueError, match="channels|shape"):
        measure(np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 2), np.uint8))


def test_size_stats():
    stats = size_stats(1000, 100, 80, 3)
    assert stats["ratio"] == 24.0               # 24000 raw bytes / 1000
    assert stats["bpp"] == 1.0                  # 8000 bits / 8000 pixels


def test_ssim_precision_on_flat_bright_images():
    """The hardest case for float32: bright, nearly flat, nearly identical images."""
    pytest.importorskip("skimage")
    a = np.full((64, 64), 250, np.uint8)
    b = a.copy()
    b[::7, ::5] = 249
    assert ssim(a, b) == pytest.approx(_skimage_luma_ssim(a, b), abs=2e-5)
    assert ssim(a, a) == 1.0


# --------------------------------------------------------------------------
# Measures of palette[labels] without painting it
# --------------------------------------------------------------------------
def _every_colour():
    """All 2**24 RGB colours, (2**24, 3) uint8."""
    return np.arange(1 << 24, dtype="<u4").view(np.uint8).reshape(-1, 4)[:, :3]


@pytest.mark.parametrize("n_ch", [3, 4])
def test_palette_luma_is_opencvs_on_every_colour(n_ch):
    """The luma table, taken from OpenCV on a column of palette rows, equals
    OpenCV's luma of the same colours inside an image, for all 2**24 colours
    (OpenCV's fixed-point coefficients differ between versions; this holds if
    its vector and scalar paths agree)."""
    colours = _every_colour()
    if n_ch == 4:       # alpha must not matter
        alpha = np.random.default_rng(0).integers(0, 256, (1 << 24, 1), dtype=np.uint8)
        colours = np.hstack([colours, alpha])
    code = cv2.COLOR_RGB2GRAY if n_ch == 3 else cv2.COLOR_RGBA2GRAY
    in_image = cv2.cvtColor(colours.reshape(4096, 4096, n_ch), code).reshape(-1)
    as_table = metrics._luma(colours[:, None, :])[:, 0]
    assert np.array_equal(as_table, in_image)
    # and one palette through the class that builds the table
    palette = colours[::4099][:600]
    labels = np.arange(600, dtype=np.uint16).reshape(20, 30)
    image = palette[labels]
    lut = metrics._Indexed(image, palette, labels).lut
    assert np.array_equal(lut[labels], cv2.cvtColor(image, code))


def _indexed_case(shape, k, label_dtype, seed):
    """(image, palette, labels): a photo-like image and a random palette."""
    rng = np.random.default_rng(seed)
    rgb = sample(shape[0], shape[1], seed=seed)
    image = with_channels(rgb, shape[2]) if len(shape) == 3 else with_channels(rgb, 1)
    if len(shape) == 3 and shape[2] == 1:
        image = image[:, :, None]
    n_ch = 1 if image.ndim == 2 else image.shape[2]
    palette = rng.integers(0, 256, (k, n_ch), dtype=np.uint8)
    labels = rng.integers(0, k, shape[:2]).astype(label_dtype)
    return image, palette, labels


def _painted(image, palette, labels):
    return palette[labels].reshape(image.shape)


INDEXED_CASES = [((40, 50, 3), 16, np.uint8), ((40, 50, 3), 300, np.uint16),
                 ((33, 47), 5, np.uint8), ((33, 47, 1), 256, np.uint8),
                 ((29, 41, 4), 40, np.uint16), ((7, 30, 3), 4, np.uint8),
                 ((12, 11, 4), 256, np.uint8), ((3, 9000, 4), 2, np.uint8)]


@pytest.mark.parametrize("shape, k, label_dtype", INDEXED_CASES)
def test_indexed_measures_equal_the_painted_image(shape, k, label_dtype):
    image, palette, labels = _indexed_case(shape, k, label_dtype, seed=sum(shape) + k)
    painted = _painted(image, palette, labels)
    assert psnr_indexed(image, palette, labels) == psnr(image, painted)
    assert ssim_indexed(image, palette, labels) == ssim(image, painted)
    assert quality(image, palette, labels) == (
        {"psnr": psnr(image, painted), "ssim": ssim(image, painted)}, None)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
@pytest.mark.parametrize("n_colors", [2, 16])
def test_indexed_measures_of_a_real_quantization(name, n_colors):
    image = photo(name)
    q = quantize(image, n_colors, steps=3, seed=0)
    painted = q.palette[q.labels]
    assert psnr_indexed(image, q.palette, q.labels) == psnr(image, painted)
    assert ssim_indexed(image, q.palette, q.labels) == ssim(image, painted)
    assert ssim_indexed(image, q.palette, q.labels) == pytest.approx(
        _skimage_luma_ssim(image, painted), abs=1e-5)


def test_indexed_psnr_exact_on_the_largest_errors():
    """Every value off by 255 on rows whose squared error passes 2**31: no overflow."""
    image = np.zeros((3, 9000, 4), np.uint8)
    palette = np.full((2, 4), 255, np.uint8)
    labels = np.ones((3, 9000), np.uint8)
    assert psnr_indexed(image, palette, labels) == 0.0 == psnr(image, palette[labels])
    assert quality(image, palette, labels)[0]["psnr"] == 0.0


def test_indexed_identical_image():
    image, palette, labels = _indexed_case((30, 40, 3), 12, np.uint8, seed=2)
    image = palette[labels]
    assert psnr_indexed(image, palette, labels) == math.inf
    assert ssim_indexed(image, palette, labels) == 1.0


@pytest.mark.parametrize("n_ch, other_ch", [(3, 3), (1, 1), (4, 4), (4, 3)])
def test_quality_measures_both_images_as_the_single_functions_do(n_ch, other_ch):
    shape = (45, 38) if n_ch == 1 else (45, 38, n_ch)
    image, palette, labels = _indexed_case(shape, 24, np.uint8, seed=5)
    reference = image if other_ch == n_ch else image[:, :, :other_ch]
    other = _degraded(np.ascontiguousarray(reference))
    painted = _painted(image, palette, labels)
    indexed, measured = quality(image, palette, labels, other)
    assert indexed == {"psnr": psnr(image, painted), "ssim": ssim(image, painted)}
    assert measured == {"psnr": psnr(reference, other), "ssim": ssim(reference, other)}


def test_quality_of_a_jpeg():
    """The pipeline's use: PNG from palette + labels, JPEG decoded once."""
    image = photo("coffee")
    q = quantize(image, 8, steps=2, seed=1)
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 50])
    decoded = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])
    png, jpeg = quality(image, q.palette, q.labels, decoded)
    assert png == {"psnr": psnr(image, q.palette[q.labels]), "ssim": ssim(image, q.palette[q.labels])}
    assert jpeg == {"psnr": psnr(image, decoded), "ssim": ssim(image, decoded)}
    assert 0 < jpeg["ssim"] < 1 and 0 < png["ssim"] < 1


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_same_results_at_any_worker_count(workers, monkeypatch):
    """Many small bands, shared by a forced number of workers: every band is
    counted once and the sums do not depend on who computed them."""
    image, palette, labels = _indexed_case((61, 37, 3), 20, np.uint8, seed=9)
    other = _degraded(image)
    painted = _painted(image, palette, labels)
    expected = ({"psnr": psnr(image, painted), "ssim": ssim(image, painted, workers=1)},
                {"psnr": psnr(image, other), "ssim": ssim(image, other, workers=1)})
    monkeypatch.setattr(metrics, "_BAND_PIXELS", 37 * 3)       # 3-row bands: 17 SSIM, 21 PSNR
    assert psnr_indexed(image, palette, labels, workers=workers) == expected[0]["psnr"]
    assert ssim_indexed(image, palette, labels, workers=workers) == expected[0]["ssim"]
    assert ssim(image, other, workers=workers) == expected[1]["ssim"]
    assert quality(image, palette, labels, other, workers=workers) == expected


@pytest.mark.parametrize("label_dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("measure", [psnr_indexed, ssim_indexed,
                                     lambda *a: quality(*a, np.zeros((20, 30, 3), np.uint8))])
def test_labels_beyond_the_palette_are_refused(measure, label_dtype):
    image, palette, labels = _indexed_case((20, 30, 3), 6, label_dtype, seed=3)
    labels[19, 29] = 6                                          # the last row is owned last
    with pytest.raises(ValueError, match="the value 6 but the palette has 6 colours"):
        measure(image, palette, labels)
    labels[19, 29] = 5
    measure(image, palette, labels)


@pytest.mark.parametrize("measure", [psnr_indexed, ssim_indexed, quality])
def test_bad_indexed_arguments(measure):
    image, palette, labels = _indexed_case((20, 30, 3), 6, np.uint8, seed=3)
    with pytest.raises(ValueError, match=r"palette has shape \(6, 4\): expected \(k, 3\)"):
        measure(image, np.zeros((6, 4), np.uint8), labels)
    with pytest.raises(TypeError, match="palette must be a uint8"):
        measure(image, palette.astype(np.int64), labels)
    with pytest.raises(ValueError, match=r"labels have shape \(30, 20\)"):
        measure(image, palette, labels.T)
    with pytest.raises(TypeError, match="labels must be a uint8 or uint16"):
        measure(image, palette, labels.astype(np.int32))
    with pytest.raises(TypeError, match="image has dtype float32"):
        measure(image.astype(np.float32), palette, labels)
    with pytest.raises(ValueError, match="workers=0"):
        measure(image, palette, labels, workers=0)


def test_quality_refuses_another_shape():
    image, palette, labels = _indexed_case((20, 30, 4), 6, np.uint8, seed=3)
    for other in (np.zeros((20, 31, 4), np.uint8), np.zeros((20, 30), np.uint8)):
        with pytest.raises(ValueError, match="other has shape"):
            quality(image, palette, labels, other)


def test_gray_palette_may_be_one_dimensional():
    image, palette, labels = _indexed_case((25, 30), 9, np.uint8, seed=4)
    painted = palette[labels][:, :, 0]
    assert psnr_indexed(image, palette[:, 0], labels) == psnr(image, painted)
    assert ssim_indexed(image, palette[:, 0], labels) == ssim(image, painted)
