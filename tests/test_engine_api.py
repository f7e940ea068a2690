"""quantize(), histogram(), fit_palette(), remap(): arguments, determinism, result types."""

import re

import numpy as np
import pytest

from kmeans_fast import Quantization, api, colour, quantize, reference
from kmeans_fast import _numba_backend as nb

from engine_cases import (assert_same, error_of, next_palette, photo, random_image,
                          with_channels)

RGB = random_image((10, 12, 3), 0)


@pytest.mark.parametrize("image, error, words", [
    (RGB.astype(np.float32), TypeError, "float32"),
    (RGB.astype(np.uint16), TypeError, "uint16"),
    (RGB.tolist(), TypeError, "list"),
    (np.zeros((2, 2, 2, 3), np.uint8), ValueError, "(2, 2, 2, 3)"),
    (np.zeros(5, np.uint8), ValueError, "(5,)"),
    (np.zeros((4, 4, 2), np.uint8), ValueError, "2 channels"),
    (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
])
def test_bad_images(image, error, words):
    with pytest.raises(error, match=__import__("re").escape(words)):
        quantize(image, 4)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(n_colors=0), ValueError, "n_colors=0 must be between 1 and 65536"),
    (dict(n_colors=65537), ValueError, "n_colors=65537"),
    (dict(n_colors=2.5), TypeError, "n_colors=2.5"),
    (dict(n_colors=True), TypeError, "n_colors=True"),
    (dict(n_colors=4, steps=-1), ValueError, "steps=-1 must be >= 0"),
    (dict(n_colors=4, init="kmeans"), ValueError, "init='kmeans'"),
    (dict(n_colors=4, backend="cuda"), ValueError, "backend='cuda'"),
    (dict(n_colors=4, method="tree"), ValueError, "method='tree'"),
    (dict(n_colors=4, seed=-3), ValueError, "seed=-3"),
    (dict(n_colors=4, tol=-1.0), ValueError, "tol=-1.0"),
    (dict(n_colors=4, tol=float("nan")), ValueError, "tol=nan"),
    (dict(n_colors=2, init=np.zeros((3, 3))), ValueError, "(2, 3)"),
    (dict(n_colors=1, init=np.full((1, 3), np.inf)), ValueError, "non-finite"),
    (dict(n_colors=4, space="lab"), ValueError, "space='lab' is not one of 'rgb', 'oklab'"),
    (dict(n_colors=4, dither="floyd"), ValueError, "dither='floyd'"),
    (dict(n_colors=4, dither_strength=2), ValueError, "dither_strength=2 must be between 0"),
    (dict(n_colors=4, dither_strength="1"), TypeError, "dither_strength='1'"),
    (dict(n_colors=4, method="pixels", space="oklab"), ValueError, "method='pixels' needs"),
])
def test_bad_arguments(kwargs, error, words):
    import re

    with pytest.raises(error, match=re.escape(words)):
        quantize(RGB, **kwargs)


def test_result_fields_and_types():
    q = quantize(photo("astronaut"), 16, seed=1)
    assert isinstance(q, Quantization)
    assert q.palette.shape == (16, 3) and q.palette.dtype == np.uint8
    assert q.centers.shape == (16, 3) and q.centers.dtype == np.float64
    assert q.labels.shape == (96, 128) and q.labels.dtype == np.uint8
    assert isinstance(q.inertia, int) and q.inertia > 0
    assert isinstance(q.sse, int) and q.sse == q.inertia     # rgb: features are the channels
    assert isinstance(q.steps_run, int) and isinstance(q.converged, bool)
    assert len(q.history) == q.steps_run
    assert q.image().shape == (96, 128, 3) and q.image().dtype == np.uint8
    assert q.method in ("pixels", "histogram")
    assert q.n_distinct == len(np.unique(photo("astronaut").reshape(-1, 3), axis=0))


