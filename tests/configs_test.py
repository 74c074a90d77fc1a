"""Every config file: its docstring gives its commands and the results the reference runs reached."""

import importlib
import json
import pathlib

import pytest

from experiments import reference

ROOT = pathlib.Path(__file__).resolve().parent.parent
CELL_CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem not in ("base", "__init__"))


@pytest.mark.parametrize("name", CELL_CONFIGS)
def test_config_docstring_gives_commands_and_reference_results(name):
  module = importlib.import_module(f"configs.{name}")
  doc = module.__doc__
  for task in ("", ":copy", ":digits", ":chorales", ":forecast", ":sentiment", ":char_lm", ":text_classify"):
    assert f"python -m experiments.train --config=configs/{name}.py{task}" in doc
  runs = json.loads((ROOT / "docs" / "results" / "reference.json").read_text())["runs"]
  for line in reference.result_lines(runs, name):
    assert line in doc, f"configs/{name}.py: update its results block from docs/results/reference.json:\n{line}"


@pytest.mark.parametrize("name", CELL_CONFIGS)
def test_config_loads_for_every_task_and_locks(name):
  module = importlib.import_module(f"configs.{name}")
  for task in ("adding", "copy", "digits"):
    config = module.get_config(task)
    assert config.model.cell == name and config.task.name == task
  with pytest.raises(ValueError, match="unknown task"):
    module.get_config("sorting")
