"""Output safety: atomic writes and the output folders cktflow may write into."""

import pytest

from cktflow.fsutil import MARKER, OutputFolderError, atomic_open, atomic_write_text, claim_output_dir


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_new_and_empty_folders_are_claimed_and_marked(tmp_path):
    new = claim_output_dir(tmp_path / "new" / "deeper")
    assert (new / MARKER).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (claim_output_dir(empty) / MARKER).is_file()
    (new / "report.md").write_text("x")
    assert claim_output_dir(new) == new           # cktflow's own folder: used again without asking


def test_a_users_folder_is_refused_unless_forced(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(OutputFolderError, match="--force"):
        claim_output_dir(tmp_path)
    assert not (tmp_path / MARKER).exists()
    claim_output_dir(tmp_path, force=True)
    assert (tmp_path / MARKER).is_file() and (tmp_path / "mine.txt").read_text() == "precious"


def test_a_file_is_not_a_folder(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OutputFolderError, match="not a folder"):
        claim_output_dir(f, force=True)
