import pytest

from meddtfm.files import atomic_write, atomic_write_text


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "old")
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "old")

    def half(tmp):
        tmp.write_text("ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