def test_uint16_labels_above_256_colours():
    q = quantize(photo("coffee"), 300, steps=2, seed=0)
    assert q.palette.shape[0] == 300
    assert q.labels.dtype == np.uint16
    assert q.labels.max() < 300


def test_same_seed_same_result_and_none_draws_entropy():
    img = photo("chelsea")
    a = quantize(img, 8, seed=123)
    b = quantize(img, 8, seed=123)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.centers, b.centers)
    palettes = {quantize(img, 8, seed=None, steps=0, init="random").palette.tobytes()
                for _ in range(4)}
    assert len(palettes) > 1


def test_non_contiguous_input_gives_the_same_result():
    img = photo("astronaut")
    flipped = img[:, ::-1]
    assert not flipped.flags.c_contiguous
    a = quantize(flipped, 12, seed=4)
    b = quantize(np.ascontiguousarray(flipped), 12, seed=4)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.palette, b.palette)


def test_input_is_not_modified():
    img = photo("coffee")
    before = img.copy()
    quantize(img, 5, seed=0)
    quantize(img, 5, seed=0, backend="numpy")
    assert np.array_equal(img, before)


def test_fewer_colours_than_k():
    img = random_image((20, 20, 3), 3, levels=3)  # at most 27 colours
    distinct = np.unique(img.reshape(-1, 3), axis=0)
    q = quantize(img, 64)
    assert np.array_equal(q.palette, distinct)
    assert q.inertia == 0 and q.sse == 0 and q.converged and q.steps_run == 0
    assert np.array_equal(q.image(), img)


def test_steps_zero_assigns_to_initial_centres():
    img = photo("coffee")
    q = quantize(img, 6, steps=0, seed=2, init="random")
    assert q.steps_run == 0 and q.history == [] and not q.converged
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert all(tuple(c) in colours for c in q.palette)  # initial centres are pixel colours


def test_tol_stops_early():
    img = photo("astronaut")
    exact = quantize(img, 16, steps=200, seed=0)
    loose = quantize(img, 16, steps=200, seed=0, tol=1.0)
    assert exact.converged and loose.converged
    assert loose.steps_run <= exact.steps_run


def test_explicit_initial_centres():
    img = photo("chelsea")
    init = np.array([[0, 0, 0], [128, 128, 128], [255, 255, 255]])
    q = quantize(img, 3, init=init, steps=0)
    assert np.array_equal(q.centers, init.astype(float))


def test_kmeanspp_beats_random_init_on_average():
    img = photo("astronaut")
    pp = np.median([quantize(img, 16, steps=0, seed=s).inertia for s in range(5)])
    rnd = np.median([quantize(img, 16, steps=0, seed=s, init="random").inertia
                     for s in range(5)])
    assert pp < rnd


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_progress_is_reported_after_every_step(backend):
    calls = []
    q = quantize(photo("coffee"), 8, steps=5, seed=1, backend=backend,
                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(q.steps_run + 1)]
    with pytest.raises(TypeError, match="progress=3"):
        quantize(photo("coffee"), 8, progress=3)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_palette_of_out_of_range_initial_centres_is_clipped(backend):
    img = random_image((20, 20, 3), 0)
    q = quantize(img, 2, init=[[300.0, -20.0, 255.6], [0, 0, 0]], steps=0, backend=backend)
    assert q.palette.tolist() == [[255, 0, 255], [0, 0, 0]]
    assert q.centers[0].tolist() == [300.0, -20.0, 255.6]  # the centres themselves are kept


# --------------------------------------------------------------------------
# transparency
# --------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_transparent_pixels_share_one_transparent_entry(space, backend):
    image = with_channels(photo("coffee"), 4, clear=True)
    image[:, :10, :3] = random_image((96, 10, 3), 1)      # invisible colours of all kinds
    q = quantize(image, 8, seed=0, space=space, backend=backend)
    assert q.palette[0].tolist() == [0, 0, 0, 0]
    assert (q.palette[1:, 3] > 0).all()                    # every other entry is visible
    assert (q.labels[image[:, :, 3] == 0] == 0).all()


