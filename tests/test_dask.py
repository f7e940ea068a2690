"""kmeans_fast.dask on a real LocalCluster (2 worker processes): quantize_dask
equals quantize on the same pixels, the streamed PNG, compress_files against
the batch command, argument checks, and the gigapixel benchmark in a tiny mode.

One cluster serves the whole module (starting worker processes that load
Numba costs seconds); images are small and chunk counts low, because every
block's histogram and remap has a fixed cost of tens of milliseconds.
"""

import logging
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from dask.core import get_dependencies  # noqa: E402
from dask.utils import key_split  # noqa: E402
from PIL import Image  # noqa: E402

from kmeans_fast import api, cli  # noqa: E402
from kmeans_fast import dask as kd  # noqa: E402
from kmeans_fast import io as kio  # noqa: E402
from kmeans_fast.png import encode_png  # noqa: E402

from conftest import CLI_LOOK, digest, sample, save  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:   # benchmarks/ is a folder of the repository, not installed
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes, 1 thread each, and its Client (the default)."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0", silence_logs=logging.ERROR
                                  ) as cluster, distributed.Client(cluster) as c:
        yield c


# --------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------
RGB = sample(24, 31, seed=5)


def _rgba():
    """RGBA with a fully transparent patch (varied colours under it) and a translucent band."""
    alpha = np.full(RGB.shape[:2] + (1,), 255, np.uint8)
    alpha[3:9, 4:15] = 0
    alpha[18:21] = 128
    return np.concatenate([RGB, alpha], axis=2)


def _few_colours():
    """Five colours only: k=8 gives exactly those."""
    levels = np.array([[10, 20, 30], [200, 10, 10], [0, 255, 0], [90, 90, 90], [250, 250, 5]],
                      np.uint8)
    return levels[np.arange(19 * 23).reshape(19, 23) * 7 % 5]


CASES = {
    # name: (image, chunks, k, options)
    "rgb-uneven": (RGB, (10, 13, 3), 6, dict(numba_threads=1)),
    "rgb-one-row-chunks-oklab": (RGB[:6], (1, -1, -1), 5, dict(space="oklab")),
    "rgb-one-chunk-oklab": (RGB, -1, 7, dict(space="oklab", init="random")),
    "gray-2d": (RGB[:, :, 1], (9, 11), 4, {}),
    "gray-3d": (RGB[:, :, 1:2], (12, 16, 1), 3, {}),
    "rgba-transparent": (_rgba(), (9, 17, 4), 6, {}),
    "rgba-transparent-oklab": (_rgba(), (13, 11, 4), 6, dict(space="oklab")),
    "rgb-channels-chunked": (RGB, (12, 16, 1), 6, {}),
    "rgb-empty-chunk": (RGB, ((0, 10, 14), (31,), (3,)), 6, {}),
    "rgb-uint16-labels": (RGB, (12, 31, 3), 300, {}),
    "rgb-target-psnr": (RGB, (12, 31, 3), 32, dict(target_psnr=30.0, tol=0.5)),
    "few-colours": (_few_colours(), (7, 9, 3), 8, {}),
}

FIT_FIELDS = ("palette", "centers", "inertia", "sse", "steps_run", "converged", "history",
              "n_distinct", "space", "target_psnr", "search", "psnr")


def _assert_same(got, want, labels):
    for name in FIT_FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        else:
            assert a == b, name
    assert labels.dtype == want.labels.dtype
    assert np.array_equal(labels, want.labels)


@pytest.mark.parametrize("case", CASES)
def test_quantize_dask_equals_quantize(client, case):
    image, chunks, k, options = CASES[case]
    array = da.from_array(image, chunks=chunks)
    want = api.quantize(image, k, seed=0, **{o: v for o, v in options.items()
                                             if o != "numba_threads"})
    got = kd.quantize_dask(array, k, seed=0, **options)
    assert isinstance(got.labels, da.Array) and got.labels.dtype == want.labels.dtype
    assert got.labels.chunks == tuple(c for c in array.chunks[:2])
    labels = got.labels.compute()
    _assert_same(got, want, labels)
    assert got.n_pixels == image.shape[0] * image.shape[1]
    assert set(got.seconds) == {"histogram", "fit"}


def test_the_cluster_does_the_work(client):
    """The blocks' histograms, the tree's sums and the remaps run as tasks on
    the workers (the default client), not in this process."""
    array = da.from_array(RGB, chunks=(6, 8, 3))       # 4 x 4 blocks
    with distributed.get_task_stream(client) as stream:
        q = kd.quantize_dask(array, 5, seed=0, split_every=4)
        q.labels.compute()
    ran = Counter(key_split(task["key"]) for task in stream.data)
    assert ran["kmeans_fast-histogram"] == 16 and ran["kmeans_fast-remap"] == 16
    assert ran["kmeans_fast-histogram-partial"] == 4 and ran["kmeans_fast-histogram-aggregate"] == 1
    workers = {task["worker"] for task in stream.data}
    assert workers <= set(client.scheduler_info()["workers"])


