"""Reading, tokenising and encoding text for the text tasks.

Policy for bytes that are not UTF-8 (`task.encoding_errors`): "replace" (the default) turns each
into U+FFFD, "ignore" drops it, "strict" stops with an error naming the file and the byte offset.
Token id 0 is padding and 1 an unknown token; vocabularies are built on the train split only.
"""

import collections
import os
import re

import numpy as np

from gru_jax.lab.tasks.common import DataError

ENCODING_ERRORS = ("replace", "ignore", "strict")
TOKENS = ("chars", "words")
PAD, UNK = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]")


def read_text(path: str, encoding_errors: str) -> str:
  """The file's text, decoded as UTF-8 under the stated policy; clear errors for bad files."""
  if encoding_errors not in ENCODING_ERRORS:
    raise ValueError(f"task.encoding_errors={encoding_errors!r} is not a policy; expected one of {list(ENCODING_ERRORS)}")
  if not path:
    raise DataError("task.path is empty; give the file to read")
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file" + (" (it is a folder)" if os.path.isdir(path) else ""))
  with open(path, "rb") as f:
    data = f.read()
  if not data.strip():
    raise DataError(f"{path}: the file is empty")
  try:
    return data.decode("utf-8", errors=encoding_errors)
  except UnicodeDecodeError as e:
    raise DataError(
      f"{path}: byte {e.start} ({data[e.start:e.start + 1]!r}) is not UTF-8; set task.encoding_errors to "
      "'replace' or 'ignore' to accept such bytes"
    ) from e


def tokenize(text: str, tokens: str) -> list[str]:
  """Characters, or lower-cased words and punctuation marks."""
  if tokens == "chars":
    return list(text)
  if tokens == "words":
    return _WORD.findall(text.lower())
  raise ValueError(f"task.tokens={tokens!r} is not supported; expected one of {list(TOKENS)}")


def build_vocab(texts: list[str], tokens: str, max_size: int) -> dict[str, int]:
  """The most frequent tokens of `texts` (ties by token), ids from 2, at most max_size ids in all."""
  if max_size < 3:
    raise ValueError(f"task.vocab_size must be at least 3 (padding, unknown, one token); got {max_size}")
  counts = collections.Counter(t for text in texts for t in tokenize(text, tokens))
  ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max_size - 2]
  return {token: i + 2 for i, (token, _) in enumerate(ranked)}


def encode(texts: list[str], vocab: dict[str, int], tokens: str, max_len: int) -> tuple[np.ndarray, np.ndarray]:
  """(ids [N, max_len] int32, lengths [N] int32); texts are cut at max_len tokens."""
  ids = np.full((len(texts), max_len), PAD, np.int32)
  lengths = np.zeros((len(texts),), np.int32)
  for i, text in enumerate(texts):
    seq = [vocab.get(t, UNK) for t in tokenize(text, tokens)][:max_len]
    ids[i, : len(seq)] = seq
    lengths[i] = len(seq)
  return ids, lengths
