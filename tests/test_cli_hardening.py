"""The kmeans-fast command against the hostile inputs and surprises of issue 11.

Each test names the issue's item it covers.  Behaviour and exit codes go
through CliRunner; signals, closed file descriptors and /dev/full need a real
process: see test_cli_process.py.
"""

import errno
import inspect
import io as pyio
import json
import os
import re
import signal
import stat
import time
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

import kmeans_fast.api
import kmeans_fast.io
from kmeans_fast import cli, quantize
from kmeans_fast import io as kio
from kmeans_fast import png

from conftest import CLI_LOOK, chunks, save
from test_io_hardening import jpeg_claiming, png_claiming

FAST = ["--steps", "3"]
REPO = Path(__file__).resolve().parents[1]


def run(runner, *args, input=None):
    return runner.invoke(cli.main, [str(a) for a in args], input=input,
                         catch_exceptions=False)


def assert_one_line_error(result, code, *words):
    """Exit code, one line on stderr naming the problem, no traceback, nothing on stdout."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)


def no_temp_files(folder):
    return not [n for n in os.listdir(folder) if n.endswith(".tmp")]


# --------------------------------------------------------------------------
# item 1: -o -, special files, symbolic links
# --------------------------------------------------------------------------
def test_dash_writes_the_png_to_stdout_and_the_report_to_stderr(runner, image_file, rgb, work):
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "-o", "-")
    assert result.exit_code == 0, result.output
    png = result.stdout_bytes
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    q = quantize(rgb, 4, steps=3, seed=0, **CLI_LOOK)
    with Image.open(pyio.BytesIO(png)) as im:
        assert np.array_equal(np.asarray(im), q.labels)
    assert "k-means PNG" in result.stderr and "the PNG to standard output" in result.stderr
    assert sorted(os.listdir(work)) == ["jpeg_compressed.jpg", "photo.png"]
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "-o", "-", "--json",
                 "--no-jpeg")
    report = json.loads(result.stderr)
    assert report["kmeans"]["path"] == "-" and report["kmeans"]["bytes"] == len(png)
    assert report["kmeans"]["distinct_colors"] > 4
    assert result.stdout_bytes == png


def test_jpeg_output_dash(runner, image_file, work):
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "--jpeg-output", "-")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\xff\xd8")
    assert kio.decode_image(result.stdout_bytes).shape == (48, 64, 3)
    assert "the JPEG to standard output" in result.stderr
    assert sorted(os.listdir(work)) == ["photo.png", "photo_k4.png"]


def test_dash_refusals(runner, image_file, work, monkeypatch):
    assert_one_line_error(run(runner, "compress", "photo.png", "-o", "-", "--jpeg-output", "-"),
                          2, "standard output", "only one")
    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: True)
    assert_one_line_error(run(runner, "compress", "photo.png", "-o", "-"), 2,
                          "'--output'", "terminal")
    assert os.listdir(work) == ["photo.png"]


def _special_files(work):
    os.mkfifo(work / "fifo.png")
    os.mkfifo(work / "fifo.jpg")
    specials = {"fifo.png": stat.S_ISFIFO, "fifo.jpg": stat.S_ISFIFO}
    if os.geteuid() == 0:           # a device node of our own, never the real /dev/null
        os.mknod(work / "null.png", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        specials["null.png"] = stat.S_ISCHR
    os.symlink("fifo.png", work / "link-to-fifo.png")
    specials["link-to-fifo.png"] = stat.S_ISFIFO
    return specials


def test_special_files_are_never_replaced(runner, image_file, work):
    specials = _special_files(work)
    for name, is_kind in specials.items():
        option = "--jpeg-output" if name.endswith(".jpg") else "-o"
        result = run(runner, "compress", "photo.png", "-k", 4, *FAST, option, name)
        assert_one_line_error(result, 2, name, "not a regular file")
    for name, is_kind in specials.items():
        assert is_kind(os.stat(work / name).st_mode), name
    assert os.path.islink(work / "link-to-fifo.png")
    assert no_temp_files(work) and not (work / "photo_k4.png").exists()


def test_special_files_refused_by_the_library_too(work):
    specials = _special_files(work)
    for name, is_kind in specials.items():
        with pytest.raises(kio.ImageIOError, match="not a regular file"):
            kio.check_output(work / name)
        with pytest.raises(kio.ImageIOError, match="not a regular file"):
            kio.write_bytes(work / name, b"data")     # checked again when writing
        assert is_kind(os.stat(work / name).st_mode)
    assert no_temp_files(work)


def test_a_symbolic_link_is_written_through(runner, image_file, work):
    (work / "real").mkdir()
    (work / "real" / "target.png").write_bytes(b"old")
    os.symlink("real/target.png", work / "link.png")
    os.symlink("real/new.jpg", work / "dangling.jpg")         # its target does not exist yet
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "-o", "link.png",
                 "--jpeg-output", "dangling.jpg")
    assert result.exit_code == 0, result.output
    assert os.path.islink(work / "link.png") and os.path.islink(work / "dangling.jpg")
    assert (work / "real" / "target.png").read_bytes().startswith(b"\x89PNG")
    assert (work / "real" / "new.jpg").read_bytes().startswith(b"\xff\xd8")
    assert no_temp_files(work) and no_temp_files(work / "real")
    assert sorted(os.listdir(work / "real")) == ["new.jpg", "target.png"]


def test_a_link_to_the_input_is_still_refused(runner, image_file, work):
    os.symlink("photo.png", work / "link.png")
    assert_one_line_error(run(runner, "compress", "photo.png", "-o", "link.png"), 2,
                          "is the input image")


# --------------------------------------------------------------------------
# item 3: both files or neither
# --------------------------------------------------------------------------
def _fail_replacing(monkeypatch, name):
    """os.replace fails, once, when it would put a file at ``name``."""
    real_replace = os.replace
    failed = []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name and not failed:
            failed.append(dst)
            raise PermissionError(1, "Operation not permitted")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return failed


def test_a_late_rename_failure_puts_the_first_file_back(runner, image_file, work, monkeypatch):
    (work / "photo_k4.png").write_bytes(b"old png")
    (work / "jpeg_compressed.jpg").write_bytes(b"old jpg")
    before = sorted(os.listdir(work))
    failed = _fail_replacing(monkeypatch, "jpeg_compressed.jpg")
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST)
    assert failed, "the JPEG was never renamed"
    assert_one_line_error(result, 1, "Operation not permitted", "no file was changed")
    assert sorted(os.listdir(work)) == before                 # no temp file left
    assert (work / "photo_k4.png").read_bytes() == b"old png"  # the PNG put back
    assert (work / "jpeg_compressed.jpg").read_bytes() == b"old jpg"


def test_another_users_file_in_a_sticky_folder_is_refused_before_any_work(
        runner, image_file, work, monkeypatch):
    shared = work / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "jpeg_compressed.jpg").write_bytes(b"theirs")
    if os.geteuid() == 0:
        os.chown(shared / "jpeg_compressed.jpg", 12345, 12345)
    owner = os.stat(shared / "jpeg_compressed.jpg").st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)      # we are someone else
    monkeypatch.setattr(kmeans_fast.api, "quantize",
                        lambda *a, **k: pytest.fail("k-means ran before the check"))
    result = run(runner, "compress", "photo.png", "-o", "shared/out.png",
                 "--jpeg-output", "shared/jpeg_compressed.jpg")
    assert_one_line_error(result, 2, "'--jpeg-output'", "another user", "sticky")
    assert os.listdir(shared) == ["jpeg_compressed.jpg"]
    assert (shared / "jpeg_compressed.jpg").read_bytes() == b"theirs"


# --------------------------------------------------------------------------
# item 6: names
# --------------------------------------------------------------------------
def test_too_long_output_name_is_one_line(runner, image_file, work):
    result = run(runner, "compress", "photo.png", "-k", 4, "-o", "a" * 252 + ".png")
    assert_one_line_error(result, 2, "'--output'", "too long", "256 bytes")
    result = run(runner, "compress", "photo.png", "-k", 4, "-o", "é" * 127 + ".png")
    assert_one_line_error(result, 2, "too long", "258 bytes")
    assert os.listdir(work) == ["photo.png"]


def test_too_long_derived_name_is_one_line(runner, work, rgb):
    name = "a" * 249 + ".png"                               # 253 bytes: fine
    save(work / name, rgb)
    result = run(runner, "compress", name, "-k", 4, *FAST)  # a..._k4.png: 256 bytes
    assert_one_line_error(result, 2, "too long", "-o")
    assert "'--output'" not in result.stderr
    assert os.listdir(work) == [name]


def test_every_name_the_file_system_takes_works(runner, image_file, work):
    name = "b" * 251 + ".PNG"                       # 255 bytes, the most allowed; any case
    jpeg = "c" * 250 + ".JPEG"
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "-o", name,
                 "--jpeg-output", jpeg)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(work)) == sorted(["photo.png", name, jpeg])


def test_trailing_slash_means_a_folder(runner, image_file, work):
    (work / "out").mkdir()
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "-o", "out/",
                 "--jpeg-output", "out/")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(work / "out")) == ["jpeg_compressed.jpg", "photo_k4.png"]
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "-o", "newdir/")
    assert_one_line_error(result, 2, "'newdir'", "does not exist")
    assert sorted(os.listdir(work)) == ["out", "photo.png"]  # no file called newdir


@pytest.mark.parametrize("args, words", [
    (["-o", "out.jpg"], ["'--output'", "out.jpg", ".png", "out.png"]),
    (["-o", "out"], ["'--output'", "out.png"]),
    (["--jpeg-output", "x.png"], ["'--jpeg-output'", ".jpg or .jpeg", "x.jpg"]),
])
def test_wrong_extension_refused(runner, image_file, work, args, words):
    assert_one_line_error(run(runner, "compress", "photo.png", "-k", 4, *args), 2, *words)
    assert os.listdir(work) == ["photo.png"]


# --------------------------------------------------------------------------
# item 7: images too large to decode
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name, data", [
    ("huge.png", png_claiming(30000, 30000)),
    ("huge.jpg", jpeg_claiming(30000, 30000)),
    ("gray.png", png_claiming(32768, 32768, colour_type=0)),
])
def test_huge_header_is_refused_fast(runner, work, name, data):
    (work / name).write_bytes(data)
    started = time.perf_counter()
    result = run(runner, "compress", name)
    assert time.perf_counter() - started < 2
    w, h = (32768, 32768) if name == "gray.png" else (30000, 30000)
    assert_one_line_error(result, 2, "'IMAGE'", f"{w}x{h}", "--max-pixels")
    assert os.listdir(work) == [name]


def test_max_pixels_sets_the_limit(runner, image_file, work):
    assert_one_line_error(run(runner, "compress", "photo.png", "--max-pixels", 3071), 2,
                          "64x48", "3,071 pixels", "--max-pixels")
    assert os.listdir(work) == ["photo.png"]
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "--max-pixels", 3072)
    assert result.exit_code == 0, result.output
    # raised (or 0: none), the 30000x30000 claim reaches the decoder, which finds no pixels
    (work / "huge.png").write_bytes(png_claiming(30000, 30000))
    for limit in (10 ** 9, 0):
        result = run(runner, "compress", "huge.png", "--max-pixels", limit)
        assert_one_line_error(result, 2, "cannot decode")


def test_refused_when_memory_is_short(runner, work, monkeypatch):
    (work / "big.png").write_bytes(png_claiming(2000, 2000))
    monkeypatch.setattr(kmeans_fast.io, "available_memory", lambda: 20 * 10 ** 6)
    result = run(runner, "compress", "big.png")
    assert_one_line_error(result, 2, "2000x2000", "memory", "20 MB", "--max-pixels")
    # an explicit limit is the user's call: the decoder gets it
    result = run(runner, "compress", "big.png", "--max-pixels", 5 * 10 ** 6)
    assert_one_line_error(result, 2, "cannot decode")


# --------------------------------------------------------------------------
# item 8: a report that cannot be written (the real /dev/full: test_cli_process.py)
# --------------------------------------------------------------------------
def test_report_to_a_full_stdout_is_one_line(runner, image_file, work, monkeypatch):
    real_echo = click.echo

    def echo(message=None, file=None, nl=True, err=False, color=None):
        if not err and file is None:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_echo(message, file=file, nl=nl, err=err, color=color)

    monkeypatch.setattr(click, "echo", echo)
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST, "--no-jpeg")
    assert result.exit_code == 1
    assert result.stderr == ("Error: cannot write the report to standard output: "
                             "No space left on device\n")
    assert (work / "photo_k4.png").exists()                  # the files were written


# --------------------------------------------------------------------------
# item 9: progress for long runs, whatever their size
# --------------------------------------------------------------------------
@pytest.fixture
def watched(monkeypatch):
    """stderr is a terminal; nothing is large enough to show progress from the start."""
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli, "_PROGRESS_PIXELS", 10 ** 12)
    monkeypatch.setattr(cli, "_PROGRESS_WORK", 10 ** 15)
    monkeypatch.setattr(cli, "_PROGRESS_AFTER", 600.0)


def test_progress_once_a_small_run_lasts(runner, image_file, watched, monkeypatch):
    monkeypatch.setattr(cli, "_PROGRESS_AFTER", 0.1)
    real_png_bytes = kmeans_fast.io.png_bytes

    def slow_png_bytes(*args, **kwargs):
        time.sleep(0.6)                     # a stage that takes long, between callbacks
        return real_png_bytes(*args, **kwargs)

    monkeypatch.setattr(kmeans_fast.io, "png_bytes", slow_png_bytes)
    result = run(runner, "compress", "photo.png", "-k", 4, *FAST)
    assert result.exit_code == 0
    assert "kmeans-fast: encoding the PNG..." in result.stderr    # drawn by the timer
    assert "measuring" in result.stderr                           # and every stage after it
    assert result.stderr.endswith("\r")


def test_progress_for_many_colours_on_a_small_image(runner, image_file, watched, monkeypatch):
    monkeypatch.setattr(cli, "_PROGRESS_WORK", 300 * 64 * 48)    # k x pixels of -k 300
    result = run(runner, "compress", "photo.png", "-k", 300, "--steps", 1, "--init", "random",
                 "--no-jpeg")
    assert "k-means, 300 colours, step 1/1..." in result.stderr


# --------------------------------------------------------------------------
# item 10: prompts only without IMAGE
# --------------------------------------------------------------------------
def test_no_prompts_when_image_is_given(runner, image_file, interactive):
    result = run(runner, "compress", "photo.png", "--json", input="")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["kmeans"]["path"] == f"photo_k{cli.DEFAULT_COLORS}.png"
    assert report["kmeans"]["steps"] == cli.DEFAULT_STEPS


def test_no_prompts_with_sample(runner, work, interactive, monkeypatch):
    from kmeans_fast.sample import sample_image
    monkeypatch.setattr(kmeans_fast.sample, "sample_image", lambda: sample_image(32, 48))
    result = run(runner, "compress", "--sample", "-q", input="")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and (work / f"sample_k{cli.DEFAULT_COLORS}.png").exists()


@pytest.mark.parametrize("answer", ["'~/my photo.png'", '"~/my photo.png"',
                                    "~/my\\ photo.png", "  ~/my photo.png  ", "~/my photo.png"])
def test_image_answer_undoes_what_terminals_add(work, rgb, monkeypatch, answer):
    save(work / "my photo.png", rgb)
    monkeypatch.setenv("HOME", str(work))
    assert cli._image_answer(answer) == work / "my photo.png"


def test_image_prompt_takes_a_dragged_in_path(runner, work, rgb, interactive, monkeypatch):
    save(work / "my photo.png", rgb)
    monkeypatch.setenv("HOME", str(work))
    result = run(runner, "compress", "--json", "--no-jpeg",
                 input="'~/my photo.png'\n4\n2\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input"]["path"] == str(work / "my photo.png")
    assert (work / "my photo_k4.png").exists()


# --------------------------------------------------------------------------
# item 11: wording and small surprises
# --------------------------------------------------------------------------
def test_steps_0_says_what_happened(runner, image_file):
    result = run(runner, "compress", "photo.png", "-k", 4, "--steps", 0, "--no-jpeg")
    assert result.exit_code == 0
    assert "0 of 0" not in result.stdout and "raise --steps" not in result.stdout
    assert "no k-means step run (--steps 0)" in result.stdout


def test_one_colour_is_singular(runner, image_file):
    result = run(runner, "compress", "photo.png", "-k", 1, *FAST, "--no-jpeg")
    assert result.exit_code == 0
    assert "k-means: 1 colour, 1-bit indexed PNG" in result.stdout
    assert "1 colours" not in result.stdout


def test_fewer_colours_than_k_is_said(runner, work):
    three = np.zeros((20, 30, 3), np.uint8)
    three[:, 10:20] = (200, 40, 10)
    three[:, 20:] = (10, 40, 200)
    save(work / "three.png", three)
    result = run(runner, "compress", "three.png", "-k", 4, "--no-jpeg")
    assert result.exit_code == 0
    assert "k-means: 3 colours, 2-bit indexed PNG; the image has only 3 colours" \
        in result.stdout
    assert (work / "three_k4.png").exists()


def test_output_clash_message_does_not_mention_the_input(runner, image_file, work):
    os.symlink("same.png", work / "same.jpg")
    result = run(runner, "compress", "photo.png", "-o", "same.png", "--jpeg-output", "same.jpg")
    assert_one_line_error(result, 2, "'--jpeg-output'", "is the PNG output")
    assert "input" not in result.stderr


def test_opaque_rgba_gets_no_trns_chunk(runner, work, rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    save(work / "opaque.png", rgba)
    result = run(runner, "compress", "opaque.png", "-k", 5, *FAST, "--no-jpeg")
    assert result.exit_code == 0
    data = (work / "opaque_k5.png").read_bytes()
    assert "tRNS" not in chunks(data)
    q = quantize(rgba, 5, steps=3, seed=0, **CLI_LOOK)
    assert np.array_equal(kio.read_image(work / "opaque_k5.png"), q.image()[:, :, :3])


def test_first_frame_is_said(runner, work):
    frames = [Image.fromarray(np.full((12, 16, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(work / "anim.gif", "GIF", save_all=True, append_images=frames[1:])
    result = run(runner, "compress", "anim.gif", "-k", 2, "--no-jpeg")
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: 'anim.gif' has 3 frames: only the first is used\n"


# --------------------------------------------------------------------------
# item 12: the READMEs
# --------------------------------------------------------------------------
def _readmes():
    return {name: (REPO / name).read_text() for name in ("README.md", "benchmarks/README.md")}


def test_readme_commands_exist():
    commands = set(cli.main.commands)
    for name, text in _readmes().items():
        for line in re.findall(r"(?:^|`|\$ )kmeans-fast ([^`\n]*)", text, re.MULTILINE):
            word = line.split()[0]
            assert word in commands or word.startswith("-"), f"{name}: kmeans-fast {line}"


def test_readme_documents_every_option_and_quantize_argument():
    readme = _readmes()["README.md"]
    for param in cli.main.commands["compress"].params:
        for opt in param.opts if param.param_type_name == "option" else ():
            if opt.startswith("--"):
                assert opt in readme, opt
    assert "-o -" in readme
    for name in inspect.signature(kmeans_fast.api.quantize).parameters:
        if name not in ("image", "n_colors"):
            assert f"{name}=" in readme, name


def test_png_level_cost_is_not_understated():
    for text in _readmes().values():
        assert "several times slower" not in " ".join(text.split())


# --------------------------------------------------------------------------
# item 13: only the library's own errors become one line
# --------------------------------------------------------------------------
@pytest.mark.parametrize("module, name, error", [
    (kmeans_fast.api, "quantize", ValueError("planted bug")),
    (kmeans_fast.io, "encode_jpeg", TypeError("another planted bug")),
])
def test_a_bug_keeps_its_traceback(runner, image_file, monkeypatch, module, name, error):
    def planted(*args, **kwargs):
        raise error

    monkeypatch.setattr(module, name, planted)
    with pytest.raises(type(error), match="planted bug"):
        run(runner, "compress", "photo.png", "-k", 4, *FAST)


# --------------------------------------------------------------------------
# item 2, in process: Ctrl-C while working, and the handlers put back
# --------------------------------------------------------------------------
def test_ctrl_c_while_reading_is_one_line_and_exit_130(runner, image_file, work, monkeypatch,
                                                       ctrl_c_works):
    def interrupt(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        pytest.fail("SIGINT did not interrupt")

    monkeypatch.setattr(kmeans_fast.io, "read_image", interrupt)
    before = signal.getsignal(signal.SIGINT)
    result = runner.invoke(cli.main, ["compress", "photo.png", "-k", "4"])
    assert result.exit_code == 130
    assert result.stderr == "kmeans-fast: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is before            # put back
    assert os.listdir(work) == ["photo.png"]


def test_ctrl_c_while_writing_leaves_no_file(runner, image_file, work, monkeypatch,
                                             ctrl_c_works):
    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd):
        real_fsync(fd)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(os, "fsync", fsync_then_ctrl_c)
    result = runner.invoke(cli.main, ["compress", "photo.png", "-k", "4", *FAST])
    assert result.exit_code == 130
    assert result.stderr == "kmeans-fast: interrupted\n"
    assert os.listdir(work) == ["photo.png"]


class _CtrlCAtTheKeyboard(pyio.BytesIO):
    """Standard input on which the user presses Ctrl-C instead of answering."""

    def read1(self, size=-1):
        if size:
            signal.raise_signal(signal.SIGINT)
        return b""

    read = read1


def test_ctrl_c_at_a_prompt(runner, work, interactive, ctrl_c_works):
    result = runner.invoke(cli.main, ["compress"], input=_CtrlCAtTheKeyboard())
    assert result.exit_code == 130, result.output
    assert result.stderr.endswith("kmeans-fast: interrupted\n")
    assert "Aborted" not in result.stderr


# --------------------------------------------------------------------------
# start-up stays light (what lets Ctrl-C at start-up be caught)
# --------------------------------------------------------------------------
def test_cli_constants_match_the_library():
    assert cli.DEFAULT_STEPS == kmeans_fast.api.DEFAULT_STEPS
    assert cli.MAX_COLORS == kmeans_fast.api.MAX_COLORS
    assert cli.INITS == kmeans_fast.api.INITS
    assert cli.JPEG_QUALITY == kio.JPEG_QUALITY
    assert cli.PNG_LEVEL == kio.PNG_LEVEL == png.DEFAULT_LEVEL
    assert cli.PALETTE_MAX == kio.PALETTE_MAX
