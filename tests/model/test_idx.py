"""model.idx: the streamed reader gives what the whole-file reader gives, and refuses the same
corrupt files with the same messages."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from model.errors import DataError
from model.idx import IdxReader, read_idx
from tests.training.test_datasets import DIGITS, IDX_CORRUPTIONS, TRAIN_LABELS, idx_bytes


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("rows", [1, 7, 10000, 50000])
def test_chunks_concatenate_to_the_whole_file(tmp_path, compressed, rows):
    images = read_idx(DIGITS / "train-images-idx3-ubyte.gz")[:1234]
    data = idx_bytes(images)
    path = tmp_path / "images.idx"
    path.write_bytes(gzip.compress(data, compresslevel=1) if compressed else data)
    with IdxReader(path) as idx:
        assert idx.records == 1234 and idx.record_shape == (28, 28)
        assert idx.compressed == compressed
        chunks = list(idx.chunks(rows))
    assert all(len(c) <= rows for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), images)


def test_multibyte_types_come_out_in_native_order(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(4, 3) * 1000
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(values, 0x0C))
    with IdxReader(path) as idx:
        out = np.concatenate(list(idx.chunks(3)))
    assert out.dtype == np.dtype("=i4")
    np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("corrupt, fragments", [c[1:] for c in IDX_CORRUPTIONS],
                         ids=[c[0] for c in IDX_CORRUPTIONS])
def test_streaming_refuses_what_read_idx_refuses(tmp_path, corrupt, fragments, compressed):
    raw = gzip.decompress((DIGITS / f"{TRAIN_LABELS}.gz").read_bytes())
    data = corrupt(raw)
    if compressed and not data.startswith(b"\x1f\x8b") and data:
        data = gzip.compress(data)
    path = tmp_path / TRAIN_LABELS
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        with IdxReader(path) as idx:
            for _ in idx.chunks(999):
                pass
    for fragment in fragments:
        assert fragment in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        IdxReader(tmp_path / "absent.idx")
