"""Every config file: its docstring gives its commands and the results the reference runs reached."""

import importlib
import json
import pathlib

import pytest

from experiments import reference

ROOT = pathlib.Path(__file__).resolve().parent.parent
CELL_CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem not in ("default", "__init__"))


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
  from gru_jax.lab import config as config_lib, train

  module = importlib.import_module(f"configs.{name}")
  for task in config_lib.TASKS:  # every task's branch is a valid config (train_test trains a selection)
    config = module.get_config(task)
    assert config.model.cell == name and config.task.name == task
    train.check_config(config)
  with pytest.raises(ValueError, match="unknown task"):
    module.get_config("sorting")


def test_default_config_takes_any_cell_and_task():
  from configs import default
  from gru_jax import specs
  from gru_jax.lab import config as config_lib

  for cell in specs.SPECS:
    config = default.get_config(f"cell={cell},task=copy")
    assert config.model.cell == cell and config.task.name == "copy"
    assert config.to_dict() == config_lib.for_cell(cell, "copy").to_dict()
  assert default.get_config("").model.cell == "gru" and default.get_config("task=digits").task.name == "digits"
  for bad in ("mgu", "cell=mgu,cell=gru", "celll=gru", "cell="):
    with pytest.raises(ValueError, match=r"configs/default.py:.*expected cell=<cell>,task=<task>"):
      default.get_config(bad)
  with pytest.raises(ValueError, match="unknown cell 'grux'"):
    default.get_config("cell=grux")
  with pytest.raises(ValueError, match="unknown task 'cpy'"):
    default.get_config("task=cpy")


def test_the_tooling_never_imports_configs():
  """configs/ builds on gru_jax; nothing in gru_jax reads configs/ back."""
  for path in (ROOT / "gru_jax").rglob("*.py"):
    text = path.read_text()
    assert "from configs" not in text and "import configs" not in text and 'import_module(f"configs' not in text, path


def test_each_task_keeps_its_defaults_in_its_module_and_a_wrong_key_is_named(monkeypatch):
  from gru_jax.lab import config as config_lib, tasks

  assert config_lib.get_config("copy").task.seq_len == tasks.copy.DEFAULTS["task.seq_len"] == 20
  monkeypatch.setitem(tasks.TASKS, "copy", tasks.Entry(tasks.copy.make, {"train.num_stepz": 5}))
  with pytest.raises(KeyError, match="task 'copy': its DEFAULTS name 'train.num_stepz', which is not a config key"):
    config_lib.get_config("copy")