def test_premultiplied_distance_ignores_the_colour_of_nearly_invisible_pixels():
    """Two colours at alpha 1 differ by 255 in red: premultiplied they are almost
    the same point, so they do not take two of three entries."""
    image = np.zeros((40, 40, 4), np.uint8)
    image[:20] = (200, 50, 50, 255)
    image[20:30] = (50, 50, 200, 255)
    image[30:35] = (255, 0, 0, 1)
    image[35:] = (0, 0, 0, 1)
    q = quantize(image, 3, seed=0)
    assert {tuple(c) for c in q.palette[:, :3]} >= {(200, 50, 50), (50, 50, 200)}


def test_opaque_rgba_gets_an_opaque_palette():
    image = with_channels(photo("astronaut"), 4)
    image[:, :, 3] = 255
    for space in ("rgb", "oklab"):
        assert (quantize(image, 16, seed=0, space=space).palette[:, 3] == 255).all()


# --------------------------------------------------------------------------
# the histogram, fit_palette and remap
# --------------------------------------------------------------------------
def test_histogram_files_that_are_damaged_or_wrong_say_so(tmp_path):
    """Histogram.load: a ValueError naming the file, never numpy's or zipfile's own error."""
    import io
    import zipfile
    h = api.Histogram(np.array([[1, 2, 3], [4, 5, 6]], np.uint8), np.array([5, 6]))
    tag = np.array("kmeans_fast.Histogram/1")
    np.savez(tmp_path / "float.npz", colours=h.colours, counts=h.counts * 0.5, format=tag)
    np.savez(tmp_path / "object.npz", colours=np.array([None], object), counts=h.counts,
             format=tag)
    np.savez(tmp_path / "stored.npz", colours=h.colours, counts=h.counts, format=tag)
    body = bytearray((tmp_path / "stored.npz").read_bytes())
    body[body.rindex(b"\x05\x00\x00\x00")] = 9           # a count changed: its CRC fails
    (tmp_path / "crc.npz").write_bytes(bytes(body))
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (10000000000000, 3), }".ljust(117)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:        # 30 TB declared
        z.writestr("colours.npy", b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little")
                   + header.encode() + b"\n" + bytes(30))
        for name, value in (("counts", h.counts), ("format", tag)):
            buf = io.BytesIO()
            np.save(buf, value)
            z.writestr(f"{name}.npy", buf.getvalue())
    for name, words in [("float.npz", "holds no valid histogram: counts must be an integer"),
                        ("object.npz", "is damaged (Object arrays"),
                        ("crc.npz", "is damaged (Bad CRC-32"),
                        ("huge.npz", "is damaged: an array is larger than the file holds")]:
        with pytest.raises(ValueError, match=re.escape(f"'{tmp_path / name}' {words}")):
            api.Histogram.load(tmp_path / name)
    assert api.Histogram.load(tmp_path / "stored.npz") == h


def test_histogram_type(tmp_path):
    image = photo("chelsea")
    h = api.histogram(image)
    assert h.n_pixels == image.shape[0] * image.shape[1] and h.n_channels == 3
    assert h.n_colours == len(np.unique(image.reshape(-1, 3), axis=0))
    assert sum([h]) == h and h + h == api.Histogram(h.colours, 2 * h.counts)
    h.save(tmp_path / "h.npz")
    assert api.Histogram.load(tmp_path / "h.npz") == h
    np.savez(tmp_path / "other.npz", colours=h.colours)
    np.save(tmp_path / "array.npy", h.counts)
    (tmp_path / "text.npz").write_text("colours\n")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "h.npz").read_bytes()[:60])
    for name in ("other.npz", "array.npy", "text.npz", "cut.npz"):
        with pytest.raises(ValueError, match="is not a kmeans_fast histogram file"):
            api.Histogram.load(tmp_path / name)
    merged = api.Histogram.from_arrays(np.concatenate([h.colours, h.colours[::-1]]),
                                       np.concatenate([h.counts, h.counts[::-1]]))
    assert merged == h + h
    with pytest.raises(ValueError, match="sorted"):
        api.Histogram(h.colours[::-1], h.counts)
    with pytest.raises(ValueError, match="positive"):
        api.Histogram(h.colours, 0 * h.counts)
    gray = api.histogram(image[:, :, 0])
    mixed = h + gray                            # the wider layout: gray as (v, v, v)
    assert mixed.n_channels == 3 and mixed.n_pixels == 2 * h.n_pixels
    assert mixed == h + api.histogram(np.repeat(image[:, :, :1], 3, axis=2))
    rgba = api.histogram(np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]))
    assert (gray + rgba).n_channels == 4 and (gray + rgba) == rgba + gray.widened(4)
    assert "Histogram(" in repr(h)


