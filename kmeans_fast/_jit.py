"""Numba set-up for kmeans_fast: where compiled kernels are cached, and the first-run note.

Kernel modules write ``from ._jit import njit, prange`` instead of importing
them from numba.  :func:`njit` is ``numba.njit`` with ``cache=True`` the
default, so a kernel cannot forget to cache.

Where the cache goes
--------------------
Numba caches a function next to its source, in the package's ``__pycache__``.
For an installed package that is ``site-packages/kmeans_fast/__pycache__``:
``pip uninstall`` leaves it behind (pip removes only the files it installed),
and the leftover folder then makes ``kmeans_fast`` a namespace package that
shadows a later editable install (``ImportError: cannot import name
'__version__'``).

Importing this module puts a cache locator first in Numba's list
(``numba.core.caching.CacheImpl._locator_classes``).  Numba asks it about every
function compiled with ``cache=True``; it answers only for source files inside
this package's folder (any other package caches exactly as before, and
``NUMBA_CACHE_DIR`` need not be set before numba is imported) and sends their
cache to a per-user folder, :func:`cache_dir`::

    $KMEANS_FAST_CACHE_DIR                   if set, else
    $NUMBA_CACHE_DIR/kmeans_fast             if set, else
    the user cache folder + kmeans_fast/numba: $XDG_CACHE_HOME or ~/.cache on
    Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows

with one sub-folder per copy of the package and Numba version
(``kmeans_fast-<hash of the package's path>-numba<version>``), so two installs
or two virtual environments never overwrite each other's entries; within it
Numba keys each entry by the source file's content hash, the Python version and
the CPU.  When that folder cannot be written, kernels cache into a private
temporary folder removed at exit (no persistent caching, never site-packages).

Each sub-folder records the package folder it serves (``package.txt``); when a
copy first caches, the sub-folders of copies whose folder is gone (a removed
virtual environment, an uninstalled package) are deleted (:func:`prune`).

A locator registered this way covers every kernel of the package, converted to
``._jit.njit`` or not: the registration happens when ``kmeans_fast`` is
imported, before any kernel module is.  Set ``NUMBA_CACHE_LOCATOR_CLASSES`` to
choose locators yourself; Numba then ignores this one.

Start-up
--------
:func:`skip_blas_probe` spares the command and its batch workers Numba's import
of ``scipy.linalg`` (0.3 s), which only decides whether compiled
``np.correlate`` may call BLAS.

First run
---------
Compiling every kernel takes several seconds the first time each kind of input
is seen.  :func:`first_run_note` prints one line when that is about to happen.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import inspect
import os
import re
import shutil
import sys
import tempfile
import threading

import numba
from numba import prange
from numba.core import config, event

__all__ = ["njit", "prange", "cache_dir", "prune", "first_run_note", "ENV_VAR"]

ENV_VAR = "KMEANS_FAST_CACHE_DIR"
_PACKAGE_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
_COLD_SECONDS = 55          # seconds a first `kmeans-fast compress` (Oklab, dithered) compiles (measured)


def njit(*args, **options):
    """``numba.njit`` with ``cache=True`` unless told otherwise.

    Use it exactly like ``numba.njit``: ``@njit``, ``@njit(parallel=True)``,
    ``@njit(nogil=True, inline="always")``.
    """
    options.setdefault("cache", True)
    return numba.njit(*args, **options)


def _user_cache_root():
    try:
        from numba.misc.appdirs import AppDirs
        return os.path.join(AppDirs("kmeans_fast", appauthor=False).user_cache_dir, "numba")
    except ImportError:                 # numba no longer ships appdirs: the XDG rule
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "kmeans_fast", "numba")


def cache_root():
    """The folder holding every kmeans_fast cache of this user (see the module notes)."""
    if os.environ.get(ENV_VAR):
        return os.path.abspath(os.environ[ENV_VAR])
    if config.CACHE_DIR:
        return os.path.join(os.path.abspath(config.CACHE_DIR), "kmeans_fast")
    return _user_cache_root()


def _subfolder(package_dir=_PACKAGE_DIR):
    digest = hashlib.sha1(os.fsencode(package_dir)).hexdigest()[:16]    # UTF-8 or not
    return f"{os.path.basename(package_dir)}-{digest}-numba{numba.__version__}"


def cache_dir():
    """The folder where this copy of kmeans_fast caches its compiled kernels.

    Returns
    -------
    str
        ``cache_root()/kmeans_fast-<hash of this package's path>-numba<version>``.
        It may not exist yet, and is not used when it cannot be written.
    """
    return os.path.join(cache_root(), _subfolder())


_MARKER = "package.txt"       # in each sub-folder: the package folder it serves
_SUBFOLDER = re.compile(r"kmeans_fast-[0-9a-f]{16}-numba[0-9A-Za-z.+_-]+")
_claimed = []
_claim_lock = threading.Lock()


def _gone(package):
    """Whether the package folder ``package`` (from a ``package.txt``) surely no longer exists.

    Only an absolute path that the system reports missing is gone: a folder
    that cannot be looked at (another user's private home, a path too long, a
    corrupt record) may exist, and its cache is kept.
    """
    if not package or not os.path.isabs(package):
        return False
    try:
        os.stat(package)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):       # no permission, a failing disk, a NUL byte: unknown
        return False
    return not os.path.isdir(package)


def prune(root=None):
    """Delete the cache sub-folders of kmeans_fast copies that no longer exist.

    A sub-folder (named as :func:`cache_dir` names them) whose ``package.txt``
    names a folder that is gone belongs to a removed copy; sub-folders without
    that file (made by older versions), symbolic links, sub-folders whose copy
    cannot be looked at, and anything else in ``root`` are kept.

    Returns
    -------
    list of str
        The sub-folders deleted.
    """
    root = cache_root() if root is None else root
    gone = []
    try:
        names = os.listdir(root)
    except OSError:
        return gone
    for name in names:
        if not _SUBFOLDER.fullmatch(name):     # only our own sub-folders, whatever else is there
            continue
        folder = os.path.join(root, name)
        if os.path.islink(folder):             # a link: what it points at is not ours to delete
            continue
        try:
            with open(os.path.join(folder, _MARKER), encoding="utf-8",
                      errors="surrogateescape") as f:
                package = f.read().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if _gone(package):
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.lexists(folder):
                gone.append(folder)
    return gone


def _claim(folder):
    """Record which copy ``folder`` serves and, once a process, prune the others'."""
    marker = os.path.join(folder, _MARKER)
    with _claim_lock:
        if _claimed:
            return
        _claimed.append(folder)
    try:
        try:
            with open(marker, encoding="utf-8", errors="surrogateescape") as f:
                recorded = f.read().strip()
        except (OSError, UnicodeDecodeError):
            recorded = None
        if recorded != _PACKAGE_DIR:
            # whole or not at all: another process pruning must never read half a path
            part = f"{marker}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                with open(part, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(_PACKAGE_DIR + "\n")
                os.replace(part, marker)
            finally:
                with contextlib.suppress(OSError):
                    os.remove(part)
        prune(os.path.dirname(folder))
    except OSError:                     # caching still works without the record
        pass


