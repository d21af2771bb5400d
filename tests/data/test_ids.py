"""Token-id files: the compact dtype, chunked writing, mapped reading."""

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.data.ids import id_dtype, read_ids, write_ids


@pytest.mark.parametrize(
    ("vocab_size", "dtype"),
    [
        (1, np.uint8),
        (255, np.uint8),
        (256, np.uint8),  # ids 0..255
        (257, np.uint16),
        (65535, np.uint16),
        (65536, np.uint16),  # ids 0..65535
        (65537, np.uint32),
        (2**32, np.uint32),
    ],
)
def test_ids_take_the_smallest_unsigned_dtype_that_holds_the_vocabulary(vocab_size, dtype):
    assert id_dtype(vocab_size) == np.dtype(dtype)


def test_a_vocabulary_too_large_or_empty_is_refused():
    with pytest.raises(DataError, match="too large for 32-bit ids"):
        id_dtype(2**32 + 1)
    with pytest.raises(DataError, match="holds no ids"):
        id_dtype(0)


@pytest.mark.parametrize("vocab_size", [256, 65536, 65537])
def test_ids_written_in_chunks_read_back_mapped_and_equal(tmp_path, vocab_size):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab_size, size=1000)
    ids[:2] = (0, vocab_size - 1)  # both ends of the range survive the narrow dtype
    path = tmp_path / "train.npy"
    write_ids(
        path, (ids[i : i + 77] for i in range(0, ids.size, 77)), ids.size, id_dtype(vocab_size)
    )
    back = read_ids(path)
    assert isinstance(back, np.memmap) and back.dtype == id_dtype(vocab_size)
    assert np.array_equal(back, ids) and not back.flags.writeable
    assert np.array_equal(np.load(path), ids)  # a plain .npy too


def test_a_chunked_write_with_the_wrong_count_leaves_nothing(tmp_path):
    path = tmp_path / "train.npy"
    with pytest.raises(DataError, match="3 ids written, 5 announced"):
        write_ids(path, [np.arange(3)], 5, np.dtype(np.uint8))
    with pytest.raises(DataError, match="more than the 2 ids announced"):
        write_ids(path, [np.arange(3)], 2, np.dtype(np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="run the corpus stage"):
        read_ids(path)