def test_fit_palette_and_remap_arguments():
    h = api.histogram(RGB)
    with pytest.raises(TypeError, match="hist must be a Histogram"):
        api.fit_palette(RGB, 4)
    with pytest.raises(ValueError, match="n_colors=0"):
        api.fit_palette(h, 0)
    fit = api.fit_palette(h, 4, seed=0)
    assert fit.n_pixels == 120 and fit.mse == fit.sse / (120 * 3)
    assert fit.psnr == pytest.approx(10 * np.log10(255 ** 2 / fit.mse))
    with pytest.raises(ValueError, match="expected \\(k, 3\\)"):
        api.remap(RGB, fit.palette[:, :2])
    with pytest.raises(TypeError, match="palette must be"):
        api.remap(RGB, fit.palette.astype(np.int64))
    labels = api.remap(RGB, fit.palette)
    assert labels.shape == RGB.shape[:2] and labels.dtype == np.uint8


# --------------------------------------------------------------------------
# quality target
# --------------------------------------------------------------------------
def test_target_psnr_picks_the_smallest_k_that_reaches_it():
    image = photo("chelsea")
    hist = api.histogram(image)
    curve = {k: api.fit_palette(hist, k, steps=5, seed=1).psnr for k in range(1, 41)}
    for target in [curve[k] - 1e-9 for k in (2, 5, 9, 14, 23, 31, 40)] + [30.0, 33.3, 34.5]:
        fit = api.fit_palette(hist, 40, steps=5, seed=1, target_psnr=target)
        k = fit.n_colors
        assert fit.reached and curve[k] >= target, target
        assert k == 1 or curve[k - 1] < target, (target, k)        # one fewer falls short
        assert fit.search[0] == (40, curve[40]) and (k, curve[k]) in fit.search
        q = quantize(image, 40, steps=5, seed=1, target_psnr=target)
        assert np.array_equal(q.palette, fit.palette) and q.search == fit.search


def test_target_psnr_out_of_reach():
    fit = api.fit_palette(api.histogram(photo("coffee")), 4, seed=0, target_psnr=60)
    assert fit.n_colors == 4 and fit.reached is False and fit.search == [(4, fit.psnr)]
    with pytest.raises(ValueError, match="target_psnr=-1"):
        quantize(photo("coffee"), 4, target_psnr=-1)