def _is_ours(path):
    return os.path.normcase(os.path.abspath(path)).startswith(_PACKAGE_DIR + os.sep)


_temp = {}
_temp_lock = threading.Lock()


def _temp_root():
    """A private folder for this process, removed at exit: caching that persists nothing."""
    with _temp_lock:
        if "dir" not in _temp:
            _temp["dir"] = tempfile.mkdtemp(prefix="kmeans_fast-numba-")
            atexit.register(shutil.rmtree, _temp["dir"], True)
        return _temp["dir"]


try:
    from numba.core import caching as _caching

    class _Locator(_caching._SourceFileBackedLocatorMixin, _caching._CacheLocator):
        """Numba cache locator for the files of this package (see the module notes)."""

        def __init__(self, py_func, py_file, folder):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = folder

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if not (os.path.exists(py_file) and _is_ours(py_file)):
                return None             # not ours: Numba's own locators decide
            for persistent, folder in ((True, cache_dir),
                                       (False, lambda: os.path.join(_temp_root(), _subfolder()))):
                folder = folder()
                if not os.path.isabs(folder):   # no home folder: "~" stayed as it was
                    continue
                self = cls(py_func, py_file, folder)
                try:
                    self.ensure_cache_path()
                except OSError:         # not writable: try the next folder
                    continue
                if persistent:
                    _claim(folder)
                return self
            return None

    _impl = getattr(_caching, "CacheImpl", None) or getattr(_caching, "_CacheImpl")
    if not any(getattr(c, "__qualname__", "") == "_Locator" and c.__module__ == __name__
               for c in _impl._locator_classes):
        _impl._locator_classes.insert(0, _Locator)
    REGISTERED = True
