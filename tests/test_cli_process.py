"""The kmeans-fast command in real processes: signals, closed descriptors, full disks.

Issue 11, items 2, 4, 5 and 8: what CliRunner cannot show, since it runs in
this process with its own streams.  Every child runs this worktree's package
(PYTHONPATH) and stays short: a tiny image, few steps.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import encode, foreground_signals, save

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
COMMAND = [sys.executable, "-m", "kmeans_fast", "compress"]
SMALL = ["-k", "4", "--steps", "2"]


def run(args, cwd, **kwargs):
    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(args, cwd=cwd, env=ENV, timeout=120, **kwargs)


def one_line(stderr):
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text, text
    assert text.count("\n") == 1 and text.endswith("\n"), text
    return text


# --------------------------------------------------------------------------
# item 2: signals
# --------------------------------------------------------------------------
# The command, with the write slowed down: after writing (and syncing) a
# temporary file, it says so in a marker file and sleeps, so that a signal
# arrives while the temporary files exist.
SLOW_WRITE = textwrap.dedent("""
    import os, sys, time
    marker = sys.argv[1]
    real_fsync = os.fsync
    def slow_fsync(fd):
        real_fsync(fd)
        if not os.path.exists(marker):
            open(marker, "w").close()
        time.sleep(60)
    os.fsync = slow_fsync
    from kmeans_fast.cli import main
    main(sys.argv[2:], prog_name="kmeans-fast")
""")


def _wait_for(path, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the write never started"
        time.sleep(0.02)


def test_sigterm_while_writing_leaves_no_file(work, rgb, tmp_path_factory):
    """The issue's case: ``kill`` while the temporary files exist.  (SIGHUP, SIGQUIT
    and SIGINT in the library: test_io_hardening.py; Ctrl-C in the command:
    test_cli_hardening.py.)"""
    save(work / "photo.png", rgb)
    (work / "photo_k4.png").write_bytes(b"old png")         # replaced by neither
    marker = tmp_path_factory.mktemp("marker") / "writing"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, str(marker), "compress",
                             "photo.png", *SMALL, "-q"], cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(marker, proc)
        assert [n for n in os.listdir(work) if n.endswith(".tmp")]   # a temp file exists
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert one_line(err) == "kmeans-fast: stopped by SIGTERM while writing: no file was changed\n"
    assert sorted(os.listdir(work)) == ["photo.png", "photo_k4.png"]
    assert (work / "photo_k4.png").read_bytes() == b"old png"


@pytest.mark.parametrize("delay", [0.4, 0.9, 1.5])
def test_ctrl_c_during_start_up(work, rgb, delay):
    """SIGINT while Python imports NumPy, OpenCV and Numba, or Numba loads its
    cached kernels (where an exception raised by the handler would be lost in
    a callback from C): one line, exit 130."""
    save(work / "photo.png", rgb)
    proc = subprocess.Popen([*COMMAND, "photo.png", *SMALL, "-q"], cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=foreground_signals)
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    if proc.returncode in (0, -signal.SIGINT) and not err:
        pytest.skip(f"the run was over at {delay} s")        # a fast machine
    assert proc.returncode == 130, err
    assert one_line(err) == "kmeans-fast: interrupted\n"
    assert not [n for n in os.listdir(work) if n.endswith(".tmp")]


def test_start_up_imports_no_heavy_module():
    code = ("import sys, kmeans_fast.cli; "
            "print(sorted(m for m in ('numpy', 'cv2', 'numba', 'PIL') if m in sys.modules))")
    done = run([sys.executable, "-c", code], REPO, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# item 4: a damaged EXIF block does not reject intact pixels
# --------------------------------------------------------------------------
def jpeg_with_damaged_exif(rgb):
    """A good JPEG with an APP1 Exif block whose first IFD claims 5 entries and holds none."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 5) + b"\x12\x01\x03\x00"
    app1 = b"Exif\x00\x00" + tiff
    data = encode(rgb, ".jpg")
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def test_damaged_exif_is_not_damaged_pixels(work, rgb):
    """In a process of its own: pytest would catch Pillow's warnings before stderr."""
    (work / "exif.jpg").write_bytes(jpeg_with_damaged_exif(rgb))
    # the first read as good as the second, and as the file without the EXIF block
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from kmeans_fast import io
        data = open("exif.jpg", "rb").read()
        first = io.decode_image(data)
        second = io.decode_image(data)
        clean = io.decode_image(data[:2] + data[2 + 2 + int.from_bytes(data[4:6], "big"):])
        print(np.array_equal(first, second), np.array_equal(first, clean))
    """)
    done = run([sys.executable, "-c", code], work, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


# --------------------------------------------------------------------------
# item 5: stderr closed
# --------------------------------------------------------------------------
def _closed_stderr():
    os.close(2)


def test_works_with_stderr_closed(work, rgb):
    save(work / "photo.png", rgb)
    done = run([*COMMAND, "photo.png", *SMALL, "--json"], work, text=True,
               stderr=None, stdout=subprocess.PIPE, preexec_fn=_closed_stderr)
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert (work / "photo_k4.png").stat().st_size == report["kmeans"]["bytes"]
    assert (work / "jpeg_compressed.jpg").exists()
    # and its errors still exit 2, silently
    done = run([*COMMAND, "missing.png"], work, stderr=None, stdout=subprocess.PIPE,
               preexec_fn=_closed_stderr)
    assert done.returncode == 2 and done.stdout == b""


def test_the_library_reads_with_stderr_closed(work, rgb):
    save(work / "good.png", rgb)
    data = encode(rgb, ".jpg")
    (work / "bad.jpg").write_bytes(data[:300] + bytes(200) + data[500:])
    code = textwrap.dedent("""
        from kmeans_fast import io
        print(io.read_image("good.png").shape)
        try:
            io.read_image("bad.jpg")
        except io.ImageIOError as e:
            print("refused:", e)
        import os
        try:
            os.fstat(2)
            print("fd 2 open")
        except OSError:
            print("fd 2 closed")                  # as it was: left closed
    """)
    done = run([sys.executable, "-c", code], work, text=True, stderr=None,
               stdout=subprocess.PIPE, preexec_fn=_closed_stderr)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "(48, 64, 3)"
    assert lines[1].startswith("refused: cannot decode 'bad.jpg'") and "Corrupt" in lines[1]
    assert lines[2] == "fd 2 closed"


# --------------------------------------------------------------------------
# item 8: standard output that cannot be written
# --------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_full_stdout_is_one_line_and_exit_1(work, rgb):
    """``-o - > /dev/full``; nor may the exit's flush of stdout fail again."""
    save(work / "photo.png", rgb)
    with open("/dev/full", "wb") as full:
        done = run([*COMMAND, "photo.png", *SMALL, "-o", "-"], work, stdout=full, text=True,
                   stderr=subprocess.PIPE)
    assert done.returncode == 1
    assert one_line(done.stderr) == ("Error: cannot write the PNG to standard output: "
                                     "No space left on device\n")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args, what", [(["--help"], "the help"),
                                        (["compress", "--help"], "the help"),
                                        (["--version"], "the version"),
                                        (["--help", "--version"], "the help"),
                                        (["--version", "-h"], "the version")])