def test_histograms_sum_as_a_tree_of_split_every():
    array = da.from_array(np.zeros((64, 64, 3), np.uint8), chunks=(8, 8, 3))   # 8 x 8 blocks

    def fan_in(split_every):
        graph = dict(kd.histogram_dask(array, split_every=split_every).__dask_graph__())
        return [len(get_dependencies(graph, key)) for key in graph
                if key_split(key).startswith("kmeans_fast-histogram-")]

    small, large = fan_in(4), fan_in(16)
    assert max(small) == 4 and len(small) == 16 + 4 + 1        # 64 -> 16 -> 4 -> 1
    assert max(large) == 16 and len(large) == 4 + 1            # 64 -> 4 -> 1
    assert fan_in(None) == large                               # Dask's default, 16
    rows = da.from_array(np.zeros((64, 4), np.uint8), chunks=(2, 4))   # 32 x 1 blocks
    graph = dict(kd.histogram_dask(rows, split_every=8).__dask_graph__())
    assert max(len(get_dependencies(graph, key)) for key in graph
               if key_split(key).startswith("kmeans_fast-histogram-")) == 8


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_dask_local_schedulers(client, scheduler):
    """Without the distributed client: Dask's own local schedulers, same result."""
    image, chunks, k, _ = CASES["rgb-uneven"]
    with dask.config.set(scheduler=scheduler):
        assert kd._active_client() is None
        got = kd.quantize_dask(da.from_array(image, chunks=chunks), k, seed=0)
        labels = got.labels.compute()
        bands = list(kd.label_bands(got.labels))
    _assert_same(got, api.quantize(image, k, seed=0), labels)
    assert np.array_equal(np.concatenate(bands), labels)


def test_histogram_dask_equals_histogram(client):
    total = kd.histogram_dask(da.from_array(RGB, chunks=(7, 9, 3))).compute().item()
    assert total == api.histogram(RGB)


# --------------------------------------------------------------------------
# the streamed PNG
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ahead", [0, 2])
def test_write_png_streams_the_same_file(client, tmp_path, ahead):
    image = _rgba()
    q = kd.quantize_dask(da.from_array(image, chunks=(5, 12, 4)), 6, seed=0)
    labels = q.labels.compute()
    bands = list(kd.label_bands(q.labels, ahead=ahead))
    assert [len(b) for b in bands] == [5, 5, 5, 5, 4]
    assert np.array_equal(np.concatenate(bands), labels)
    path = tmp_path / "streamed.png"
    size = kd.write_png(path, q.palette, q.labels, ahead=ahead)
    data = path.read_bytes()
    assert size == len(data) and data == encode_png(q.palette, labels)
    decoded = np.asarray(Image.open(path).convert("RGBA"))
    assert np.array_equal(decoded, q.palette[labels])
    assert os.listdir(tmp_path) == ["streamed.png"]          # no temporary file left


# --------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------
def _never_computed(shape, chunks, dtype=np.uint8):
    """A dask array whose blocks raise when computed: errors must come first."""
    def boom(block):
        raise RuntimeError("computed before the arguments were checked")
    return da.zeros(shape, chunks=chunks, dtype=dtype).map_blocks(boom, dtype=dtype)


@pytest.mark.parametrize("array, options, error, match", [
    (_never_computed((8, 8, 3), 4), dict(dither="fs"), ValueError, "Floyd-Steinberg"),
    (_never_computed((8, 8, 3), 4), dict(dither="ordered"), ValueError, "ordered"),
    (_never_computed((8, 8, 3), 4), dict(dither="blue"), ValueError, "dither='blue'"),
    (_never_computed((8, 8, 3), 4, np.float32), {}, TypeError, "float32"),
    (_never_computed((8, 8, 3), 4, np.uint16), {}, TypeError, "uint16"),
    (_never_computed((2, 8, 8, 3), 4), {}, ValueError, r"\(2, 8, 8, 3\)"),
    (_never_computed((8, 8, 5), 4), {}, ValueError, "5 channels"),
    (_never_computed((8, 0, 3), 4), {}, ValueError, "empty"),
    (_never_computed((8, 8, 3), 4), dict(n_colors=0), ValueError, "n_colors=0"),
    (_never_computed((8, 8, 3), 4), dict(steps=-1), ValueError, "steps=-1"),
    (_never_computed((8, 8, 3), 4), dict(space="lab"), ValueError, "space='lab'"),
    (_never_computed((8, 8, 3), 4), dict(numba_threads=0), ValueError, "numba_threads=0"),
    (RGB, {}, TypeError, "dask.array.from_array"),
])
def test_bad_arguments_fail_first_in_one_line(array, options, error, match):
    options = {"n_colors": 4, **options}
    with pytest.raises(error, match=match) as caught:
        kd.quantize_dask(array, options.pop("n_colors"), **options)
    assert "\n" not in str(caught.value)


def test_unknown_chunk_sizes_are_refused():
    array = da.from_array(RGB, chunks=(8, 8, 3))
    rows = array[array[:, 0, 0] > 0]                      # unknown row count
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        kd.quantize_dask(rows, 4)


