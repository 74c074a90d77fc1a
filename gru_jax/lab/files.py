"""Files written whole or not at all: a reader (or a run that resumes after a crash) sees the old
file or the new one, never a part."""

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path` (ending in `suffix`, for writers that look at it); when
  the block ends without an error the file there replaces `path`, else it is removed."""
  tmp = f"{path}.tmp-{os.getpid()}{suffix}"
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def atomic_write(path: str, data: str | bytes) -> None:
  """Writes `data` to `path` atomically, flushed to disk before it replaces the old file."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
