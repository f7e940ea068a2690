import numpy as np
import pytest

from kmeans_fast import sample
from kmeans_fast.sample import sample_image


def test_default_size_and_type():
    image = sample_image()
    assert image.shape == (768, 1024, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


def test_deterministic_per_seed():
    a = sample_image(64, 80, seed=5)
    assert np.array_equal(a, sample_image(64, 80, seed=5))
    assert not np.array_equal(a, sample_image(64, 80, seed=6))


def test_independent_of_the_band_size(monkeypatch):
    whole = sample_image(300, 120, seed=2)
    monkeypatch.setattr(sample, "_BAND_PIXELS", 7 * 120)        # bands of 7 rows
    assert np.array_equal(whole, sample_image(300, 120, seed=2))
    monkeypatch.setattr(sample, "_BAND_PIXELS", 1)              # one row at a time
    assert np.array_equal(whole, sample_image(300, 120, seed=2))


def test_photo_like():
    image = sample_image(192, 256).astype(np.int16)
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 5000                                  # noise and texture
    down = np.abs(np.diff(image, axis=0)).sum(axis=2)
    sky = down[:40]                                             # the sky: smooth
    assert np.median(sky) <= 12
    assert (down > 120).sum() > 100                             # hard edges
    assert image[:20, :, 2].mean() > image[:20, :, 0].mean()    # blue at the top
    assert image[-20:, :, 1].mean() > image[-20:, :, 2].mean()  # green at the bottom


@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (700, 1), (5, 3)])
def test_odd_sizes(shape):
    assert sample_image(*shape).shape == shape + (3,)


@pytest.mark.parametrize("args, error", [
    ((0, 10), ValueError), ((10, -1), ValueError), ((10.5, 10), TypeError),
    (("10", 10), TypeError), ((True, 10), TypeError)])
def test_bad_size(args, error):
    with pytest.raises(error, match="height|width"):
        sample_image(*args)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed=-1"):
        sample_image(8, 8, seed=-1)
