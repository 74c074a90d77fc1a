"""Tasks, one file each; `make(config.task)` builds the one named by `config.task.name`.

Each task's module holds its maker and its config defaults (`DEFAULTS`: dotted keys of
`gru_jax.lab.config` that differ from the base there); `TASKS` is the one registry of both.
"""

from typing import Any, Callable, NamedTuple

from gru_jax.lab.tasks import adding, char_lm, chorales, copy, digits, forecast, polyphonic, sentiment, text_classify
from gru_jax.lab.tasks.common import DataError, Task


class Entry(NamedTuple):
  make: Callable[[Any], Task]  # config.task -> Task
  defaults: dict[str, Any]  # dotted config keys -> the task's default


TASKS = {
  "adding": Entry(adding.make, adding.DEFAULTS),
  "copy": Entry(copy.make, copy.DEFAULTS),
  "digits": Entry(digits.make, digits.DEFAULTS),
  "chorales": Entry(chorales.make, chorales.DEFAULTS),
  **{name: Entry(polyphonic.MAKERS[name], polyphonic.DEFAULTS[name]) for name in polyphonic.SETS},
  "forecast": Entry(forecast.make, forecast.DEFAULTS),
  "sentiment": Entry(sentiment.make, sentiment.DEFAULTS),
  "text_classify": Entry(text_classify.make, text_classify.DEFAULTS),
  "char_lm": Entry(char_lm.make, char_lm.DEFAULTS),
}


def make(config) -> Task:
  """The task named `config.name`, built from the rest of `config` (a ConfigDict)."""
  if config.name not in TASKS:
    raise ValueError(f"task.name={config.name!r} is not a task; expected one of {sorted(TASKS)}")
  return TASKS[config.name].make(config)
