"""The command on several images, and the options of issues 7 and 10 (--psnr,
--skip-if-larger, --optimize, --space, --dither): outputs, reports, errors."""

import json
from pathlib import Path
import os
import sys

import click
import numpy as np
import pytest
from PIL import Image

from kmeans_fast import api, cli
from kmeans_fast import io as kio
from kmeans_fast.dither import dither

from conftest import CLI_LOOK, chunks, digest, sample, save

FAST = ["--steps", "4"]
# Worker processes cost a second or two each to start (Python, NumPy, Numba's
# cache).  The pool is tested where it matters (the default worker count in
# test_several_files_each_get_their_outputs, --jobs 2 against single runs, the
# shared palette's histograms); tests of what a batch plans and writes run it
# in this process with --jobs 1, the same code path as a one-file batch.
IN_PROCESS = ["--jobs", "1"]


def run(runner, *args):
    return runner.invoke(cli.main, ["compress", *[str(a) for a in args]],
                         catch_exceptions=False)


def lines_of_json(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def photos(work):
    """Three small photos in photos/, one in photos/more/."""
    (work / "photos" / "more").mkdir(parents=True)
    paths = [save(work / "photos" / f"p{i}.png", sample(40, 56, seed=i)) for i in range(3)]
    paths.append(save(work / "photos" / "more" / "deep.jpg", sample(40, 56, seed=9)))
    return paths


def test_several_files_each_get_their_outputs(runner, work, photos):
    result = run(runner, *photos[:3], "-k", 6, *FAST, "--out-dir", "out")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(work / "out")) == sorted(
        [f"p{i}_k6.png" for i in range(3)] + [f"p{i}_q95.jpg" for i in range(3)])
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["image", "colours", "PNG"]
    assert sum("photos/p" in line for line in lines) == 3
    assert "3 of 3 images compressed" in result.stdout


def test_batch_outputs_equal_single_runs(runner, work, photos):
    assert run(runner, *photos[:2], "-k", 5, *FAST, "--out-dir", "b", "--jobs", 2
               ).exit_code == 0
    for p in photos[:2]:
        assert run(runner, p, "-k", 5, *FAST, "-o", f"single_{p.stem}.png",
                   "--jpeg-output", f"single_{p.stem}.jpg").exit_code == 0
        assert digest(work / "b" / f"{p.stem}_k5.png") == digest(work / f"single_{p.stem}.png")
        assert digest(work / "b" / f"{p.stem}_q95.jpg") == digest(work / f"single_{p.stem}.jpg")


def test_folders_and_recursion(runner, work, photos):
    result = run(runner, "photos", "-k", 4, *FAST, *IN_PROCESS, "--no-jpeg", "--out-dir", "flat")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(work / "flat")) == ["p0_k4.png", "p1_k4.png", "p2_k4.png"]
    result = run(runner, "photos", "-r", "-k", 4, *FAST, *IN_PROCESS, "--no-jpeg",
                 "--out-dir", "deep")
    assert result.exit_code == 0, result.output
    assert (work / "deep" / "more" / "deep_k4.png").exists()      # sub-folders mirrored


def test_json_lines_one_per_image(runner, work, photos):
    result = run(runner, *photos, "-k", 4, *FAST, "--json", "--out-dir", "o", *IN_PROCESS)
    assert result.exit_code == 0, result.output
    reports = lines_of_json(result.stdout)
    assert sorted(r["input"]["path"] for r in reports) == sorted(str(p) for p in photos)
    for r in reports:
        assert r["error"] is None and r["kmeans"]["bytes"] == os.path.getsize(r["kmeans"]["path"])


def test_json_lines_name_a_failed_file(runner, work, photos):
    (work / "photos" / "broken.png").write_bytes(b"not an image")
    result = run(runner, "photos", "-k", 4, *FAST, "--json", "--out-dir", "o", *IN_PROCESS)
    assert result.exit_code == 1
    reports = {r["input"]["path"]: r for r in lines_of_json(result.stdout)}
    broken = reports[str(Path("photos") / "broken.png")]
    assert broken["kmeans"] is None and "cannot decode" in broken["error"]
    assert sum(r["error"] is None for r in reports.values()) == 3


