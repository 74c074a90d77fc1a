"""Runs every cell config on every task with its defaults and tabulates what each reaches.

  python -m experiments.reference --workdir=runs/reference --out=docs/results/reference --update_docs

Writes <out>.json (the run summaries) and <out>.md (a table with device, versions and date).
Finished runs are reused, so an interrupted call picks up where it stopped.
"""

import datetime
import json
import os
import platform

import flax
import jax
from absl import app, flags, logging

from gru_jax.lab import config as config_lib
from gru_jax.lab import train

_WORKDIR = flags.DEFINE_string("workdir", "runs/reference", "Folder for the runs, one sub-folder each.")
_OUT = flags.DEFINE_string("out", "docs/results/reference", "Output path without extension.")
_CELLS = flags.DEFINE_list("cells", ["gru", "lstm", "rnn"], "Cells (gru_jax.specs.SPECS) to run, each with its defaults.")
_TASKS = flags.DEFINE_list("tasks", ["adding", "copy", "digits", "chorales", "forecast", "sentiment", "char_lm"],
                              "Tasks (the :arg of the configs).")
_UPDATE_DOCS = flags.DEFINE_bool("update_docs", False, "Rewrite the configs' results blocks and the README's table.")

RESULTS_HEADER = "Results with the defaults"


def environment() -> str:
  cpu = platform.processor() or platform.machine()
  return (
    f"{datetime.date.today().isoformat()}; {jax.devices()[0].device_kind} ({cpu}, {os.cpu_count()} cores); "
    f"Python {platform.python_version()}, jax {jax.__version__}, flax {flax.__version__}"
  )


def result_lines(summaries: list[dict], cell: str) -> list[str]:
  """The results block of configs/<cell>.py's docstring, from the reference summaries."""
  if not any(s["cell"] == cell for s in summaries):
    return [f"{RESULTS_HEADER}: not run yet (python -m experiments.reference --cells={cell})."]
  lines = [f"{RESULTS_HEADER} (one seed; docs/results/reference.md, by python -m experiments.reference):"]
  for s in summaries:
    if s["cell"] == cell:
      lines.append(
        f"  :{s['task']:<9} test {s['metric']} {s['test_at_best_valid'][s['metric']]:.3g} (baseline {s['baseline']:.3g}), "
        f"{s['steps']} steps, {s['wall_time_s']:.0f} s on the 2-core CPU"
      )
  return lines


def table(summaries: list[dict], env: str) -> str:
  lines = [
    f"Reference runs: each config's defaults, one seed. {env}. The test metric is scored once, at the",
    "step whose valid metric was best (\"best valid at\").",
    "",
    "| config | task | params | steps | best valid at | test metric | value | baseline | wall time (s) |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for s in summaries:
    lines.append(
      f"| {config_name(s['cell'], s['task'])} | {s['task']} | {s['params']:,} | {s['steps']} | {s['best_valid']['step']} | "
      f"{s['metric']} | {s['test_at_best_valid'][s['metric']]:.4g} | {s['baseline']:.4g} | {s['wall_time_s']:.0f} |"
    )
  lines += ["", "Baselines: adding, predict 1 (MSE 1/6); copy, blanks then a uniform guess (10 ln 8 / (T+20));",
            "digits, the most common test class; chorales, independent Bernoullis at the training key",
            "frequencies (NLL per frame; Chung et al. 2014 report JSB test NLL tanh 9.10, GRU 8.54, LSTM 8.67",
            "on a related but different split); forecast (sunspots), persistence (MSE in train-normalised",
            "units); sentiment, the most common training label; char_lm (BBC News), the train text's character",
            "frequencies (bits per character). Wall time is the training loop's: compilation, steps and",
            "evaluations; loading or parsing the data set before it is not counted."]
  return "\n".join(lines) + "\n"


def config_name(cell: str, task: str) -> str:
  """The --config that gives this cell's defaults on this task."""
  if os.path.exists(os.path.join("configs", f"{cell}.py")):
    return f"configs/{cell}.py:{task}"
  return f"configs/default.py:cell={cell},task={task}"


def update_docs(summaries: list[dict], table_md: str) -> None:
  """Writes the results into the configs/<cell>.py docstrings (of the cells that have one) and the
  README's reference table."""
  for cell in sorted({s["cell"] for s in summaries}):
    path = os.path.join("configs", f"{cell}.py")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      text = f.read()
    start = text.index(RESULTS_HEADER)
    end = text.index('"""', start)
    text = text[:start] + "\n".join(result_lines(summaries, cell)) + "\n" + text[end:]
    with open(path, "w") as f:
      f.write(text)
  with open("README.md") as f:
    readme = f.read()
  head, rest = readme.split("<!-- reference table -->\n")
  _, tail = rest.split("<!-- end reference table -->")
  with open("README.md", "w") as f:
    f.write(head + "<!-- reference table -->\n" + table_md + "<!-- end reference table -->" + tail)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  summaries = []
  for cell in _CELLS.value:
    for task in _TASKS.value:
      workdir = os.path.join(_WORKDIR.value, f"{cell}-{task}")
      done = os.path.join(workdir, "summary.json")
      if not os.path.exists(done):
        config = config_lib.for_cell(cell, task)
        summary = train.train_and_evaluate(config, workdir)
        summary["wall_time_s"] = summary["wall_time_s_this_run"]
        with open(done, "w") as f:
          json.dump(summary, f, indent=2)
      with open(done) as f:
        summary = json.load(f)
      summary.setdefault("wall_time_s", summary["wall_time_s_this_run"])
      summaries.append(summary)
  env = environment()
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value + ".json", "w") as f:
    json.dump({"environment": env, "runs": summaries}, f, indent=2)
  with open(_OUT.value + ".md", "w") as f:
    f.write(table(summaries, env))
  if _UPDATE_DOCS.value:
    update_docs(summaries, table(summaries, env))
  print(table(summaries, env))


if __name__ == "__main__":
  app.run(main)
