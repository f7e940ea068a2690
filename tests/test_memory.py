"""Peak memory: freed image-sized blocks go back to the OS in the command and
its batch workers (io.return_freed_memory), so one stage's garbage never sits
under the next stage's arrays."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from kmeans_fast import batch, cli
from kmeans_fast import io as kio

from conftest import save

GLIBC = hasattr(os, "confstr") and "CS_GNU_LIBC_VERSION" in os.confstr_names

# Allocate and free a 20 MB block three times, each with a small block after
# it that stays (as the next stage's arrays do: the freed block is not the
# heap's top, which glibc would trim anyway), then print how much resident
# memory that left behind (MB).  glibc's dynamic threshold serves the 2nd and
# 3rd blocks from its heap and keeps them: ~20 MB stays without the call, and
# with a threshold above 20 MB.
RETAINED = """
import sys
import numpy as np
from kmeans_fast import io
set_ = io.return_freed_memory() if sys.argv[1] == "1" else None
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
base = rss()
pins = []
for _ in range(3):
    block = np.ones(20 << 20, np.uint8)
    pins.append(bytearray(200_000))
    del block
print(set_, (rss() - base) / 1e6)
"""


def retained(call):
    # glibc's own defaults in the child: no MALLOC_* settings handed down (Dask's
    # distributed puts MALLOC_TRIM_THRESHOLD_ into this process's environment
    # when a test starts a cluster, and that trims the block the test looks for)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", RETAINED, "1" if call else "0"], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not GLIBC or not os.path.exists("/proc/self/statm"),
                    reason="glibc's allocator on Linux only")
def test_freed_blocks_go_back_to_the_os():
    # the test can tell only where glibc, left alone, keeps a freed 20 MB block
    without = retained(call=False)[1]
    if without < 15:
        pytest.skip(f"glibc kept {without:.1f} MB without the call here: nothing to tell")
    was_set, kept = retained(call=True)
    assert was_set == "True"
    assert kept < 4, f"{kept:.1f} MB of freed blocks still resident"


def test_command_sets_it_before_reading(runner, work, monkeypatch):
    order = []
    monkeypatch.setattr(kio, "return_freed_memory", lambda: order.append("set") or True)
    read = kio.read_image
    monkeypatch.setattr(kio, "read_image",
                        lambda *a, **kw: order.append("read") or read(*a, **kw))
    image = save(work / "in.png", np.arange(48 * 40 * 3, dtype=np.uint8).reshape(48, 40, 3))
    result = runner.invoke(cli.main, ["compress", str(image), "-k", "4", "--steps", "2",
                                      "-q", "--no-jpeg"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert order[:2] == ["set", "read"]


def test_batch_workers_set_it(monkeypatch):
    calls = []
    monkeypatch.setattr(kio, "return_freed_memory", lambda: calls.append(1) or True)
    saved = signal.getsignal(signal.SIGINT)
    try:
        batch._init_worker(1)
    finally:
        signal.signal(signal.SIGINT, saved)
    assert calls == [1]
