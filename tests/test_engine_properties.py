"""Properties of k-means that must hold for any input (hypothesis)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_fast import quantize


@st.composite
def images(draw):
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    n_ch = draw(st.sampled_from([0, 1, 3, 4]))  # 0: a 2-D gray image
    shape = (h, w) if n_ch == 0 else (h, w, n_ch)
    n_values = draw(st.sampled_from([2, 3, 16, 256]))
    values = draw(st.lists(st.integers(0, 255), min_size=n_values, max_size=n_values))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return np.asarray(values, dtype=np.uint8)[rng.integers(0, n_values, size=shape)]


def brute_force_sq_dist(pixels, centres):
    """Squared distances with the documented channel order."""
    d = (pixels[:, None, 0] - centres[None, :, 0]) ** 2
    for c in range(1, pixels.shape[1]):
        d = d + (pixels[:, None, c] - centres[None, :, c]) ** 2
    return d


settings.register_profile("engine", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


@settings.get_profile("engine")
@given(image=images(), k=st.integers(1, 20), init=st.sampled_from(["kmeans++", "random"]),
       steps=st.integers(0, 40), seed=st.integers(0, 2**31),
       method=st.sampled_from(["pixels", "histogram"]))
def test_kmeans_invariants(image, k, init, steps, seed, method):
    q = quantize(image, k, steps=steps, init=init, seed=seed, method=method)
    n_ch = 1 if image.ndim == 2 else image.shape[2]
    pixels = image.reshape(-1, n_ch).astype(np.float64)
    distinct = np.unique(image.reshape(-1, n_ch), axis=0)
    k_out = q.palette.shape[0]

    assert q.labels.shape == image.shape[:2]
    assert q.labels.dtype == (np.uint8 if k_out <= 256 else np.uint16)
    assert k_out == min(k, len(distinct))
    assert q.labels.max() < k_out
    assert np.array_equal(q.palette, np.clip(np.rint(q.centers), 0, 255).astype(np.uint8))
    assert q.image().shape == image.shape[:2] + (n_ch,)
    assert len(q.history) == q.steps_run <= steps

    if k >= len(distinct):  # every colour is its own centre
        assert np.array_equal(q.palette, distinct)
        assert q.inertia == 0.0
        assert np.array_equal(q.image().reshape(image.shape), image)
        return

    # Labels are the nearest centre, ties to the lowest index.
    d = brute_force_sq_dist(pixels, q.centers)
    assert np.array_equal(q.labels.ravel(), d.argmin(axis=1))
    # Inertia is the squared error of that assignment.
    direct = float(d.min(axis=1).sum())
    assert q.inertia == pytest.approx(direct, rel=1e-9, abs=1e-6)
    # Lloyd never increases the error (up to float rounding of the sums).
    hist = q.history + [q.inertia]
    scale = max(hist[0], 1.0)
    for before, after in zip(hist, hist[1:]):
        assert after <= before + 1e-12 * scale
    # Converged: each centre is exactly the mean of its pixels.
    if q.converged:
        for j in np.unique(q.labels):
            members = pixels[q.labels.ravel() == j]
            sums = members.sum(axis=0)
            assert np.array_equal(q.centers[j], sums / len(members))


@settings.get_profile("engine")
@given(image=images(), k=st.integers(1, 12), init=st.sampled_from(["kmeans++", "random"]),
       seed=st.integers(0, 2**31))
def test_backends_agree_on_any_image(image, k, init, seed):
    a = quantize(image, k, steps=15, init=init, seed=seed, backend="numba")
    b = quantize(image, k, steps=15, init=init, seed=seed, backend="numpy")
    assert np.array_equal(a.palette, b.palette)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.centers, b.centers)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-9, abs=1e-9)
