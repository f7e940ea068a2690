"""The byte-counter histogram at its edges (review break4): the bitmap read off
the counters 8 at a time, and the spill lists of counts that wrap past 255.
Each test names the planted bug it catches."""

import numpy as np
import pytest

from kmeans_fast import _kernels as K
from kmeans_fast import _numba_backend as nb

from engine_cases import WORKERS
from test_engine_kernels import rgb_codes


def expected_bitmap(counts, spilled):
    """Bit k of word k // 64 set where any group counts key k or k wrapped."""
    present = (counts != 0).any(axis=0)
    present[spilled] = True
    return np.packbits(present, bitorder="little").view(np.uint64)


@pytest.mark.parametrize("n_groups", [1, 2, 3])
def test_key_bitmap_sees_every_byte_value_at_every_position(n_groups):
    """Planted bugs: 'a byte >= 128 with its low 7 bits 0 (a count of 128,
    384, ...) reads as absent'; 'the bitmap reads only the last group'."""
    rng = np.random.default_rng(n_groups)
    n_keys = 256 * 256                       # block v of 256 keys: variant v
    value, i = np.divmod(np.arange(n_keys), 256)
    # dense: every key a value, each (key position, value) pair once over the
    # blocks; sparse: a value alone among zeros in every third 8-byte word
    dense = ((i * 37 + value) % 256).astype(np.uint8)
    sparse = np.where((i >> 3) % 3 == value % 3, value, 0).astype(np.uint8)
    for row in (dense, sparse):
        counts = np.zeros((n_groups, n_keys), dtype=np.uint8)
        counts[rng.integers(0, n_groups, n_keys), np.arange(n_keys)] = row   # one group a key
        n_tasks = n_groups + 1
        spill = rng.integers(0, n_keys, (n_tasks, 40))
        n_spill = rng.integers(0, 41, n_tasks)
        spilled = np.concatenate([spill[t, :n_spill[t]] for t in range(n_tasks)])
        bitmap = K.key_bitmap(counts, spill, n_spill)
        assert np.array_equal(bitmap, expected_bitmap(counts, spilled)), row is dense


def test_rgb_codes_are_the_documented_layout():
    """What the kernels rely on: every key its own code; 16 keys differing in
    B's low nibble are 16 consecutive codes from a multiple of 16, in order
    (key_bitmap reads them as one quarter-word); a 16x16x16 block of colours
    is one 4 KiB run of codes (what makes near colours near in memory).
    Planted bugs: 'low nibbles of G and B swapped' (runs broken), 'a high bit
    of two channels at the same position' (not a bijection)."""
    codes = rgb_codes()
    assert codes.min() == 0 and codes.max() == 256 ** 3 - 1
    assert (np.bincount(codes, minlength=256 ** 3) == 1).all()   # each code once
    runs = codes.reshape(-1, 16)
    assert (runs[:, 0] % 16 == 0).all() and (np.diff(runs, axis=1) == 1).all()
    block = codes.reshape(16, 16, 16, 16, 16, 16).transpose(0, 2, 4, 1, 3, 5)
    block = block.reshape(16 ** 3, 16 ** 3)          # rows: the blocks
    assert (block.max(axis=1) - block.min(axis=1) == 4095).all()
    assert np.array_equal(np.sort(block[:, 0] >> 12), np.arange(4096))


