"""Installing kmeans_fast: where Numba caches its kernels, and the first-run note.

The last test installs the project into a temporary virtual environment, offline:
``pip install --no-deps --no-build-isolation`` of a copy of the project, the
dependencies (and the build backend) taken from this environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

import numba
import pytest
from numba.core import event
from numba.core.dispatcher import Dispatcher

import kmeans_fast
from kmeans_fast import _jit
from kmeans_fast import _metric_kernels as K

PACKAGE = Path(kmeans_fast.__file__).resolve().parent
REPO = PACKAGE.parent


def _modules():
    """Every module of the package but __main__ (importing it would run the command)."""
    names = [m.name for m in pkgutil.iter_modules(kmeans_fast.__path__) if m.name != "__main__"]
    return [importlib.import_module(f"kmeans_fast.{name}") for name in names]


def _dispatchers():
    return [(f"{mod.__name__}.{name}", obj) for mod in _modules() for name, obj in vars(mod).items()
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__]


def _inside(path, folder):
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


# --------------------------------------------------------------------------
# Where the cache goes
# --------------------------------------------------------------------------
def test_every_kernel_caches_in_the_user_folder():
    kernels = _dispatchers()
    assert len(kernels) >= 20 and any(name.startswith("kmeans_fast._kernels.") for name, _ in kernels)
    uncached = [name for name, d in kernels if d._cache.__class__.__name__ == "NullCache"]
    assert not uncached, f"kernels without cache=True: {uncached}"
    misplaced = {name: d.stats.cache_path for name, d in kernels
                 if d.stats.cache_path != _jit.cache_dir()}
    assert not misplaced
    assert not _inside(_jit.cache_dir(), PACKAGE)


def test_other_packages_cache_as_before(tmp_path):
    """A module outside the package keeps Numba's own locators: its __pycache__."""
    source = tmp_path / "elsewhere.py"
    source.write_text("from numba import njit\n\n\n@njit(cache=True)\ndef add_one(x):\n"
                      "    return x + 1\n")
    spec = importlib.util.spec_from_file_location("elsewhere", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.add_one.stats.cache_path
    if numba.config.CACHE_DIR:
        assert _inside(path, numba.config.CACHE_DIR)
    else:
        assert Path(path) == tmp_path / "__pycache__"
    assert _jit._Locator.from_function(module.add_one.py_func, str(source)) is None


def _locate(monkeypatch, **env):
    for name in ("KMEANS_FAST_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    locator = _jit._Locator.from_function(K.ssim_rows.py_func, K.__file__)
    return Path(locator.get_cache_path())


def test_cache_folder_choice(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    sub = _jit._subfolder()
    assert _locate(monkeypatch, KMEANS_FAST_CACHE_DIR=tmp_path / "mine") == tmp_path / "mine" / sub
    assert (tmp_path / "mine" / sub).is_dir()
    if sys.platform.startswith("linux"):
        assert (_locate(monkeypatch, XDG_CACHE_HOME=tmp_path / "xdg")
                == tmp_path / "xdg" / "kmeans_fast" / "numba" / sub)
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    assert _locate(monkeypatch) == tmp_path / "numba" / "kmeans_fast" / sub
    assert (_locate(monkeypatch, KMEANS_FAST_CACHE_DIR=tmp_path / "mine")
            == tmp_path / "mine" / sub)                     # ours first


def test_unwritable_cache_folder_falls_back_to_a_private_temporary_one(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = _locate(monkeypatch, KMEANS_FAST_CACHE_DIR=blocker / "cache")
    assert _inside(path, tempfile.gettempdir()) and "kmeans_fast-numba-" in str(path)
    assert not _inside(path, PACKAGE)


def test_copies_and_numba_versions_get_their_own_folders():
    one, other = _jit._subfolder("/a/kmeans_fast"), _jit._subfolder("/b/kmeans_fast")
    assert one != other
    assert one.startswith("kmeans_fast-") and one.endswith(f"-numba{numba.__version__}")


def _cache_folder(root, package, marker=True):
    folder = root / _jit._subfolder(str(package))
    folder.mkdir(parents=True)
    (folder / "kernel.nbi").write_bytes(b"index")
    if marker:
        (folder / "package.txt").write_text(f"{package}\n")
    return folder


def test_caches_of_removed_copies_are_pruned(tmp_path):
    root = tmp_path / "cache"
    live = _cache_folder(root, PACKAGE)
    gone = _cache_folder(root, tmp_path / "removed-venv" / "kmeans_fast")
    older = _cache_folder(root, tmp_path / "older" / "kmeans_fast", marker=False)
    stranger = root / "notes"                   # not a cache sub-folder: never touched
    stranger.mkdir()
    (stranger / "package.txt").write_text(str(tmp_path / "nowhere"))
    assert _jit.prune(root) == [str(gone)]
    assert not gone.exists()
    assert live.is_dir() and older.is_dir() and stranger.is_dir()
    assert _jit.prune(root) == []


def test_prune_keeps_the_caches_of_copies_it_cannot_see(tmp_path, monkeypatch):
    """Only an absolute path reported missing is gone: a copy in another user's
    private home (no permission), a relative or corrupt record, and a link named
    like a sub-folder are kept."""
    root = tmp_path / "cache"
    private = tmp_path / "home-b" / "venv" / "kmeans_fast"
    private.mkdir(parents=True)
    unseen = _cache_folder(root, private)
    stat = os.stat
    def no_permission(path, *args, **kwargs):      # as another user sees a 0700 home
        if str(path).startswith(str(tmp_path / "home-b")):
            raise PermissionError(13, "Permission denied", str(path))
        return stat(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", no_permission)
    relative = _cache_folder(root, "/x/relative/kmeans_fast", marker=False)
    (relative / "package.txt").write_text("relative-venv/kmeans_fast\n")
    long = _cache_folder(root, "/x/long/kmeans_fast", marker=False)
    (long / "package.txt").write_text("/" + "a" * 5000 + "\n")
    nul = _cache_folder(root, "/x/nul/kmeans_fast", marker=False)
    (nul / "package.txt").write_bytes(b"/gone\0/kmeans_fast\n")
    elsewhere = tmp_path / "user-data"              # a link in the root: its target is not ours
    elsewhere.mkdir()
    (elsewhere / "package.txt").write_text(str(tmp_path / "removed" / "kmeans_fast"))
    link = root / _jit._subfolder("/x/link/kmeans_fast")
    link.symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    assert _jit.prune(root) == []
    assert all(p.is_dir() for p in (unseen, relative, long, nul, link, elsewhere))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["package.txt"]


def test_the_record_is_replaced_whole(tmp_path, monkeypatch):
    """A record cut short (a full disk, an older writer) is rewritten, by rename:
    a process pruning meanwhile never reads half a path (a folder that is gone)."""
    monkeypatch.setattr(_jit, "_claimed", [])
    folder = tmp_path / _jit._subfolder()
    folder.mkdir()
    (folder / "package.txt").write_text(str(PACKAGE)[:5])
    replaced = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append(b) or replace(a, b))
    path = _locate(monkeypatch, KMEANS_FAST_CACHE_DIR=tmp_path)
    assert path == folder and folder.is_dir()
    assert (path / "package.txt").read_text().strip() == os.path.normcase(str(PACKAGE))
    assert replaced == [str(folder / "package.txt")]
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == []


def test_a_path_not_in_utf8_gets_a_folder():
    name = _jit._subfolder("/tmp/caf\udce9/kmeans_fast")     # b"caf\xe9": a Latin-1 file name
    assert _jit._SUBFOLDER.fullmatch(name) and name != _jit._subfolder("/tmp/cafe/kmeans_fast")


def test_first_cache_of_a_process_records_its_copy_and_prunes(tmp_path, monkeypatch):
    monkeypatch.setattr(_jit, "_claimed", [])
    gone = _cache_folder(tmp_path, tmp_path / "removed-venv" / "kmeans_fast")
    path = _locate(monkeypatch, KMEANS_FAST_CACHE_DIR=tmp_path)
    assert (path / "package.txt").read_text().strip() == os.path.normcase(str(PACKAGE))
    assert not gone.exists()


# --------------------------------------------------------------------------
# First-run note
# --------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _compile_event(dispatcher):
    return event.Event("numba:compile", event.EventStatus.START,
                       data={"dispatcher": dispatcher, "args": (), "return_type": None})


def test_note_once_and_only_for_our_kernels(tmp_path):
    source = tmp_path / "foreign.py"
    source.write_text("from numba import njit\n\n\n@njit\ndef f(x):\n    return x\n")
    spec = importlib.util.spec_from_file_location("foreign", source)
    foreign = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(foreign)
    said = []
    listener = _jit._FirstCompile(said.append)
    listener.on_start(_compile_event(foreign.f))
    assert said == []
    listener.on_start(_compile_event(K.ssim_rows))
    listener.on_start(_compile_event(K.pair_sse))
    assert said == [_jit.NOTE.format(seconds=_jit._COLD_SECONDS)]
    assert said[0].startswith("kmeans-fast: compiling kernels (first run only, ~")


def test_note_needs_a_terminal():
    """Not a terminal: no listener at all, so nothing can be written."""
    pipe = io.StringIO()
    with _jit.first_run_note(pipe):
        event.broadcast(_compile_event(K.ssim_rows))
    assert pipe.getvalue() == ""
    terminal = _Terminal()
    with _jit.first_run_note(terminal):
        event.broadcast(_compile_event(K.ssim_rows))
    assert terminal.getvalue() == "\r" + _jit.NOTE.format(seconds=_jit._COLD_SECONDS) + "\n"


_NOTE_SCRIPT = textwrap.dedent("""
    import io
    import numpy as np
    from kmeans_fast import _jit, _metric_kernels as K

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    with _jit.first_run_note(pipe), _jit.first_run_note(terminal):
        z = np.zeros((12, 12), np.float32)
        K.ssim_rows(z, z, z, z, 0, 2, 0, 12, 1.0, 1.0, np.zeros(2))
    print(repr(terminal.getvalue()))
    print(repr(pipe.getvalue()))
""")


def test_note_when_cold_silence_when_warm(tmp_path):
    """Two processes on an empty cache folder: the first compiles and says so."""
    env = dict(os.environ, KMEANS_FAST_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    note = repr("\r" + _jit.NOTE.format(seconds=_jit._COLD_SECONDS) + "\n")
    runs = [subprocess.run([sys.executable, "-c", _NOTE_SCRIPT], env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.splitlines() == [note, "''"]
    assert runs[1].stdout.splitlines() == ["''", "''"]
    assert list((tmp_path / "cache").rglob("_metric_kernels.ssim_rows-*.nbi"))


# --------------------------------------------------------------------------
# pip install ., uninstall, then an editable install
# --------------------------------------------------------------------------
def _can_build_offline():
    """This environment's setuptools can build a wheel without downloading anything."""
    try:
        import setuptools
    except ImportError:
        return False
    major_minor = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
    return major_minor >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _run(args, env, cwd):
    done = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout and symlinks")
@pytest.mark.skipif(not _can_build_offline(),
                    reason="needs setuptools >= 70.1, or setuptools and wheel, to build offline")
def test_pip_install_uninstall_then_editable(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".pytest_cache",
        "tests", "benchmarks"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], os.environ, tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     os.environ, tmp_path).strip())
    # This environment's packages (pip, setuptools, numpy, numba...), not its kmeans_fast
    deps = tmp_path / "deps"
    deps.mkdir()
    for outer in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(outer).iterdir():
            if not (entry.name.startswith(("kmeans_fast", "__editable__", "__pycache__"))
                    or entry.name.endswith(".pth") or (deps / entry.name).exists()):
                (deps / entry.name).symlink_to(entry)
    (site / "_outer_packages.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1", KMEANS_FAST_CACHE_DIR=str(tmp_path / "cache"))
    pip = [python, "-m", "pip"]
    offline = ["install", "--no-deps", "--no-build-isolation", "--quiet"]

    _run([*pip, *offline, src], env, tmp_path)
    installed = site / "kmeans_fast"
    assert (installed / "__init__.py").is_file()
    # Run the installed package once: a kernel compiles and is cached (a serial one:
    # 0.5 s to compile, where metrics.psnr's parallel kernel takes 2 s)
    _run([python, "-c", "import numpy as np; from kmeans_fast import _metric_kernels as K; "
          "z = np.zeros((12, 12), np.float32); "
          "K.ssim_rows(z, z, z, z, 0, 2, 0, 12, 1.0, 1.0, np.zeros(2))"], env, tmp_path)
    assert list((tmp_path / "cache").rglob("*.nbi")), "nothing was cached"
    assert not [p for p in installed.rglob("*") if p.suffix in (".nbi", ".nbc")]

    _run([*pip, "uninstall", "--yes", "--quiet", "kmeans_fast"], env, tmp_path)
    assert not installed.exists(), sorted(str(p) for p in installed.rglob("*"))

    _run([*pip, *offline, "--editable", src], env, tmp_path)
    assert f"version {kmeans_fast.__version__}" in _run([venv / "bin" / "kmeans-fast", "--version"], env, tmp_path)
    where = _run([python, "-c", "import kmeans_fast; print(kmeans_fast.__file__)"], env, tmp_path)
    assert Path(where.strip()) == src / "kmeans_fast" / "__init__.py"
