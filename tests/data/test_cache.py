"""The loaders' on-disk cache: JSON values and memory-mapped arrays, keyed, atomic, tolerant of damage."""
import numpy as np
import pytest

from meddtfm.data.cache import (
    cache_path,
    file_signature,
    load_cached,
    load_cached_arrays,
    save_cached,
    save_cached_arrays,
)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_json_round_trip_and_key_sensitivity():
    assert load_cached("scan", {"a": 1}) is None
    assert save_cached("scan", {"a": 1}, {"flags": [1, 0]})
    assert load_cached("scan", {"a": 1}) == {"flags": [1, 0]} and load_cached("scan", {"a": 2}) is None


def test_arrays_round_trip_as_read_only_maps(cache_dir):
    images, classes = np.random.default_rng(0).random((4, 2, 8, 8)).astype(np.float16), np.arange(4, dtype=np.uint8)
    assert load_cached_arrays("vol", {"k": 1}, ("images", "classes")) is None
    assert save_cached_arrays("vol", {"k": 1}, {"images": images, "classes": classes})
    got = load_cached_arrays("vol", {"k": 1}, ("images", "classes"))
    assert isinstance(got["images"], np.memmap) and not got["images"].flags.writeable
    np.testing.assert_array_equal(got["images"], images)
    np.testing.assert_array_equal(got["classes"], classes)
    assert not list(cache_dir.rglob("*.tmp"))


def test_damaged_entries_read_as_misses(caplog):
    save_cached("scan", {"a": 1}, [1])
    cache_path("scan", {"a": 1}).with_suffix(".json").write_text("{not json")
    save_cached_arrays("vol", {"k": 1}, {"images": np.zeros(3)})
    (cache_path("vol", {"k": 1}) / "images.npy").write_bytes(b"\x93NUMPY garbage")
    assert load_cached("scan", {"a": 1}) is None and load_cached_arrays("vol", {"k": 1}, ("images",)) is None
    assert "unreadable" in caplog.text


def test_unwritable_cache_only_warns(tmp_path, monkeypatch, caplog):
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "file"))
    assert not save_cached("scan", {"a": 1}, [1]) and not save_cached_arrays("vol", {"k": 1}, {"x": np.zeros(2)})
    assert "cannot write" in caplog.text


def test_file_signature_changes_with_the_file(tmp_path):
    path = tmp_path / "d" / "x.nii.gz"
    path.parent.mkdir()
    path.write_bytes(b"abc")
    before = file_signature([path], tmp_path)
    path.write_bytes(b"abcd")
    assert before[0][0] == "d/x.nii.gz" and file_signature([path], tmp_path) != before
