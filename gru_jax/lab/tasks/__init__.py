"""Tasks, one file each; `make(config.task)` builds the one named by `config.task.name`."""

from gru_jax.tasks import adding, char_lm, chorales, copy, digits, forecast, polyphonic, sentiment, text_classify
from gru_jax.tasks.common import DataError, Task

TASKS = {
  "adding": adding.make,
  "copy": copy.make,
  "digits": digits.make,
  "chorales": chorales.make,
  **polyphonic.MAKERS,  # jsb_chorales, nottingham, musedata, piano_midi
  "forecast": forecast.make,
  "sentiment": sentiment.make,
  "text_classify": text_classify.make,
  "char_lm": char_lm.make,
}


def make(config) -> Task:
  """The task named `config.name`, built from the rest of `config` (a ConfigDict)."""
  if config.name not in TASKS:
    raise ValueError(f"task.name={config.name!r} is not a task; expected one of {sorted(TASKS)}")
  return TASKS[config.name](config)