# (photo, channels, space, k): converged runs, some where rounding the centres
# leaves a lower error to find and some where it does not; one whose next
# palette (Oklab means rounded to 8-bit RGB) is worse, so is not kept; one
# with a reserved transparent entry
PALETTE_STEP_CASES = [(with_channels(photo(name), n_ch, clear=n_ch == 4), k, space)
                      for name, n_ch, space, k in (
                          ("astronaut", 1, "rgb", 5), ("coffee", 1, "rgb", 5),
                          ("astronaut", 3, "oklab", 5), ("coffee", 3, "rgb", 5),
                          ("chelsea", 3, "rgb", 5), ("coffee", 3, "oklab", 5),
                          ("coffee", 3, "oklab", 12),
                          ("chelsea", 4, "rgb", 6))]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_palette_steps_settle_the_rounding_of_converged_centres(monkeypatch, backend):
    """After the Lloyd steps' fixed point the 8-bit palette is improved until
    its clusters' rounded means give no lower error (reference, step 9)."""
    module = nb if backend == "numba" else reference
    lowered = 0
    for image, k, space in PALETTE_STEP_CASES:
        q = quantize(image, k, seed=1, steps=300, space=space, backend=backend)
        with monkeypatch.context() as m:
            m.setattr(module, "PALETTE_STEPS", 0)
            rounded = quantize(image, k, seed=1, steps=300, space=space, backend=backend)
        assert q.converged and q.history == rounded.history
        assert np.array_equal(q.centers, rounded.centers)   # the Lloyd steps' centres
        assert np.array_equal(rounded.palette,
                              colour.palette_from_centres(rounded.centers, space,
                                                          q.palette.shape[1]))
        assert q.inertia == error_of(image, q.palette, space)
        assert q.inertia <= rounded.inertia
        lowered += q.inertia < rounded.inertia
        # settled: one more palette step keeps nothing
        again = next_palette(image, q, space)
        assert (np.array_equal(again, q.palette)
                or error_of(image, again, space) >= q.inertia), (k, space)
    assert lowered >= 3, f"palette steps lowered the error in {lowered} cases only"


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("args", [dict(steps=2),               # stopped by the step limit
                                  dict(steps=300, tol=1e9)])   # "converged" by tol, moving
def test_no_palette_steps_without_a_fixed_point(monkeypatch, backend, args):
    module = nb if backend == "numba" else reference
    image, k, space = PALETTE_STEP_CASES[0]
    q = quantize(image, k, seed=1, backend=backend, **args)
    assert q.converged == ("tol" in args) and q.steps_run <= 2
    assert np.array_equal(q.palette, colour.palette_from_centres(q.centers, "rgb", 1))
    monkeypatch.setattr(module, "PALETTE_STEPS", 0)
    assert_same(q, quantize(image, k, seed=1, backend=backend, **args), args)


@pytest.mark.parametrize("space", ["rgb", "oklab"])
def test_histograms_up_to_the_exact_limit_fit_the_same_on_both_backends(space):
    """k-means sums count x feature; past 2**53 float64 sums are not exact and
    the backends would part.  The most pixels allowed agree; one more is refused."""
    rng = np.random.default_rng(4)
    colours = rng.integers(0, 256, (40, 4), dtype=np.uint8)
    colours[:, 3] = 255
    colours[-3:] = [255, 255, 255, 255]          # a few brightest: the largest features
    share = rng.random(40)
    counts = np.floor(share / share.sum() * (api.MAX_FIT_PIXELS - 1)).astype(np.int64)
    counts[0] += api.MAX_FIT_PIXELS - 1 - counts.sum()
    hist = api.Histogram.from_arrays(colours, counts)
    assert hist.n_pixels == api.MAX_FIT_PIXELS - 1
    a = api.fit_palette(hist, 6, seed=2, space=space, steps=20, backend="numba")
    b = api.fit_palette(hist, 6, seed=2, space=space, steps=20, backend="numpy")
    assert np.array_equal(a.palette, b.palette) and np.array_equal(a.centers, b.centers)
    assert (a.inertia, a.sse, a.history) == (b.inertia, b.sse, b.history)
    over = api.Histogram(hist.colours, hist.counts + (np.arange(hist.n_colours) == 0))
    for backend in ("numba", "numpy"):
        with pytest.raises(ValueError, match="68,719,476,736 pixels or more"):
            api.fit_palette(over, 6, seed=2, space=space, backend=backend)
    huge = api.Histogram(hist.colours, hist.counts << 20)        # no int64 overflow either
    with pytest.raises(ValueError, match="pixels or more"):
        api.fit_palette(huge, 6, seed=2, space=space)
