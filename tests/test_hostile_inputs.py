"""Hostile inputs found by a second review, and tests for planted bugs that
the other test files let through."""

import os

import numpy as np
import pytest

from kmeans_fast import Histogram, cli

from conftest import digest


def run(runner, *args):
    return runner.invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def assert_clean_error(result, code, *words):
    assert result.exit_code == code, result.output
    err = result.stderr
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


# --------------------------------------------------------------------------
# NaN passes every click range check (all comparisons with NaN are false)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--psnr", "nan"], ["'--psnr'", "nan"]),
    (["--dither", "fs", "--dither-strength", "nan"], ["'--dither-strength'", "nan"]),
    (["--dither", "ordered", "--dither-strength", "NaN"], ["'--dither-strength'"]),
])
def test_nan_options_are_usage_errors(runner, image_file, work, args, words):
    before = digest(image_file)
    result = run(runner, "compress", "photo.png", "-k", 4, *args)
    assert_clean_error(result, 2, *words)
    assert os.listdir(work) == ["photo.png"] and digest(image_file) == before


def test_psnr_inf_still_means_lossless(runner, image_file, work):
    """(inf is a number: the fewest colours with no error at all, or -k)."""
    result = run(runner, "compress", "photo.png", "-k", 4, "--psnr", "inf", "--no-jpeg", "-q")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------
# Histogram.from_arrays checks what it is given as Histogram() does
# --------------------------------------------------------------------------
@pytest.mark.parametrize("colours, counts, exc, words", [
    ([[1, 2, 3], [4, 5, 6]], [5, -3], ValueError, "negative"),
    ([[1, 2, 3]], [2.7], ValueError, "integer"),
    ([[1, 2, 3], [4, 5, 6]], [1], ValueError, "one count per colour"),
    (np.array([[-1.0, 0, 0]]), [1], ValueError, "uint8"),
    (np.array([[300, 0, 0]]), [1], ValueError, "uint8"),
    (np.array([1, 2, 3], dtype=np.uint8), [1, 1, 1], ValueError, "(D, C)"),
    (np.zeros((1, 2), np.uint8), [1], ValueError, "(D, C)"),
    ([[1, 2, 3], [1, 2, 3]], [2 ** 62, 2 ** 62], ValueError, "overflow"),
])
def test_histogram_from_arrays_refuses_bad_input(colours, counts, exc, words):
    with pytest.raises(exc, match=None) as info:
        Histogram.from_arrays(colours, counts)
    message = str(info.value)
    assert "\n" not in message and words in message, message


def test_histogram_from_arrays_still_merges_and_drops_zeros():
    h = Histogram.from_arrays(np.array([[4, 5, 6], [1, 2, 3], [4, 5, 6], [9, 9, 9]], np.uint8),
                              np.array([2, 1, 3, 0]))
    assert h.colours.tolist() == [[1, 2, 3], [4, 5, 6]] and h.counts.tolist() == [1, 5]
    h = Histogram.from_arrays([[7], [7]], [1, 1])          # plain lists of small ints
    assert h.colours.tolist() == [[7]] and h.counts.tolist() == [2]


# --------------------------------------------------------------------------
# kmeans_fast.dask.write_png given labels in memory
# --------------------------------------------------------------------------
def test_dask_write_png_refuses_numpy_labels(tmp_path):
    pytest.importorskip("dask.array")
    from kmeans_fast import dask as kd
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    labels = np.zeros((3, 4), np.uint8)
    for call in (lambda: kd.write_png(tmp_path / "x.png", palette, labels),
                 lambda: next(kd.label_bands(labels))):
        with pytest.raises(TypeError, match="dask array, not ndarray"):
            call()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# Quantization.image() and its kernel (nothing else called them)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2, 3, 7])
@pytest.mark.parametrize("n_ch, k, dtype", [(1, 2, np.uint8), (3, 5, np.uint8),
                                            (4, 300, np.uint16)])
def test_paint_is_palette_of_labels_at_any_worker_count(workers, n_ch, k, dtype):
    from kmeans_fast import _kernels as K
    rng = np.random.default_rng(workers * 10 + n_ch)
    palette = rng.integers(0, 256, (k, n_ch), dtype=np.uint8)
    labels = rng.integers(0, k, 101, dtype=dtype)
    out = np.full((101, n_ch), 77, np.uint8)       # a stale value each missed pixel keeps
    K.paint(palette, labels, out, workers)
    assert np.array_equal(out, palette[labels])


def test_quantization_image_is_palette_of_labels():
    from kmeans_fast import quantize
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (61, 47, 4), dtype=np.uint8)
    q = quantize(image, 12, seed=0)
    assert np.array_equal(q.image(), q.palette[q.labels])
    gray = quantize(image[:, :, 0], 3, seed=0)
    assert np.array_equal(gray.image(), gray.palette[gray.labels])


# --------------------------------------------------------------------------
# --skip-if-larger at its boundary: skipped at one byte more than the input
# --------------------------------------------------------------------------
def _jpeg_padded_to(data, size):
    """The same JPEG, grown to ``size`` bytes by one comment (COM) segment after SOI."""
    body = size - len(data) - 4
    assert data[:2] == b"\xff\xd8" and 0 <= body <= 65533
    return data[:2] + b"\xff\xfe" + (body + 2).to_bytes(2, "big") + b"k" * body + data[2:]


def test_skip_if_larger_boundary(runner, work, rgb):
    import json

    from conftest import save
    tiny = save(work / "tiny.jpg", rgb, params=[1, 10]).read_bytes()
    args = ("compress", "tiny.jpg", "-k", 256, "--steps", 2, "--no-jpeg", "--json")
    first = run(runner, *args, "-o", "ref.png")
    assert first.exit_code == 0, first.output
    size = json.loads(first.stdout)["kmeans"]["bytes"]
    assert len(tiny) + 5 <= size <= len(tiny) + 65000   # room for one comment segment
    (work / "ref.png").unlink()
    for input_size, skipped in ((size - 1, True), (size, False)):
        (work / "tiny.jpg").write_bytes(_jpeg_padded_to(tiny, input_size))
        result = run(runner, *args, "--skip-if-larger", "-o", "out.png")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["input"]["bytes"] == input_size
        assert bool(report["skipped"]) is skipped, report["skipped"]
        assert (work / "out.png").exists() is not skipped
        if not skipped:
            assert (work / "out.png").stat().st_size == size