def test_help_and_version_to_a_full_stdout(work, args, what):
    """--help and --version print while click parses: still one line, exit 1."""
    with open("/dev/full", "wb") as full:
        done = run([sys.executable, "-m", "kmeans_fast", *args], work, stdout=full, text=True,
                   stderr=subprocess.PIPE)
    assert done.returncode == 1
    assert one_line(done.stderr) == (f"Error: cannot write {what} to standard output: "
                                     "No space left on device\n")


@pytest.mark.parametrize("args", [["--help"], ["compress", "-h"], ["--version"],
                                  ["compress", "photo.png", *SMALL, "-o", "-"]])
def test_closed_pipe_on_stdout_is_a_quiet_exit_1(work, rgb, args):
    """``kmeans-fast ... | head -c0``: the reader is gone; like click, nothing on stderr, exit 1."""
    save(work / "photo.png", rgb)
    read, write = os.pipe()
    os.close(read)                                  # the reader left before the first byte
    try:
        done = run([sys.executable, "-m", "kmeans_fast", *args], work, stdout=write,
                   stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_a_reader_that_leaves_midway_is_an_exit_1_not_a_success(work):
    """``kmeans-fast ... -o - | head -c 10``: the pipe takes 64 KiB of the PNG,
    then its reader is gone; the command must not report the PNG written."""
    rng = np.random.default_rng(0)
    save(work / "noise.png", rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    command = [*COMMAND, "noise.png", "-k", "64", "--steps", "2", "--no-jpeg", "-o", "-"]
    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read(1000)"],
                              stdin=subprocess.PIPE)
    try:
        done = run(command, work, stdout=reader.stdin, stderr=subprocess.PIPE, text=True)
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert (done.returncode, done.stderr) == (1, "")      # a quiet exit 1, like ``| head``


# --------------------------------------------------------------------------
# start-up: Numba's BLAS probe
# --------------------------------------------------------------------------
BLAS_PROBE = textwrap.dedent("""
    import sys
    mode = sys.argv[1]
    if mode == "worker":                            # a batch worker's start
        from kmeans_fast import batch
        batch._init_worker(1)
    else:           # "kmeans-fast": the command; else a program that runs it in-process
        sys.argv[0] = mode
        from kmeans_fast import cli
        cli.main(["compress", "photo.png", "-k", "4", "--steps", "2"], standalone_mode=False)
        print()                                     # (after the command's report)
    import numba.np.arraymath
    print(int("scipy.linalg" in sys.modules), int(numba.np.arraymath._HAVE_BLAS), end=" ")
    import scipy.linalg.cython_blas                 # SciPy itself still imports afterwards
    print(int("scipy.linalg" in sys.modules))
""")


def test_the_command_skips_numbas_scipy_blas_probe_and_a_program_keeps_it(work, rgb):
    pytest.importorskip("scipy.linalg")
    # the three start-ups side by side (each in its own folder: two write files)
    procs = {}
    for mode in ("kmeans-fast", "worker", "my_program.py"):
        folder = work / mode.replace(".", "_")
        folder.mkdir()
        save(folder / "photo.png", rgb)
        procs[mode] = subprocess.Popen([sys.executable, "-c", BLAS_PROBE, mode], cwd=folder,
                                       env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (mode, err)
        last = out.decode().splitlines()[-1]
        if mode == "my_program.py":
            assert last.split() == ["1", "1", "1"], out     # a program: Numba as usual
        else:
            assert last.split() == ["0", "0", "1"], (mode, out)   # no BLAS; SciPy later