except AttributeError:                  # Numba's caching internals changed: its defaults apply
    REGISTERED = False


# ---------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------
def skip_blas_probe():
    """Let Numba load its array functions without probing for SciPy's BLAS.

    Where SciPy is installed, Numba's first compile or cache load imports
    ``scipy.linalg`` (0.3 s on the 2-core machine, a quarter of the command's
    start-up) only to decide whether compiled ``np.correlate`` and
    ``np.convolve`` may call BLAS; the kernels here call neither.  With the
    module's name held empty, the probe finds no BLAS at once; the name is
    released afterwards, so SciPy imports as usual later.  For processes that
    only run this package (the command, its batch workers): it changes Numba
    for everything else in the process.  Does nothing once Numba has loaded
    its array functions.
    """
    name = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or name in sys.modules:
        return
    sys.modules[name] = None         # "import scipy.linalg.cython_blas" fails at once
    try:
        import numba.np.arraymath  # noqa: F401  (the probe runs on import)
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


# ---------------------------------------------------------------------------
# First-run note
# ---------------------------------------------------------------------------
NOTE = "kmeans-fast: compiling kernels (first run only, ~{seconds} s)..."


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):    # no isatty, or closed
        return False


class _FirstCompile(event.Listener):
    """Calls say(NOTE) once, when Numba starts compiling a kmeans_fast function."""

    def __init__(self, say):
        self._say = say
        self._lock = threading.Lock()
        self.fired = False

    def on_start(self, ev):
        dispatcher = (ev.data or {}).get("dispatcher")
        try:
            ours = _is_ours(inspect.getfile(dispatcher.py_func))
        except (AttributeError, TypeError):
            return
        with self._lock:
            if not ours or self.fired:
                return
            self.fired = True
        self._say(NOTE.format(seconds=_COLD_SECONDS))

    def on_end(self, ev):
        pass


@contextlib.contextmanager
def first_run_note(stream=None):
    """Within this block, say once that kernels are compiling, when they are.

    Numba compiles a kernel (a few seconds) the first time it sees a kind of
    input it has not cached; it broadcasts a ``"numba:compile"`` event right
    before, after the cache missed.  Inside the block, the first such event for
    a kmeans_fast kernel writes one line, ``NOTE``, on ``stream``; runs served
    from the cache write nothing.  The seconds it announces are what a first
    ``kmeans-fast compress`` compiles (about 18 CPU seconds measured); a new
    kind of input after that (another channel count, more than 256 colours)
    compiles only a few kernels, and is then quicker than announced.

    Parameters
    ----------
    stream : text stream or callable, optional
        Where the note goes, ``sys.stderr`` by default.  A stream gets it only
        when it is a terminal (``stream.isatty()``), as a line of its own
        (``"\\r"`` first, to start over a progress line).  A callable is called
        with the text (no newline) instead and decides itself.

    Examples
    --------
    >>> with first_run_note(sys.stderr):           # doctest: +SKIP
    ...     q = quantize(pixels, 16)
    """
    if stream is None:
        stream = sys.stderr
    if callable(stream):
        say = stream
    elif _isatty(stream):
        def say(text):
            stream.write("\r" + text + "\n")
            stream.flush()
    else:
        yield
        return
    with event.install_listener("numba:compile", _FirstCompile(say)):
        yield
