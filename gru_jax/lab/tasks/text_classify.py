"""Text classification from any CSV or TSV file ("bring your own"), and the shared builder.

Settings: task.path, task.text_column, task.label_column, task.delimiter ("" picks tab for .tsv
and comma otherwise), task.tokens ("words" or "chars"), task.vocab_size, task.seq_len (tokens
kept per text), task.test_fraction, task.valid_fraction, task.split_seed, task.encoding_errors,
task.dedupe. With `task.dedupe` (the default) rows of exactly the same text count once, labelled
by the majority of their copies (a text whose copies tie is dropped), so no text sits in two
splits (`unique_rows`). The rows are split train / valid / test with a seeded shuffle (`common.shuffled_split`); the
vocabulary and the label set come from the train rows only, and a valid or test label never seen
in training is an error. Metrics: accuracy (the task metric), per-class F1 and
macro F1. Baseline: always the most common train label.
"""

import collections
import csv
import io

import jax.numpy as jnp
import numpy as np
import optax

from gru_jax.lab.tasks import text as text_lib
from gru_jax.lab.tasks.common import DataError, Task, first_of_each, flag, positive_int, random_rows, shuffled_split

# Config defaults beside gru_jax.lab.config's base (dotted keys; sentiment's too): 40 tokens kept
# per text; the splits are fixed, so no eval_size.
DEFAULTS = {"model.features": 64, "task.seq_len": 40, "task.eval_size": 0, "train.num_steps": 1500}


def load_table(path: str, text_column: str, label_column: str, delimiter: str, encoding_errors: str):
  """(texts, labels) from a CSV/TSV file with a header row."""
  content = text_lib.read_text(path, encoding_errors)
  delimiter = delimiter or ("\t" if path.lower().endswith(".tsv") else ",")
  reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
  columns = reader.fieldnames or []
  for key, column in (("task.text_column", text_column), ("task.label_column", label_column)):
    if column not in columns:
      raise DataError(f"{path}: no column {column!r} ({key}); the header has {columns}")
  texts, labels = [], []
  for line, row in enumerate(reader, start=2):
    if row[text_column] is None or row[label_column] is None:
      raise DataError(f"{path}: line {line} has fewer fields than the header")
    texts.append(row[text_column])
    labels.append(row[label_column])
  if not texts:
    raise DataError(f"{path}: a header but no rows")
  return texts, labels


def unique_rows(texts: list[str], labels: list[str]) -> tuple[list[str], list[str]]:
  """Each distinct text once, at its first row, with the label most of its copies carry; a text
  whose copies tie between labels is dropped (no label is its own)."""
  votes = collections.defaultdict(collections.Counter)
  for text, label in zip(texts, labels):
    votes[text][label] += 1
  out_texts, out_labels = [], []
  for i in first_of_each(texts):
    (label, most), *rest = votes[texts[i]].most_common()
    if not rest or rest[0][1] < most:
      out_texts.append(texts[i])
      out_labels.append(label)
  return out_texts, out_labels


def split_rows(texts: list[str], labels: list[str], config, name: str) -> dict[str, tuple[list[str], list[str]]]:
  """split -> (texts, labels): `unique_rows` under task.dedupe, then the seeded shuffle's parts."""
  if flag(config, "dedupe", name):
    texts, labels = unique_rows(texts, labels)
  parts = shuffled_split(len(texts), config, name)
  return {split: ([texts[i] for i in idx], [labels[i] for i in idx]) for split, idx in parts.items()}


def build(name: str, texts: list[str], labels: list[str], config, source: str) -> Task:
  """A classification task over (texts, labels) read from `source`."""
  parts = split_rows(texts, labels, config, name)
  classes = sorted(set(parts["train"][1]))
  unseen = sorted(set(parts["valid"][1] + parts["test"][1]) - set(classes))
  if unseen:
    raise DataError(f"{source}: valid or test labels unseen in training: {unseen} (too few rows of them; change "
                    "task.split_seed, task.test_fraction or task.valid_fraction, or drop those rows)")
  if len(classes) < 2:
    raise DataError(f"{source}: the training rows hold a single label {classes}; a classifier needs two or more")
  seq_len = positive_int(config, "seq_len", name)
  vocab = text_lib.build_vocab(parts["train"][0], config.tokens, int(config.vocab_size))
  label_id = {c: i for i, c in enumerate(classes)}

  def arrays(part_texts, part_labels):
    ids, lengths = text_lib.encode(part_texts, vocab, config.tokens, seq_len)
    return {"xs": ids, "seq_lengths": lengths, "ys": np.array([label_id[label] for label in part_labels], np.int32)}

  train, valid, test = (arrays(*parts[k]) for k in ("train", "valid", "test"))
  def loss_and_metrics(outputs, batch):
    xent = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, batch["ys"]))
    pred = jnp.argmax(outputs, -1)
    metrics = {"xent": xent, "accuracy": jnp.mean(pred == batch["ys"])}
    for c, i in label_id.items():  # fractions of the batch; F1 is formed from their totals
      metrics[f"_tp/{c}"] = jnp.mean((pred == i) & (batch["ys"] == i))
      metrics[f"_fp/{c}"] = jnp.mean((pred == i) & (batch["ys"] != i))
      metrics[f"_fn/{c}"] = jnp.mean((pred != i) & (batch["ys"] == i))
    return xent, metrics

  def finalize(metrics):
    out = {k: v for k, v in metrics.items() if not k.startswith("_")}
    f1s = []
    for c in classes:
      tp, fp, fn = (metrics[f"_{kind}/{c}"] for kind in ("tp", "fp", "fn"))
      f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 0.0)
      out[f"f1/{c}"] = f1s[-1]
    out["macro_f1"] = sum(f1s) / len(f1s)
    return out

  majority = np.bincount(train["ys"], minlength=len(classes)).argmax()
  return Task(
    name=name, output_features=len(classes), head="last", metric="accuracy", higher_is_better=True,
    baseline=float(np.mean(test["ys"] == majority)),
    baseline_note=f"always the most common training label ({classes[majority]!r})",
    train_batch=random_rows(train), train_set=train, valid_set=valid, test_set=test, loss_and_metrics=loss_and_metrics,
    vocab_size=len(vocab) + 2, finalize=finalize, vocab=vocab, classes=tuple(classes),
  )


def make(config) -> Task:
  texts, labels = load_table(config.path, config.text_column, config.label_column, config.delimiter, config.encoding_errors)
  return build("text_classify", texts, labels, config, config.path)