def test_a_bad_file_does_not_stop_the_batch(runner, work, photos):
    (work / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = run(runner, "photos", "-k", 4, *FAST, "--out-dir", "o", *IN_PROCESS)
    assert result.exit_code == 1
    assert result.stderr.count("broken.png") == 2                 # its line, and the summary
    assert "1 of 4 images failed" in result.stderr and "Traceback" not in result.stderr
    assert sorted(os.listdir(work / "o")) == sorted(
        [f"p{i}_k4.png" for i in range(3)] + [f"p{i}_q95.jpg" for i in range(3)])


@pytest.mark.parametrize("args, code, words", [
    (["empty"], 2, "folder 'empty' has no images"),
    (["nested"], 2, "add --recursive"),
    (["photos", "-o", "x.png"], 2, "--out-dir"),
    (["photos", "--jpeg-output", "x.jpg"], 2, "--out-dir"),
    (["photos", "--out-dir", "a_file"], 2, "'--out-dir'"),
    (["photos/p0.png", "photos/more/../p0.png"], 2, "would both write"),
    (["photos/p0.png", "--shared-palette"], 2, "several images"),
])
def test_batch_usage_errors(runner, work, photos, args, code, words):
    (work / "empty").mkdir()
    (work / "nested" / "inner").mkdir(parents=True)
    save(work / "nested" / "inner" / "x.png", sample(8, 8))
    (work / "a_file").write_text("not a folder")
    before = sorted(os.listdir(work))
    result = run(runner, *args, *FAST)
    assert result.exit_code == code, result.output
    err = result.stderr
    assert err.startswith("Error: ") and err.count("\n") == 1 and words in err, err
    assert sorted(os.listdir(work)) == before


def test_shared_palette(runner, work, photos):
    result = run(runner, *photos[:3], "-k", 8, *FAST, "--shared-palette", "--no-jpeg",
                 "--out-dir", "s", "--seed", 3)
    assert result.exit_code == 0, result.output
    plte = {chunks((work / "s" / f"p{i}_k8.png").read_bytes())["PLTE"][0] for i in range(3)}
    assert len(plte) == 1                                          # one palette for all
    hist = sum(api.histogram(kio.read_image(p)) for p in photos[:3])
    fit = api.fit_palette(hist, 8, steps=4, seed=3, space=CLI_LOOK["space"])
    with Image.open(work / "s" / "p0_k8.png") as im:
        got = np.asarray(im.convert("RGB"))
    assert {tuple(c) for c in got.reshape(-1, 3)} <= {tuple(c) for c in fit.palette}
    assert "shared palette: 8 colours for 3 images" in result.stdout


def test_shared_palette_for_gray_and_colour_images(runner, work, photos):
    gray = save(work / "photos" / "gray.png", sample(40, 56, seed=5)[:, :, 0])
    result = run(runner, photos[0], gray, "-k", 8, *FAST, *IN_PROCESS, "--shared-palette",
                 "--no-jpeg", "--out-dir", "m", "--json")
    assert result.exit_code == 0, result.output
    for r in lines_of_json(result.stdout):
        assert r["error"] is None and r["kmeans"]["colors"] == 8
        assert r["kmeans"]["shared_palette"]        # no k-means ran per image: no claims
        assert r["kmeans"]["steps_run"] is r["kmeans"]["converged"] is None
        assert r["kmeans"]["distinct_colors"] is None
    with Image.open(work / "m" / "gray_k8.png") as im:     # gray pixels, an RGB palette
        got = np.asarray(im.convert("RGB"))
    hist = api.histogram(kio.read_image(photos[0])) + api.histogram(kio.read_image(gray))
    fit = api.fit_palette(hist, 8, steps=4, seed=0, space=CLI_LOOK["space"])
    labels = dither(np.repeat(kio.read_image(gray)[:, :, None], 3, axis=2), fit.palette,
                    method=CLI_LOOK["dither"], space=CLI_LOOK["space"])
    assert np.array_equal(got, fit.palette[labels])


def test_skip_existing(runner, work, photos):
    assert run(runner, *photos[:3], "-k", 4, *FAST, *IN_PROCESS, "--out-dir", "o"
               ).exit_code == 0
    stamp = (work / "o" / "p0_k4.png").stat().st_mtime_ns
    (work / "o" / "p1_k4.png").unlink()
    (work / "o" / "p2_q95.jpg").unlink()                     # half its outputs: redone too
    result = run(runner, *photos[:3], "-k", 4, *FAST, *IN_PROCESS, "--out-dir", "o",
                 "--skip-existing")
    assert result.exit_code == 0
    assert "p0.png: its outputs exist" in result.stdout
    assert "p1.png: its outputs exist" not in result.stdout
    assert "p2.png: its outputs exist" not in result.stdout
    assert (work / "o" / "p1_k4.png").exists() and (work / "o" / "p2_q95.jpg").exists()
    assert (work / "o" / "p0_k4.png").stat().st_mtime_ns == stamp
    result = run(runner, *photos[:3], "-k", 4, *FAST, *IN_PROCESS, "--out-dir", "o",
                 "--skip-existing", "--json")
    assert result.exit_code == 0
    got = {Path(r["input"]["path"]).name: r for r in lines_of_json(result.stdout)}
    assert set(got) == {"p0.png", "p1.png", "p2.png"}        # every image has its line
    assert all(r["error"] is None and "(--skip-existing)" in r["skipped"] for r in got.values())
    result = run(runner, *photos[:3], "-k", 4, *FAST, *IN_PROCESS, "--out-dir", "o",
                 "--skip-existing")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == ("nothing to do: all 3 images have their outputs "
                                              "(--skip-existing)")
    assert "0 of 0" not in result.stdout


# --------------------------------------------------------------------------
# the options of issues 7 and 10
# --------------------------------------------------------------------------
def test_psnr_target_takes_the_fewest_colours(runner, work, image_file):
    result = run(runner, "photo.png", "-k", 64, *FAST, "--psnr", 30, "--json", "--no-jpeg")
    assert result.exit_code == 0, result.output
    km = json.loads(result.stdout)["kmeans"]
    k = km["colors"]
    assert km["target_reached"] and km["undithered_psnr"] >= 30 and k in km["colors_tried"]
    image = kio.read_image(image_file)
    space = CLI_LOOK["space"]                   # the search is undithered, in the space used
    assert api.quantize(image, k, steps=4, seed=0, space=space).psnr >= 30
    assert api.quantize(image, k - 1, steps=4, seed=0, space=space).psnr < 30  # one fewer: short
    text = run(runner, "photo.png", "-k", 64, *FAST, "--psnr", 30, "--no-jpeg",
               "-o", "text.png").stdout                 # the table's summary says the same
    assert (f"the fewest colours reaching PSNR 30 dB undithered ({km['undithered_psnr']:.2f}), "
            f"of {', '.join(map(str, km['colors_tried']))} tried") in text


def test_psnr_target_out_of_reach_uses_the_most(runner, work, image_file):
    result = run(runner, "photo.png", "-k", 2, *FAST, "--psnr", 60, "--no-jpeg")
    assert result.exit_code == 0, result.output
    assert "reaches PSNR 60 dB" in result.stderr and "the largest was used" in result.stderr
    assert (work / "photo_k2.png").exists()


def test_skip_if_larger(runner, work, rgb):
    tiny = save(work / "tiny.jpg", rgb, params=[1, 10])       # a small JPEG
    result = run(runner, "tiny.jpg", "-k", 256, *FAST, "--skip-if-larger", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "would be larger than the input" in report["skipped"]
    assert report["kmeans"]["path"] is None and report["jpeg"]["path"] is None  # none written
    assert result.stderr.count("would be larger") == 1, result.stderr   # said on stderr too
    assert os.listdir(work) == ["tiny.jpg"]
    assert tiny.stat().st_size < report["kmeans"]["bytes"]
    # the table says so too: no "wrote" line for files that were not written
    table = run(runner, "tiny.jpg", "-k", 256, *FAST, "--skip-if-larger")
    assert table.exit_code == 0 and os.listdir(work) == ["tiny.jpg"]
    last = table.stdout.splitlines()[-1]
    assert last.startswith("wrote nothing: the PNG") and "would be larger" in last
    assert "would be larger" not in table.stderr, "said once, not twice"
    # and a batch counts it apart from the images it compressed
    save(work / "big.png", rgb)
    batch = run(runner, "tiny.jpg", "big.png", "-k", 256, *FAST, "--skip-if-larger",
                "--out-dir", "out", "-j", 1)
    assert batch.exit_code == 0, batch.output
    assert "1 of 2 images compressed" in batch.stdout
    assert "1 not written (larger than the input)" in batch.stdout


def test_optimize_is_smaller_and_exact(runner, work, image_file):
    plain = json.loads(run(runner, "photo.png", "-k", 16, *FAST, "--json", "--no-jpeg",
                           "-o", "plain.png").stdout)
    small = json.loads(run(runner, "photo.png", "-k", 16, *FAST, "--json", "--no-jpeg",
                           "--optimize", "-o", "opt.png").stdout)
    assert small["kmeans"]["optimized"] and small["kmeans"]["bytes"] <= plain["kmeans"]["bytes"]
    assert np.array_equal(kio.read_image(work / "plain.png"), kio.read_image(work / "opt.png"))


def test_space_is_used_and_reported(runner, work, image_file):
    image = kio.read_image(image_file)
    for space in ("rgb", "oklab"):
        report = json.loads(run(runner, "photo.png", "-k", 8, *FAST, "--space", space,
                                "--json", "--no-jpeg", "-o", f"{space}.png").stdout)
        assert report["kmeans"]["space"] == space
        q = api.quantize(image, 8, steps=4, seed=0, space=space, dither=CLI_LOOK["dither"])
        with Image.open(work / f"{space}.png") as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), q.image())