@pytest.mark.parametrize("n_groups", [1, 2])
def test_rgb_bitmap_is_in_key_order(n_groups):
    """Counters sit at codes; the bitmap is by key.  Planted bugs: 'a high
    bit of the inverse table off by one channel', 'quarter-words stored at the
    code's position'."""
    rng = np.random.default_rng(5)
    codes = rgb_codes()
    keys = rng.choice(256 ** 3, 300000, replace=False)
    counts = np.zeros((n_groups, 256 ** 3), dtype=np.uint8)
    counts[rng.integers(0, n_groups, keys.size), codes[keys]] = rng.integers(1, 256, keys.size)
    spill = rng.choice(256 ** 3, (2, 50))            # keys that wrapped
    n_spill = np.array([50, 17])
    bitmap = K.key_bitmap(counts, spill, n_spill)
    spilled = np.concatenate([spill[0], spill[1, :17]])
    present = np.zeros(256 ** 3, dtype=bool)
    present[keys] = present[spilled] = True
    assert np.array_equal(bitmap, np.packbits(present, bitorder="little").view(np.uint64))


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("n_ch", [1, 3])
def test_one_colour_fills_its_spill_list_within_capacity(workers, n_ch, monkeypatch):
    """Planted bugs: 'spill capacity ceil(N/G) // 512 + 1' and 'spill rows for
    the groups only, not every task': writes past the lists' ends (Numba has no
    bounds checks), so the kernel runs here on room to spare and the test checks
    what it used against what Lookup allocated."""
    used = []
    real = K.count_keys

    def roomy_count_keys(pixels, counts, spill, n_spill, n_workers):
        n_groups = counts.shape[0]
        n_tasks = n_groups * max(1, n_workers // n_groups)       # count_keys' tasks
        room = np.empty((n_tasks, pixels.shape[0] // 256 + 1), dtype=np.int64)
        room_n = np.empty(n_tasks, dtype=np.int64)
        real(pixels, counts, room, room_n, n_workers)
        used.append((room_n.copy(), spill.shape, n_spill.shape))
        assert spill.shape[0] >= n_tasks and n_spill.shape[0] >= n_tasks
        assert room_n.max() <= spill.shape[1]
        spill[:n_tasks] = room[:, :spill.shape[1]]
        n_spill[:n_tasks] = room_n

    monkeypatch.setattr(K, "count_keys", roomy_count_keys)
    monkeypatch.setattr(nb, "SORTED_BELOW", 0)                   # the byte counters, small
    n_pixels = 256 * 40 + 255
    colour = np.array([200, 7, 129][:n_ch], dtype=np.uint8)
    pixels = np.ascontiguousarray(np.broadcast_to(colour, (n_pixels, n_ch)))
    with nb.forced_workers(workers):
        colours, counts, lookup = nb.histogram(pixels)
        labels = np.zeros(n_pixels, dtype=np.uint8)
        lookup.remap(pixels, np.array([1]), labels)
    assert colours.tolist() == [colour.tolist()] and counts.tolist() == [n_pixels]
    assert (labels == 1).all()
    (room_n, _, _), = used
    assert room_n.sum() >= n_pixels // 256 - workers     # the lists were really used


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 16])
def test_gray_counts_of_128_and_multiples_of_256_in_every_group(workers, monkeypatch):
    """Planted bugs: 'byte 128 reads as absent' and 'spills not added', with
    each pixel group (gray: one per worker) holding a count of exactly 256."""
    levels = np.arange(256)
    per_group = np.where(levels % 4 == 0, 256, np.where(levels % 4 == 1, 128, levels % 3))
    pixels = np.concatenate([np.repeat(levels, per_group).astype(np.uint8)] * workers)
    pixels = np.ascontiguousarray(pixels[:, None])
    monkeypatch.setattr(nb, "SORTED_BELOW", 0)                   # the byte counters
    with nb.forced_workers(workers):
        colours, counts, _ = nb.histogram(pixels)
    expected = per_group * workers
    assert np.array_equal(colours[:, 0], levels[expected > 0])
    assert np.array_equal(counts, expected[expected > 0])


@pytest.mark.parametrize("n_groups, workers", [(2, 2), (2, 7), (3, 16)])
def test_rgb_count_keys_in_several_pixel_groups(n_groups, workers):
    """RGB gets several pixel groups only at 22+ MP (Lookup sizes them by the
    image), so no image test has them: the kernel runs here on a small image
    with 2 or 3 groups.  Each group's byte counters must hold exactly its own
    pixels' counts modulo 256, at their codes.  Planted bug: 'the 3-channel
    loop counts every group into group 0's counters' (a race, and counts
    lost or moved: no image test saw it)."""
    rng = np.random.default_rng(n_groups * 10 + workers)
    codes = rgb_codes()
    keys = rng.choice(256 ** 3, 3000, replace=False)          # (counts up to 512: 600 K pixels)
    reps = rng.choice([1, 2, 255, 256, 257, 512], keys.size)
    pixel_keys = rng.permutation(np.repeat(keys, reps))
    pixels = ((pixel_keys[:, None] >> np.array([16, 8, 0])) & 255).astype(np.uint8)
    n = pixels.shape[0]
    n_tasks = n_groups * max(1, workers // n_groups)
    counts = np.zeros((n_groups, 256 ** 3), dtype=np.uint8)
    spill = np.empty((n_tasks, -(-n // n_groups) // 256 + 1), dtype=np.int64)
    n_spill = np.empty(n_tasks, dtype=np.int64)
    K.count_keys(pixels, counts, spill, n_spill, workers)
    for g in range(n_groups):                       # group g: its contiguous share
        mine = pixel_keys[n * g // n_groups:n * (g + 1) // n_groups]
        expected = np.bincount(codes[mine], minlength=256 ** 3).astype(np.uint8)   # mod 256
        assert np.array_equal(counts[g], expected), g
    _, colours, totals = nb.counted_histogram(counts, spill, n_spill, 3)
    order = np.argsort(keys)
    assert np.array_equal(colours, (keys[order, None] >> np.array([16, 8, 0])) & 255)
    assert np.array_equal(totals, reps[order])


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 16])
def test_two_channel_histogram_and_remap(workers, monkeypatch):
    """Two channels (gray + alpha: Lookup takes C <= 3) keep code = key:
    every one of the 65536 colours, some 256 or 512 times.  Planted bug: 'the
    2-channel code table with its bytes reversed' (key_bitmap reads 2-channel
    counters in key order, so colours go missing or change)."""
    rng = np.random.default_rng(workers)
    reps = np.ones(256 ** 2, dtype=np.int64)
    reps[rng.choice(256 ** 2, 60, replace=False)] = rng.choice([256, 512, 255, 257], 60)
    pixel_keys = rng.permutation(np.repeat(np.arange(256 ** 2), reps))
    pixels = ((pixel_keys[:, None] >> np.array([8, 0])) & 255).astype(np.uint8)
    monkeypatch.setattr(nb, "SORTED_BELOW", 0)                   # the byte counters
    with nb.forced_workers(workers):
        colours, counts, lookup = nb.histogram(pixels)
        labels = np.empty(pixels.shape[0], dtype=np.uint16)
        lookup.remap(pixels, np.arange(len(colours)), labels)
    assert len(colours) == 256 ** 2
    keys = (colours[:, 0].astype(np.int64) << 8) | colours[:, 1]
    assert np.array_equal(keys, np.arange(256 ** 2))
    assert np.array_equal(counts, reps)
    assert np.array_equal(labels, pixel_keys)
