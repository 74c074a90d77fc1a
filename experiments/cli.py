"""Command-line helpers shared by the entry points: one-line errors for bad flags and config overrides."""

import sys

from absl import flags


def fail_on_bad_flags(e: Exception) -> None:
  """One line for an unknown config key, a bad :task or a value of the wrong type; exit 2."""
  text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
  if "Traceback" in text:  # config_flags wraps errors from get_config in their traceback
    text = str(e).strip().splitlines()[-1]
  text = text.strip("'\"")
  if isinstance(e, (AttributeError, KeyError)):
    text = "no such config key " + text.replace("'", "")
  print(f"error: bad flag or config override: {text}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl flag parsing, with one-line errors for unknown config keys and bad values."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    fail_on_bad_flags(e)
