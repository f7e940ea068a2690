"""The kmeans-fast command: behaviour, prompts, report, and a clean error for every bad input."""

import io as pyio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

import kmeans_fast.sample
from kmeans_fast import __version__, cli, quantize
from kmeans_fast import io as kio
from kmeans_fast.api import DEFAULT_STEPS
from kmeans_fast.sample import sample_image

from conftest import CLI_LOOK, chunks, digest, encode, ihdr, save

FAST = ["--steps", "4"]


def run(runner, *args, input=None):
    return runner.invoke(cli.main, [str(a) for a in args], input=input,
                         catch_exceptions=False)


def run_json(runner, *args, input=None):
    result = run(runner, "compress", *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_clean_error(result, code, *words):
    """One line on stderr naming the problem, nothing on stdout, the exit code."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("Error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)


@pytest.fixture
def small_sample(monkeypatch):
    """--sample gives a 64x96 sample, to keep the tests fast."""
    monkeypatch.setattr(kmeans_fast.sample, "sample_image", lambda: sample_image(64, 96))


# --------------------------------------------------------------------------
# what it writes and reports
# --------------------------------------------------------------------------
def test_compress_writes_png_jpeg_and_a_table(runner, image_file, work):
    result = run(runner, "compress", "photo.png", "-k", 8, *FAST)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(work)) == ["jpeg_compressed.jpg", "photo.png", "photo_k8.png"]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["bytes", "ratio", "bits/px", "PSNR", "dB", "SSIM", "seconds"]
    assert lines[1].startswith("original ")
    assert lines[2].startswith("k-means PNG ")
    assert lines[3].startswith("JPEG q95 ")
    assert "8 colours, 4-bit indexed PNG" in result.stdout
    assert "of 4 steps run" in result.stdout
    assert result.stderr == ""


def test_png_reads_back_exactly(runner, image_file, rgb, work):
    result = run(runner, "compress", "photo.png", "-k", 6, "--steps", 5, "--seed", 2,
                 "-o", "out.png")
    assert result.exit_code == 0, result.output
    q = quantize(rgb, 6, steps=5, seed=2, **CLI_LOOK)
    data = (work / "out.png").read_bytes()
    assert ihdr(data) == (4, 3)                                  # indexed, 4 bits for 6 colours
    assert len(chunks(data)["PLTE"][0]) == 3 * 6
    assert np.array_equal(kio.read_image(work / "out.png"), q.image())
    with Image.open(pyio.BytesIO(data)) as im:
        assert np.array_equal(np.asarray(im), q.labels)
        assert np.array_equal(np.asarray(im.getpalette(), np.uint8).reshape(-1, 3), q.palette)


def test_gray_input_gives_a_gray_palette(runner, work, rgb):
    gray = rgb[:, :, 0].copy()
    save(work / "gray.png", gray)
    report = run_json(runner, "gray.png", "-k", 4, *FAST)
    assert report["input"]["channels"] == 1
    data = (work / "gray_k4.png").read_bytes()
    assert ihdr(data) == (2, 3)
    plte = np.frombuffer(chunks(data)["PLTE"][0], np.uint8).reshape(-1, 3)
    assert (plte == plte[:, :1]).all()                           # gray entries
    with Image.open(work / "gray_k4.png") as im:
        back = np.asarray(im.convert("L"))
    assert np.array_equal(back, quantize(gray, 4, steps=4, seed=0,
                                                **CLI_LOOK).image()[:, :, 0])


def test_rgba_keeps_its_alpha(runner, work, rgb):
    alpha = np.where(np.arange(rgb.shape[1]) < 20, 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb, np.broadcast_to(alpha, rgb.shape[:2])])
    save(work / "rgba.png", rgba)
    report = run_json(runner, "rgba.png", "-k", 5, *FAST)
    assert report["input"]["channels"] == 4
    data = (work / "rgba_k5.png").read_bytes()
    assert ihdr(data) == (4, 3) and "tRNS" in chunks(data)
    assert np.array_equal(kio.read_image(work / "rgba_k5.png"),
                          quantize(rgba, 5, steps=4, seed=0, **CLI_LOOK).image())
    assert report["jpeg"]["psnr"] > 20                           # compared on its colours


def test_more_than_256_colours_gives_truecolour_and_a_note(runner, image_file, work):
    result = run(runner, "compress", "photo.png", "-k", 300, "--steps", 1, "--no-jpeg")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and "truecolour" in result.stderr
    assert ihdr((work / "photo_k300.png").read_bytes()) == (8, 2)
    assert "truecolour PNG" in result.stdout


def test_json_report(runner, image_file, work):
    report = run_json(runner, "photo.png", "-k", 8, *FAST)
    assert set(report) == {"input", "kmeans", "jpeg", "skipped"} and report["skipped"] is None
    assert {"path", "width", "height", "channels", "bytes"} <= set(report["input"])
    assert {"path", "bytes", "colors", "steps_run", "converged", "psnr", "ssim",
            "seconds"} <= set(report["kmeans"])
    assert {"path", "bytes", "quality", "psnr", "ssim", "seconds"} <= set(report["jpeg"])
    inp, km, jp = report["input"], report["kmeans"], report["jpeg"]
    assert (inp["width"], inp["height"], inp["channels"]) == (64, 48, 3)
    assert inp["bytes"] == image_file.stat().st_size and inp["path"] == "photo.png"
    assert km["bytes"] == (work / km["path"]).stat().st_size and km["colors"] == 8
    assert jp["bytes"] == (work / jp["path"]).stat().st_size and jp["quality"] == 95
    assert jp["path"] == "jpeg_compressed.jpg"
    assert 0 < km["ssim"] < 1 and 10 < km["psnr"] < 60
    assert km["ratio"] == pytest.approx(64 * 48 * 3 / km["bytes"])
    assert km["bpp"] == pytest.approx(8 * km["bytes"] / (64 * 48))


def test_identical_result_reports_psnr_null(runner, work):
    flat = np.zeros((20, 30, 3), np.uint8)
    flat[:, 15:] = (200, 40, 10)
    save(work / "two.png", flat)
    report = run_json(runner, "two.png", "-k", 4, "--no-jpeg")
    assert report["kmeans"]["psnr"] is None                      # infinite: not valid JSON
    assert report["kmeans"]["ssim"] == 1.0 and report["kmeans"]["colors"] == 2
    assert ihdr((work / "two_k4.png").read_bytes()) == (1, 3)
    table = run(runner, "compress", "two.png", "-k", 4, "--no-jpeg").stdout
    assert "inf" in table


def test_no_jpeg(runner, image_file, work):
    report = run_json(runner, "photo.png", "-k", 4, *FAST, "--no-jpeg")
    assert report["jpeg"] is None
    assert not (work / "jpeg_compressed.jpg").exists()


def test_jpeg_quality_and_output(runner, image_file, work):
    (work / "out").mkdir()
    report = run_json(runner, "photo.png", "-k", 4, *FAST, "--jpeg-quality", 40,
                      "--jpeg-output", "out/q40.jpg")
    assert report["jpeg"]["quality"] == 40
    assert (work / "out" / "q40.jpg").stat().st_size == report["jpeg"]["bytes"]


def test_jpeg_match_size(runner, image_file, rgb):
    report = run_json(runner, "photo.png", "-k", 8, *FAST, "--jpeg-match-size")
    target = report["kmeans"]["bytes"]
    sizes = [len(kio.encode_jpeg(rgb, q)) for q in range(1, 101)]
    assert abs(report["jpeg"]["bytes"] - target) == min(abs(s - target) for s in sizes)


def test_png_level(runner, image_file, work):
    fast = run_json(runner, "photo.png", "-k", 8, *FAST, "--png-level", 0, "-o", "l0.png")
    small = run_json(runner, "photo.png", "-k", 8, *FAST, "--png-level", 9, "-o", "l9.png")
    assert fast["kmeans"]["bytes"] > small["kmeans"]["bytes"]


def test_sample(runner, work, small_sample):
    report = run_json(runner, "--sample", "-k", 4, *FAST)
    assert sorted(os.listdir(work)) == ["jpeg_compressed.jpg", "sample_k4.png"]
    inp = report["input"]
    assert inp["path"] is None and inp["sample"] is True
    assert inp["bytes"] == inp["raw_bytes"] == 64 * 96 * 3        # raw pixels: no file
    result = run(runner, "compress", "--sample", "-k", 4, *FAST)
    assert "original (raw)" in result.stdout


def test_quiet(runner, image_file, work):
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "--quiet")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    assert (work / "photo_k4.png").exists()


def test_show_opens_the_files(runner, image_file, monkeypatch):
    opened = []
    monkeypatch.setattr(click, "launch", lambda path, **kw: opened.append(path) or 0)
    monkeypatch.setenv("DISPLAY", ":0")
    assert run(runner, "compress", "photo.png", "-k", 4, *FAST, "--show", "-q").exit_code == 0
    assert opened == ["photo_k4.png", "jpeg_compressed.jpg"]


@pytest.mark.parametrize("display, launched, words", [
    (None, 0, "no display"),                    # a server, ssh without X: nothing to open on
    (":0", 1, "no viewer could open photo_k4.png"),   # click.launch: xdg-open missing
])
def test_show_says_when_it_cannot(runner, image_file, work, monkeypatch, display, launched,
                                  words):
    opened = []
    monkeypatch.setattr(click, "launch", lambda path, **kw: opened.append(path) or launched)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "--show")
    assert result.exit_code == 0 and (work / "photo_k4.png").exists()   # the files are written
    assert result.stderr.count("note: --show: ") == 1 and words in result.stderr, result.stderr
    assert len(opened) == (0 if display is None else 1)
    quiet = run(runner, "compress", "photo.png", "-k", 4, *FAST, "--show", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_non_ascii_names(runner, work, rgb):
    save(work / "été_写真.png", rgb)
    report = run_json(runner, "été_写真.png", "-k", 4, *FAST)
    assert report["kmeans"]["path"] == "été_写真_k4.png"
    assert (work / "été_写真_k4.png").exists()


def test_overwrites_its_own_earlier_output(runner, image_file, work):
    assert run(runner, "compress", "photo.png", "-k", 4, *FAST).exit_code == 0
    assert run(runner, "compress", "photo.png", "-k", 4, *FAST).exit_code == 0
    assert sorted(os.listdir(work)) == ["jpeg_compressed.jpg", "photo.png", "photo_k4.png"]


# --------------------------------------------------------------------------
# prompts
# --------------------------------------------------------------------------
def test_prompts_on_a_terminal(runner, image_file, work, interactive):
    report = run_json(runner, input="photo.png\n6\n3\n")
    assert report["kmeans"]["colors"] == 6 and report["kmeans"]["steps"] == 3
    assert (work / "photo_k6.png").exists()


def test_prompt_defaults(runner, image_file, interactive):
    result = run(runner, "compress", "--json", input="photo.png\n\n\n")
    assert result.exit_code == 0, result.output
    assert f"Number of colours [{cli.DEFAULT_COLORS}]" in result.stderr   # prompts: stderr
    assert f"Most k-means steps [{DEFAULT_STEPS}]" in result.stderr
    report = json.loads(result.stdout)                                   # stdout stays JSON
    assert report["kmeans"]["steps"] == DEFAULT_STEPS
    assert report["kmeans"]["path"] == f"photo_k{cli.DEFAULT_COLORS}.png"


def test_prompts_ask_again_after_a_bad_answer(runner, image_file, interactive):
    result = run(runner, "compress", "--json", input="missing.png\nphoto.png\n0\n5\n-1\n2\n")
    assert result.exit_code == 0, result.output
    assert "does not exist" in result.stderr and "not in the range" in result.stderr
    report = json.loads(result.stdout)
    assert report["kmeans"]["colors"] == 5 and report["kmeans"]["steps"] == 2


def test_given_values_are_not_asked(runner, image_file, interactive):
    result = run(runner, "compress", "photo.png", "-k", 4, "--steps", 2)
    assert result.exit_code == 0 and result.stderr == ""


def test_no_prompts_without_a_terminal(runner, image_file):
    report = run_json(runner, "photo.png")
    assert report["kmeans"]["colors"] == cli.DEFAULT_COLORS
    assert report["kmeans"]["steps"] == DEFAULT_STEPS
    assert_clean_error(run(runner, "compress"), 2, "IMAGE", "--sample")


# --------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------
@pytest.fixture
def terminal_stderr(monkeypatch):
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli, "_PROGRESS_PIXELS", 0)


def test_progress_on_a_terminal(runner, image_file, terminal_stderr):
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST)
    assert result.exit_code == 0
    q = quantize(kio.read_image(image_file), 4, steps=4, seed=0)
    for done in range(q.steps_run + 1):                          # steps done / total
        assert f"k-means, 4 colours, step {done}/4..." in result.stderr
    assert result.stderr.endswith("\r")                          # the line is wiped at the end
    assert result.stdout.startswith(" ")                         # the table is untouched


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_no_progress_with_json_or_quiet(runner, image_file, terminal_stderr, flag):
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, flag)
    assert result.exit_code == 0 and result.stderr == ""


def test_no_progress_for_small_images(runner, image_file, monkeypatch):
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli, "_PROGRESS_AFTER", 600.0)          # a short run
    assert run(runner, "compress", "photo.png", "-k", 4, *FAST).stderr == ""


# --------------------------------------------------------------------------
# bad input: one line, the right exit code, nothing written, the input intact
# --------------------------------------------------------------------------
def _truncated(data):
    return data[: len(data) * 2 // 3]


BAD_FILES = {
    "empty.png": lambda rgb: b"",
    "notes.png": lambda rgb: b"these are notes, not an image\n",
    "truncated.jpg": lambda rgb: _truncated(encode(rgb, ".jpg")),
    "truncated.png": lambda rgb: _truncated(encode(rgb)),
    "zeros.jpg": lambda rgb: encode(rgb, ".jpg")[:600] + bytes(2000),
    "corrupt.png": lambda rgb: encode(rgb)[:100] + bytes(50) + encode(rgb)[150:],
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_image_files(runner, work, rgb, name):
    (work / name).write_bytes(BAD_FILES[name](rgb))
    before = digest(work / name)
    result = run(runner, "compress", name, "-k", 4)
    assert_clean_error(result, 2, "'IMAGE'", name)
    assert os.listdir(work) == [name] and digest(work / name) == before


def test_missing_file_and_folder(runner, work):
    assert_clean_error(run(runner, "compress", "nope.jpg"), 2, "nope.jpg", "does not exist")
    (work / "pictures").mkdir()
    assert_clean_error(run(runner, "compress", "pictures"), 2, "folder 'pictures' has no images")
    assert os.listdir(work) == ["pictures"]


@pytest.mark.parametrize("args, words", [
    (["-k", 0], ["'--colors'", "0 is not in the range 1<=x<=65536"]),
    (["-k", 65537], ["'--colors'", "65537"]),
    (["-k", "many"], ["'--colors'", "'many' is not a valid whole number"]),
    (["-k", "1.5"], ["'--colors'", "'1.5' is not a valid whole number"]),
    (["--steps", -1], ["'--steps'", "-1"]),
    (["--init", "best"], ["'--init'", "best"]),
    (["--jpeg-quality", 101], ["'--jpeg-quality'"]),
    (["--png-level", 10], ["'--png-level'"]),
    (["--frobnicate"], ["--frobnicate"]),
    (["--sample"], ["not both"]),
    (["--no-jpeg", "--jpeg-match-size"], ["--jpeg-match-size", "--no-jpeg"]),
    (["--jpeg-quality", 50, "--jpeg-match-size"], ["--jpeg-quality"]),
])
def test_bad_options(runner, image_file, work, args, words):
    before = digest(image_file)
    result = run(runner, "compress", "photo.png", *args)
    assert_clean_error(result, 2, *words, "--help")
    assert os.listdir(work) == ["photo.png"] and digest(image_file) == before


@pytest.mark.parametrize("args, words", [
    (["-o", "photo.png"], ["'--output'", "is the input image"]),
    (["-o", "./sub/../photo.png"], ["is the input image"]),
    (["--jpeg-output", "photo.png"], ["'--jpeg-output'", "is the input image"]),
    (["-o", "nowhere/out.png"], ["'--output'", "does not exist"]),
    (["--jpeg-output", "nowhere/out.jpg"], ["'--jpeg-output'", "does not exist"]),
    (["-o", "photo.png/out.png"], ["is not a folder"]),
    (["-o", "sub"], ["is a folder"]),
])
def test_bad_outputs(runner, image_file, work, args, words):
    (work / "sub").mkdir()
    before = digest(image_file)
    result = run(runner, "compress", "photo.png", "-k", 4, *args)
    assert_clean_error(result, 2, *words)
    assert sorted(os.listdir(work)) == ["photo.png", "sub"] and not os.listdir(work / "sub")
    assert digest(image_file) == before


def test_output_is_the_input_by_absolute_path(runner, image_file):
    result = run(runner, "compress", image_file.resolve(), "-o", "photo.png")
    assert_clean_error(result, 2, "is the input image")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_unwritable_output_folder(runner, image_file, work):
    (work / "ro").mkdir()
    (work / "ro").chmod(0o555)
    try:
        result = run(runner, "compress", "photo.png", "-o", "ro/out.png")
    finally:
        (work / "ro").chmod(0o755)
    assert_clean_error(result, 2, "cannot write in folder")
    assert os.listdir(work / "ro") == []


def test_unwritable_output_folder_even_as_root(runner, image_file, work, monkeypatch):
    """What a read-only folder does to a normal user, simulated: root ignores modes."""
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    result = run(runner, "compress", "photo.png", "-k", 4, "-o", "out.png")
    assert_clean_error(result, 2, "'--output'", "cannot write in the current folder",
                       str(work), "Permission denied")
    assert os.listdir(work) == ["photo.png"]
    # no -o given: the folder is to blame, not -o (issue 11, item 11)
    result = run(runner, "compress", "photo.png", "-k", 4)
    assert_clean_error(result, 2, f"current folder '{work}'", "Permission denied", "with -o")
    assert "Invalid value" not in result.stderr and "'--output'" not in result.stderr
    assert os.listdir(work) == ["photo.png"]


def test_failed_write_leaves_nothing(runner, image_file, work, monkeypatch):
    """A disk that fills up while writing: exit 1, one line, no file, no temporary file."""
    real_open = os.open
    calls = []

    def full_disk(path, flags, *args):
        if str(path).endswith(".tmp"):
            calls.append(path)
            if len(calls) > 2:      # the two probes pass; the real writes fail
                raise OSError(28, "No space left on device")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", full_disk)
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST)
    assert_clean_error(result, 1, "No space left on device")
    assert os.listdir(work) == ["photo.png"]


def test_failed_second_write_removes_the_first_temp(runner, image_file, work, monkeypatch):
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(
        OSError(5, "Input/output error")))
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST)
    monkeypatch.setattr(os, "replace", real_replace)
    assert_clean_error(result, 1, "Input/output error")
    assert os.listdir(work) == ["photo.png"]


# --------------------------------------------------------------------------
# the installed command
# --------------------------------------------------------------------------
def _installed_command():
    beside = Path(sys.executable).with_name("kmeans-fast")
    found = str(beside) if beside.exists() else shutil.which("kmeans-fast")
    if found is None:
        pytest.fail("the kmeans-fast console script is not installed: pip install .")
    return found


def test_console_script(work):
    done = subprocess.run([_installed_command(), "compress", "--sample", "-k", "4",
                           "--steps", "3", "--json"], cwd=work, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["input"]["width"] == 1024 and report["input"]["height"] == 768
    assert (work / "sample_k4.png").stat().st_size == report["kmeans"]["bytes"]
    assert (work / "jpeg_compressed.jpg").exists()


def test_console_script_error_has_no_traceback(work):
    done = subprocess.run([_installed_command(), "compress", "missing.png"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("Error: ") and "does not exist" in done.stderr


def test_python_dash_m(work):
    done = subprocess.run([sys.executable, "-m", "kmeans_fast", "--version"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and __version__ in done.stdout
    assert done.stdout.startswith("kmeans-fast")


def test_help(runner):
    result = run(runner, "compress", "--help")
    assert result.exit_code == 0
    for option in ("--colors", "--steps", "--jpeg-match-size", "--sample", "--json"):
        assert option in result.stdout
