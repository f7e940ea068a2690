import math

import cv2
import numpy as np
import pytest

from kmeans_fast import metrics
from kmeans_fast.metrics import psnr, size_stats, ssim
from kmeans_fast.sample import sample_image


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
    sample_image(40, 50), sample_image(40, 50)[:, :, 1],
    np.dstack([sample_image(40, 50), np.arange(2000, dtype=np.uint8).reshape(40, 50)])])
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
    a = sample_image(*shape[:2], seed=4)
    if len(shape) == 2:
        a = a[:, :, 0].copy()
    elif shape[2] == 4:
        a = np.dstack([a, rng.integers(0, 256, shape[:2], dtype=np.uint8)])
    b = _degraded(a)
    assert ssim(a, b) == pytest.approx(_skimage_luma_ssim(a, b), abs=1e-5)


def test_ssim_same_in_bands(monkeypatch):
    a = sample_image(150, 90, seed=1)
    b = _degraded(a)
    whole = ssim(a, b)
    monkeypatch.setattr(metrics, "_BAND_PIXELS", 90 * 13)
    assert ssim(a, b) == pytest.approx(whole, abs=1e-9)
    monkeypatch.setattr(metrics, "_BAND_PIXELS", 1)
    assert ssim(a, b) == pytest.approx(whole, abs=1e-9)


def test_ssim_orders_quality(rgb):
    slightly = cv2.GaussianBlur(rgb, (3, 3), 0.5)
    badly = cv2.GaussianBlur(rgb, (9, 9), 4)
    assert 1 > ssim(rgb, slightly) > ssim(rgb, badly) > 0


def test_ssim_of_a_tiny_image():
    a = sample_image(6, 9)
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
