"""Atomic writes: the old file stays whole when a write fails."""

import os

import pytest

from gru_jax.lab import files


def test_atomic_write_replaces_the_file_whole(tmp_path):
  path = str(tmp_path / "summary.json")
  files.atomic_write(path, "old")
  files.atomic_write(path, b"new")
  assert open(path).read() == "new" and os.listdir(tmp_path) == ["summary.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / "results.csv")
  files.atomic_write(path, "old")
  with pytest.raises(RuntimeError, match="disk full"):
    with files.atomic_path(path, ".png") as tmp:
      assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)
      open(tmp, "w").write("half")
      raise RuntimeError("disk full")
  assert open(path).read() == "old" and os.listdir(tmp_path) == ["results.csv"]
