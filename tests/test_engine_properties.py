"""Properties of the k-means that must hold for any input (hypothesis)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_fast import colour, quantize


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


def sq_dist(points, centers):
    """(n, k) squared distances in float64, features added in the documented order."""
    d = (points[:, None, 0] - centers[None, :, 0]) ** 2
    for c in range(1, points.shape[1]):
        d = d + (points[:, None, c] - centers[None, :, c]) ** 2
    return d


settings.register_profile("engine", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


@settings.get_profile("engine")
@given(image=images(), k=st.integers(1, 20), init=st.sampled_from(["kmeans++", "random"]),
       steps=st.integers(0, 40), seed=st.integers(0, 2**31),
       space=st.sampled_from(["rgb", "oklab"]), method=st.sampled_from(["auto", "histogram"]))
def test_kmeans_invariants(image, k, init, steps, seed, space, method):
    q = quantize(image, k, steps=steps, init=init, seed=seed, space=space, method=method)
    n_ch = 1 if image.ndim == 2 else image.shape[2]
    pixels = image.reshape(-1, n_ch)
    distinct = np.unique(pixels, axis=0)
    k_out = q.palette.shape[0]

    assert q.labels.shape == image.shape[:2]
    assert q.labels.dtype == (np.uint8 if k_out <= 256 else np.uint16)
    assert 1 <= k_out <= min(k, len(distinct)) and q.labels.max() < k_out
    assert q.image().shape == image.shape[:2] + (n_ch,)
    assert len(q.history) == q.steps_run <= steps

    feats = colour.features(pixels, space).astype(np.float64)
    pal_feats = colour.features(q.palette, space).astype(np.float64)
    # Labels: the nearest palette entry in the working space, ties to the lowest index.
    d = sq_dist(feats, pal_feats)
    assert np.array_equal(q.labels.ravel(), d.argmin(axis=1))
    # The errors are those of the labels, exactly.
    chosen = q.palette[q.labels.ravel()].astype(np.int64)
    assert q.sse == ((pixels.astype(np.int64) - chosen) ** 2).sum()
    assert q.inertia == ((feats.astype(np.int64) - pal_feats[q.labels.ravel()].astype(np.int64))
                         ** 2).sum()
    # Lloyd never increases its objective (up to float rounding of its exact sums).
    scale = max([1.0] + q.history)
    for before, after in zip(q.history, q.history[1:]):
        assert after <= before + 1e-12 * scale
    # Every colour its own entry: nothing is lost (alpha-0 colours are one colour).
    visible = distinct if n_ch != 4 else np.unique(np.where(distinct[:, 3:] == 0, 0, distinct),
                                                   axis=0)
    # Transparent pixels share one fully transparent entry (when k leaves room).
    if n_ch == 4 and (pixels[:, 3] == 0).any() and k >= 2:
        assert (q.palette[q.labels.ravel()[pixels[:, 3] == 0]] == 0).all()
    if k >= len(visible):
        assert np.array_equal(q.palette, visible)
        if n_ch != 4 or (pixels[:, 3] > 0).all():
            assert q.sse == 0 and q.inertia == 0
    # Converged: each free center is exactly the mean of the features nearest to it.
    if q.converged and q.steps_run > 0:
        free = q.centers[1:] if (n_ch == 4 and (q.palette[0] == 0).all() and k_out >= 2
                                  and (pixels[:, 3] == 0).any()) else q.centers
        points = feats if n_ch != 4 else feats[pixels[:, 3] > 0] if len(free) < k_out else feats
        nearest = sq_dist(points, free).argmin(axis=1)
        for j in np.unique(nearest):
            members = points[nearest == j]
            sums = members.astype(np.int64).sum(axis=0)
            assert np.array_equal(free[j], sums / len(members))
        # the palette steps that follow only ever lower the error of the
        # rounded centres
        rounded = colour.features(colour.palette_from_centres(q.centers, space, n_ch),
                                  space).astype(np.float64)
        assert q.inertia <= sq_dist(feats, rounded).min(axis=1).astype(np.int64).sum()
    elif not q.converged:       # (converged at step 0: every colour its own entry)
        assert np.array_equal(q.palette, colour.palette_from_centres(q.centers, space, n_ch))


@settings.get_profile("engine")
@given(image=images(), k=st.integers(1, 12), init=st.sampled_from(["kmeans++", "random"]),
       seed=st.integers(0, 2**31), space=st.sampled_from(["rgb", "oklab"]))
def test_backends_agree_on_any_image(image, k, init, seed, space):
    a = quantize(image, k, steps=15, init=init, seed=seed, space=space, backend="numba")
    b = quantize(image, k, steps=15, init=init, seed=seed, space=space, backend="numpy")
    assert np.array_equal(a.palette, b.palette)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.centers, b.centers)
    assert (a.inertia, a.sse, a.history) == (b.inertia, b.sse, b.history)