# --------------------------------------------------------------------------
# compress_files against the batch command
# --------------------------------------------------------------------------
FAST = ["--steps", "4"]


@pytest.fixture
def photos(work):
    """Three small photos and a broken PNG in photos/."""
    (work / "photos").mkdir()
    paths = [save(work / "photos" / f"p{i}.png", sample(30, 41, seed=i)) for i in range(3)]
    (work / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return paths


def _command(runner, *args):
    return runner.invoke(cli.main, ["compress", *[str(a) for a in args]],
                         catch_exceptions=False)


@pytest.mark.parametrize("shared", [False, True])
def test_compress_files_writes_what_the_command_writes(client, runner, work, photos, shared):
    flags = ["--shared-palette"] if shared else []
    result = _command(runner, "photos", "-k", 5, *FAST, "--out-dir", "cli", "--jobs", 1,
                      *flags)
    assert result.exit_code == 1                          # the broken file
    results = kd.compress_files(["photos"], "dask", 5, client=client, steps=4,
                                shared_palette=shared)
    assert [r.job.source.name for r in results] == ["broken.png", "p0.png", "p1.png", "p2.png"]
    broken, good = results[0], results[1:]
    assert not broken.ok and broken.report is None
    assert broken.job.source == work / "photos" / "broken.png"      # absolute paths
    message = broken.error.replace(str(work) + os.sep, "")
    assert f"Error: photos/broken.png: {message}\n" in result.stderr
    assert all(r.ok and r.error is None for r in good)
    assert sorted(os.listdir(work / "dask")) == sorted(os.listdir(work / "cli")) == sorted(
        [f"p{i}_k5.png" for i in range(3)] + [f"p{i}_q95.jpg" for i in range(3)])
    for name in os.listdir(work / "cli"):
        assert digest(work / "dask" / name) == digest(work / "cli" / name), name
    for r in good:
        assert r.report["kmeans"]["path"] == str(r.job.png)
        assert r.report["kmeans"]["bytes"] == os.path.getsize(r.job.png)
        assert r.report["kmeans"]["shared_palette"] is shared
    if shared:   # one palette: every file's PNG holds the same PLTE
        assert len({bytes(Image.open(r.job.png).getpalette()[:15]) for r in good}) == 1


def test_shared_palette_with_no_readable_file(client, work, photos):
    results = kd.compress_files([work / "photos" / "broken.png"], "none", 4, client=client,
                                shared_palette=True)
    assert len(results) == 1 and "cannot decode" in results[0].error
    assert os.listdir(work / "none") == []


def test_compress_files_starts_and_closes_its_own_cluster(work, photos):
    scheduler = kd._active_client()
    results = kd.compress_files(photos[0], "own", 3, steps=2, jpeg=False, workers=1)
    assert [r.ok for r in results] == [True]
    assert os.listdir(work / "own") == ["p0_k3.png"]
    q = api.quantize(kio.read_image(photos[0]), 3, steps=2, seed=0, **CLI_LOOK)
    assert np.array_equal(np.asarray(Image.open(work / "own" / "p0_k3.png").convert("RGB")),
                          q.palette[q.labels])
    assert kd._active_client() is scheduler              # the default client is untouched


def test_compress_files_refuses_bad_input_before_any_work(work, photos):
    with pytest.raises(kio.ImageIOError, match="does not exist"):
        kd.compress_files(["photos/nothing.png"], "o", 4, client=object())
    (work / "empty").mkdir()
    with pytest.raises(kio.ImageIOError, match="has no images"):
        kd.compress_files(["empty"], "o", 4, client=object())
    with pytest.raises(kio.ImageIOError, match="cannot create folder"):
        kd.compress_files(photos[:1], photos[0] / "sub", 4, client=object())
    with pytest.raises(TypeError, match="unknown option 'colours'"):
        kd.compress_files(photos[:1], "o", 4, client=object(), colours=3)
    with pytest.raises(ValueError, match="space='lab'"):
        kd.compress_files(photos[:1], "o", 4, client=object(), space="lab")
    assert not (work / "o").exists()


# --------------------------------------------------------------------------
# the gigapixel benchmark, tiny
# --------------------------------------------------------------------------
def test_gigapixel_demo_tiny(client, tmp_path):
    from benchmarks import gigapixel

    result = gigapixel.run_demo(height=90, width=150, k=6, tile=16, chunks=(32, 64),
                                work=tmp_path / "work", client=client)
    assert result["verified_rows"] == 90 and result["png_bytes"] > 0
    assert set(result["stages"]) >= {"generate", "histogram + fit", "PNG", "verify"}
    again = gigapixel.run_demo(height=90, width=150, k=6, tile=16, chunks=(32, 64),
                               work=tmp_path / "work", client=client)
    assert again["stages"]["generate"]["cached"] and again["palette"] == result["palette"]
    text = gigapixel.report_markdown(result)
    assert "peak memory" in text.lower() and "150 x 90" in text