def test_plain_is_undithered_rgb_k_means(runner, work, image_file):
    report = json.loads(run(runner, "photo.png", "-k", 8, *FAST, "--plain", "--json",
                            "--no-jpeg").stdout)
    assert report["kmeans"]["space"] == "rgb" and report["kmeans"]["dither"] == "none"
    q = api.quantize(kio.read_image(image_file), 8, steps=4, seed=0)    # the library's defaults
    with Image.open(work / "photo_k8.png") as im:
        assert np.array_equal(np.asarray(im), q.labels)
        assert np.array_equal(np.asarray(im.getpalette(), np.uint8).reshape(-1, 3), q.palette)


@pytest.mark.parametrize("args, words", [
    (["--dither-strength", 2], "'--dither-strength'"),
    (["--dither-strength", "half"], "'half' is not a valid number"),
    (["--dither-strength", "nan"], "nan is not a number"),
    (["--psnr", -1], "'--psnr'"),
    (["--psnr", 0], "'--psnr'"),
    (["--space", "lab"], "'--space'"),
    (["--dither", "floyd"], "'--dither'"),
    (["--dither", "none", "--dither-strength", 0.5], "--dither fs or ordered"),
    (["--plain", "--dither-strength", 0.5], "--dither fs or ordered"),
    (["--plain", "--dither", "fs"], "--plain means --space rgb --dither none: drop --dither"),
    (["--plain", "--space", "oklab"], "--plain means --space rgb --dither none: drop --space"),
])
def test_bad_look_options(runner, work, image_file, args, words):
    result = run(runner, "photo.png", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert words in result.stderr
    assert os.listdir(work) == ["photo.png"]


def test_batch_show_opens_only_the_written_pngs(runner, work, rgb, monkeypatch):
    """--show on a batch: the PNGs written, not those --skip-if-larger left
    out; with no display, one note and still a success."""
    save(work / "tiny.jpg", rgb, params=[1, 10])            # its PNG would be larger
    save(work / "big.png", rgb)
    opened = []
    monkeypatch.setattr(click, "launch", lambda path, **kw: opened.append(path) or 0)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    args = ("tiny.jpg", "big.png", "-k", 256, *FAST, "--skip-if-larger", "--no-jpeg",
            *IN_PROCESS, "--show")
    assert run(runner, *args, "--out-dir", "out").exit_code == 0
    assert [Path(p) for p in opened] == [Path("out") / "big_k256.png"]
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run(runner, *args, "--out-dir", "out2")
    assert result.exit_code == 0 and len(opened) == 1
    assert result.stderr.count("note: --show: no display") == 1, result.stderr
