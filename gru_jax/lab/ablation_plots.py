"""The plots of an ablation study (matplotlib, PNG), from `gru_jax.lab.ablation.collect` rows.

- `learning_curves`: the valid metric against steps, mean and min-max band over seeds, one line per
  group (every swept field but the seed), one figure per task.
- `metric_vs_params`: parameter counts as bars and the test metric (at the best valid step) as a line (twin axis), one
  group per bar, one figure per task.
- `metric_vs_swept`: the test metric (at the best valid step) against `task.seq_len`, and the best
  valid metric against `opt.learning_rate`, when swept; mean ± std over seeds, one line per group of
  the remaining fields.
"""

import os

from gru_jax.lab import extras

try:
  import matplotlib
except ImportError as e:
  raise extras.lab_missing("gru_jax.lab.ablation_plots", e) from e

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from gru_jax.lab import ablation, files  # noqa: E402


def _label(key: tuple, varying: set[str]) -> str:
  """The group's fields that differ between the task's runs (the rest is the same everywhere)."""
  parts = [f"{v}" if k in ("cell", "variant") else f"{k.split('.')[-1]}={v}" for k, v in key if k in varying]
  return ", ".join(parts) or "all runs"


def _varying(task_rows: list[dict]) -> set[str]:
  varying = ablation.varying_fields(task_rows)
  if "variant" in varying:  # the variant names the cell already
    varying.discard("cell")
  return varying


def _by_task(rows):
  tasks: dict[str, list[dict]] = {}
  for row in rows:
    if row["status"] == "done":
      tasks.setdefault(row["task"], []).append(row)
  return tasks


def learning_curves(rows: list[dict], workdir: str, out_dir: str) -> list[str]:
  paths = []
  for task, task_rows in _by_task(rows).items():
    fig, ax = plt.subplots(figsize=(7, 4.5))
    metric = task_rows[0]["metric"]
    for key, members in ablation.groups(task_rows).items():
      curves = []
      for row in members:
        records = [r for r in ablation.read_records(os.path.join(workdir, row["run"])) if r.get("split") == "valid"]
        curves.append({r["step"]: r[metric] for r in records if metric in r})
      steps = sorted(set().union(*curves)) if curves else []
      if not steps:
        continue
      # seeds stopped early have fewer evaluations: each step averages the seeds evaluated there
      values = np.array([[c.get(s, np.nan) for s in steps] for c in curves])
      line, = ax.plot(steps, np.nanmean(values, 0), label=_label(key, _varying(task_rows)))
      if len(curves) > 1:
        ax.fill_between(steps, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.2)
    ax.axhline(task_rows[0]["baseline"], color="gray", linestyle=":", label="baseline (test)")
    low, high = ax.get_ylim()
    if low > 0 and high / low > 20:
      ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel=f"valid {metric}",
           title=f"{task}: valid {metric} (mean, band: min-max over seeds)")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir, f"curves-{task}.png"))
  return paths


def metric_vs_params(rows: list[dict], out_dir: str) -> list[str]:
  paths = []
  for task, task_rows in _by_task(rows).items():
    metric = task_rows[0]["metric"]
    grouped = list(ablation.groups(task_rows).items())
    labels = [_label(k, _varying(task_rows)) for k, _ in grouped]
    params = [m[0]["params"] for _, m in grouped]
    finals = [np.mean([r["test"] for r in m]) for _, m in grouped]
    errors = [np.std([r["test"] for r in m], ddof=1) if len(m) > 1 else 0.0 for _, m in grouped]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 5))
    x = np.arange(len(labels))
    ax.bar(x, params, color="lightsteelblue", label="parameters")
    ax.set_ylabel("parameters")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    twin = ax.twinx()
    twin.errorbar(x, finals, yerr=errors, color="firebrick", marker="o", label=f"test {metric}")
    twin.set_ylabel(f"test {metric} at best valid (mean ± std over seeds)")
    ax.set_title(f"{task}: parameters (bars) and test {metric} at best valid (line)")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    twin.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=7)
    paths.append(_save(fig, out_dir, f"params-{task}.png"))
  return paths


# Numeric fields plotted on the x axis when a study sweeps them: (field, column plotted, file prefix,
# axis label). The learning rate is plotted against the valid metric it is selected on.
SWEPT = [("task.seq_len", "test", "length", "task.seq_len (T)"),
         ("opt.learning_rate", "valid", "rate", "opt.learning_rate")]


def metric_vs_swept(rows: list[dict], out_dir: str) -> list[str]:
  """For each numeric field in SWEPT that takes two or more values: the metric against it, mean ±
  std over seeds, one line per group of the remaining fields (log x axis)."""
  paths = []
  for field, column, prefix, xlabel in SWEPT:
    for task, task_rows in _by_task(rows).items():
      if field not in task_rows[0] or len({r[field] for r in task_rows}) < 2:
        continue
      metric = task_rows[0]["metric"]
      lines: dict[tuple, dict[float, list[float]]] = {}
      for key, members in ablation.groups(task_rows).items():
        rest = tuple((k, v) for k, v in key if k != field)
        lines.setdefault(rest, {})[dict(key)[field]] = [r[column] for r in members]
      fig, ax = plt.subplots(figsize=(7, 4.5))
      varying = _varying(task_rows) - {field}
      for rest, by_value in lines.items():
        xs = sorted(by_value)
        means = [np.mean(by_value[x]) for x in xs]
        stds = [np.std(by_value[x], ddof=1) if len(by_value[x]) > 1 else 0.0 for x in xs]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=_label(rest, varying))
      if column == "test":
        ax.axhline(task_rows[0]["baseline"], color="gray", linestyle=":", label="baseline (test)")
      label = f"test {metric} at best valid" if column == "test" else f"best valid {metric}"
      ax.set(xlabel=xlabel, ylabel=label, title=f"{task}: {label} against {field} (mean ± std)")
      ax.set_xscale("log", base=2 if field == "task.seq_len" else 10)
      ax.legend(fontsize=7)
      paths.append(_save(fig, out_dir, f"{prefix}-{task}.png"))
  return paths


def all_plots(rows: list[dict], workdir: str, out_dir: str) -> list[str]:
  return learning_curves(rows, workdir, out_dir) + metric_vs_params(rows, out_dir) + metric_vs_swept(rows, out_dir)


def _save(fig, out_dir: str, name: str) -> str:
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, name)
  fig.tight_layout()
  with files.atomic_path(path, ".png") as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)
  return path
