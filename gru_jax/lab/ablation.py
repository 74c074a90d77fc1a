"""Ablation studies as data: a grid of training runs, their configs, and their results table.

A study file (configs/ablations/<study>.py) defines `get_config()`, the study's own settings (an
ml_collections ConfigDict, overridable from the command line), and `sweep(study, add)`, which calls
`add(cell=..., task=..., **fields)` once per run. A field whose name is a config key ("seed",
"task.seq_len", "model.features", "model.cell_kwargs.layer_norm", "train.num_steps", ...) is set in
the run's config, which starts from `gru_jax.lab.config.for_cell(cell, task)`; any other field ("budget", ...) is a
label, recorded with the results and used to group them but not applied.

`experiments/ablate.py` runs the points; this module expands the grid, builds each config, and
reads finished runs back into rows (`collect`), a CSV and a markdown table of mean ± std over seeds.
"""

import csv
import hashlib
import json
import math
import os
from typing import Any, Callable

import numpy as np

from gru_jax.lab import extras, files

try:
  import ml_collections
except ImportError as e:
  raise extras.lab_missing("gru_jax.lab.ablation", e) from e

from gru_jax.lab import config as config_lib  # noqa: E402  (after the check for the lab extra)
from gru_jax.lab import stats  # noqa: E402

Point = dict[str, Any]


def load_study_file(path: str):
  """The module of a study file (configs/ablations/<study>.py), run from its path."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location("study", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def expand(sweep: Callable, study: ml_collections.ConfigDict) -> list[Point]:
  """The points `sweep(study, add)` declares, in order; duplicates and missing cell/task raise."""
  points: list[Point] = []

  def add(**fields):
    for key in ("cell", "task"):
      if key not in fields:
        raise ValueError(f"sweep: every point needs {key}=...; got {sorted(fields)}")
    point = {"cell": fields.pop("cell"), "task": fields.pop("task"), **fields}
    if any(point_name(p) == point_name(point) for p in points):
      raise ValueError(f"sweep: the point {point_name(point)} is declared twice")
    points.append(point)

  sweep(study, add)
  if not points:
    raise ValueError("sweep: declared no points")
  return points


MAX_NAME = 150  # folder names stay well below the file systems' 255 bytes


def point_name(point: Point) -> str:
  """The point's sub-folder: its fields in declared order, e.g. `gru-adding-task.seq_len=50-seed=0`;
  a name longer than MAX_NAME keeps its start and ends with a hash of the whole, so it stays unique."""
  parts = [str(point["cell"]), str(point["task"])] + [f"{k}={v}" for k, v in point.items() if k not in ("cell", "task")]
  name = "-".join(parts).replace("/", "_").replace(" ", "")
  if len(name) <= MAX_NAME:
    return name
  return f"{name[:MAX_NAME - 14]}--{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def seed_groups(points: list[Point]) -> list[list[Point]]:
  """The points as programs: points equal but for "seed", with consecutive seeds, form one group
  (trained as one vmapped program); any other point is a group of its own. Declared order is kept."""
  groups_: dict[str, list[Point]] = {}
  for point in points:
    groups_.setdefault(point_name({k: v for k, v in point.items() if k != "seed"}), []).append(point)
  out = []
  for members in groups_.values():
    seeds = [p.get("seed") for p in members]
    consecutive = all(isinstance(s, int) for s in seeds) and seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    out += [members] if consecutive else [[p] for p in members]
  return out


def group_name(group: list[Point]) -> str:
  """The folder of a group's program (checkpoints, config.json, log.txt); a single point's own."""
  if len(group) == 1:
    return point_name(group[0])
  base = point_name({k: v for k, v in group[0].items() if k != "seed"})
  return f"{base}-seeds={group[0]['seed']}-{group[-1]['seed']}"


def build_group_config(group: list[Point]) -> ml_collections.ConfigDict:
  """The config that trains every point of `group` in one program (num_seeds = its size)."""
  config = build_config(group[0])
  config.num_seeds = len(group)
  return config


def is_config_key(key: str) -> bool:
  return "." in key or key == "seed"


def build_config(point: Point) -> ml_collections.ConfigDict:
  """The defaults of the point's cell and task (`gru_jax.lab.config.for_cell`) with its config fields
  set; a bad cell, task, key or value raises a ValueError naming the point."""
  try:
    config = config_lib.for_cell(point["cell"], point["task"])
  except ValueError as e:
    raise ValueError(f"point {point_name(point)}: {e}") from e
  for key, value in point.items():
    if key in ("cell", "task") or not is_config_key(key):
      continue
    *path, last = key.split(".")
    section = config
    try:
      for part in path:
        section = section[part]
      if last not in section:
        raise KeyError(last)
      section[last] = value
    except (KeyError, AttributeError) as e:
      raise ValueError(f"point {point_name(point)}: {key!r} is not a config key (see gru_jax/lab/config.py)") from e
    except TypeError as e:
      raise ValueError(f"point {point_name(point)}: {key}={value!r}: {e}") from e
  return config


def status(run_dir: str) -> str:
  """'done' (summary.json of a finished run, diverged or not), 'failed' (error.txt), 'partial' or 'new'."""
  summary = os.path.join(run_dir, "summary.json")
  if os.path.exists(summary):
    with open(summary) as f:
      if json.load(f).get("finished"):
        return "done"
  if os.path.exists(os.path.join(run_dir, "error.txt")):
    return "failed"
  return "partial" if os.path.exists(run_dir) else "new"


# What a finished point leaves that `collect` and the plots read: enough to carry a study's finished
# runs to another machine or session (`export_records` / `import_records`; checkpoints stay behind).
RECORD_FILES = ("config.json", "metrics.jsonl", "cost.json", "summary.json")  # summary.json last: a point
# counts as done once it is there, so a copy cut short leaves an unfinished point, never a wrong one


def _copy_records(source_dir: str, dest_dir: str) -> None:
  os.makedirs(dest_dir, exist_ok=True)
  for name in RECORD_FILES:
    if os.path.exists(os.path.join(source_dir, name)):
      with open(os.path.join(source_dir, name), "rb") as f:
        files.atomic_write(os.path.join(dest_dir, name), f.read())


def export_records(workdir: str, points: list[Point], dest: str) -> int:
  """Copies the records (RECORD_FILES) of every finished point of `workdir` to `dest`/<point>/;
  returns how many points `dest` holds now. Unfinished points are left out."""
  for point in points:
    if status(os.path.join(workdir, point_name(point))) == "done":
      _copy_records(os.path.join(workdir, point_name(point)), os.path.join(dest, point_name(point)))
  return sum(status(os.path.join(dest, point_name(p))) == "done" for p in points)


def import_records(source: str, workdir: str, points: list[Point]) -> int:
  """Copies into `workdir` the records of the points finished in `source` (an `export_records`
  folder) and not in `workdir`, so that the study runner skips them; returns how many it copied
  (none from a `source` that does not exist yet: the study's first session). A folder in `source`
  that is no point of the study is an error naming it (a different grid)."""
  if not os.path.exists(source):
    return 0
  if not os.path.isdir(source):
    raise ValueError(f"--records={source!r} is not a folder")
  names = {point_name(p) for p in points}
  strangers = sorted(n for n in os.listdir(source) if os.path.isdir(os.path.join(source, n)) and n not in names)
  if strangers:
    raise ValueError(f"--records={source!r} holds runs that are no point of this study (another grid?): {strangers[:3]}")
  copied = 0
  for point in points:
    name = point_name(point)
    if status(os.path.join(source, name)) == "done" and status(os.path.join(workdir, name)) != "done":
      _copy_records(os.path.join(source, name), os.path.join(workdir, name))
      copied += 1
  return copied


def read_records(run_dir: str) -> list[dict]:
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def solved_step(records: list[dict], metric: str, below: float, higher_is_better: bool = False) -> int | None:
  """The first step whose valid `metric` is below `below` (above, when higher is better), or None."""
  for r in records:
    if r.get("split") == "valid" and metric in r and (r[metric] > below if higher_is_better else r[metric] < below):
      return r["step"]
  return None


def collect(workdir: str, points: list[Point], solved_below: float | None = None) -> list[dict]:
  """One row per point: its fields, status, parameter count, the best valid metric and its step,
  the test metric at that step ("test") and at the final step ("test_final"), wall time, steps/s
  (the mean of the run's logged rates) and matmul GFLOP per step, or the error of a failed point.
  With `solved_below`, also "solved_step": the first evaluation whose valid metric passed it."""
  rows = []
  for point in points:
    run_dir = os.path.join(workdir, point_name(point))
    row = {**point, "run": point_name(point), "status": status(run_dir)}
    if row["status"] == "done":
      with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
      metric = summary["metric"]
      rates = [r["steps_per_s"] for r in read_records(run_dir) if r.get("split") == "train" and "steps_per_s" in r]
      best, test = summary["best_valid"] or {}, summary["test_at_best_valid"] or {}
      stop = summary["stopped"]
      if stop and "metric" in stop:  # a non-finite value; a seed stopped early by valid is a finished run
        row.update(status="diverged", error=f"{stop['metric']} is {stop['value']} at step {stop['step']}")
      row.update(
        params=summary["params"], steps=summary["steps_run"], metric=metric, valid=best.get(metric),
        valid_step=best.get("step"), test=test.get(metric), test_final=summary["test_final"][metric],
        train=(summary.get("train_at_best_valid") or {}).get(metric),
        baseline=summary["baseline"], higher_is_better=summary["higher_is_better"],
        wall_time_s=summary["wall_time_s_this_run"], steps_per_s=float(np.mean(rates)) if rates else None,
        gflops_per_step=cached_flops(run_dir, point) / 1e9,
      )
      if solved_below is not None:
        row["solved_step"] = solved_step(read_records(run_dir), metric, solved_below, summary["higher_is_better"])
    elif row["status"] == "failed":
      with open(os.path.join(run_dir, "error.txt")) as f:
        lines = f.read().strip().splitlines()
      row["error"] = lines[-1] if lines else "(no message)"
    rows.append(row)
  return rows


RESULT_COLUMNS = ["run", "status", "params", "steps", "metric", "valid", "valid_step", "test", "test_final", "train", "baseline",
                  "wall_time_s", "steps_per_s", "gflops_per_step", "solved_step", "error"]


def write_csv(rows: list[dict], path: str) -> None:
  fields = []
  for row in rows:
    fields += [k for k in row if k not in fields and k not in RESULT_COLUMNS and k != "higher_is_better"]
  columns = fields + RESULT_COLUMNS
  with files.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


_INTEGERS = ("params", "steps", "valid_step", "solved_step")
_FLOATS = ("valid", "test", "test_final", "train", "baseline", "wall_time_s", "steps_per_s", "gflops_per_step")
HIGHER_IS_BETTER = {"accuracy": True, "mse": False, "xent": False, "nll": False, "bpc": False}  # the tasks' metrics


def read_csv(path: str) -> list[dict]:
  """The rows of a `write_csv` file, as `collect` made them: result columns typed (empty: None),
  a point's empty fields left out (it did not set them), `higher_is_better` from the metric."""
  rows = []
  with open(path, newline="") as f:
    for line, raw in enumerate(csv.DictReader(f), start=2):
      row = {k: v for k, v in raw.items() if k not in RESULT_COLUMNS and v != ""}
      for k in RESULT_COLUMNS:
        value = raw.get(k, "")
        row[k] = (None if value == "" else int(float(value)) if k in _INTEGERS else float(value) if k in _FLOATS else value)
      if row["status"] in ("done", "diverged"):
        if row["metric"] not in HIGHER_IS_BETTER:
          raise ValueError(f"{path}: line {line}: metric {row['metric']!r} is not one of {sorted(HIGHER_IS_BETTER)}")
        row["higher_is_better"] = HIGHER_IS_BETTER[row["metric"]]
      rows.append(row)
  return rows


def best_valid(rows: list[dict], key: Callable[[dict], Any]) -> dict[Any, dict]:
  """`key(row)` -> the finished row with the best finite valid metric among `rows` (`read_csv`'s),
  lower or higher as its metric is better: a search's pick per cell (and data set)."""
  best: dict[Any, dict] = {}
  for row in rows:
    if row["status"] != "done" or row["valid"] is None or not math.isfinite(row["valid"]):
      continue
    sign = -1.0 if row["higher_is_better"] else 1.0
    k = key(row)
    if k not in best or sign * row["valid"] < sign * best[k]["valid"]:
      best[k] = row
  return best


def search_picks(search_dir: str, key: Callable[[dict], Any]) -> dict[Any, dict]:
  """`best_valid` of `search_dir`/results.csv; a ValueError naming search_dir when there is none."""
  path = os.path.join(search_dir, "results.csv")
  if not os.path.exists(path):
    raise ValueError(f"search_dir: {path} does not exist; run the search phase first (see the study file's docstring)")
  return best_valid(read_csv(path), key)


def group_key(row: dict) -> tuple:
  """The fields a row is averaged over seeds within: everything swept except the seed."""
  return tuple((k, row[k]) for k in row if k not in RESULT_COLUMNS and k not in ("seed", "higher_is_better"))


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
  out: dict[tuple, list[dict]] = {}
  for row in rows:
    out.setdefault(group_key(row), []).append(row)
  return out


def varying_fields(rows: list[dict]) -> set[str]:
  """The grouping fields whose values differ between `rows` (the rest is the same in every run)."""
  return {k for k, _ in group_key(rows[0]) if len({str(r[k]) for r in rows}) > 1}


def _present(values) -> list:
  """The values that are not None or NaN."""
  return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _mean_std(values, digits: int = 4, steps: bool = False) -> str:
  """Mean ± sample std of the values that are not None or NaN; `steps` prints whole numbers."""
  values = _present(values)
  if not values:
    return ""
  mean, spread = (".0f", ".0f") if steps else (f".{digits}g", ".2g")
  if len(values) == 1:
    return f"{values[0]:{mean}}"
  return f"{np.mean(values):{mean}} ± {np.std(values, ddof=1):{spread}}"


SELECTION_NOTE = ("Each run keeps the parameters best on the valid split; \"test\" is the test metric at those "
                  "parameters (scored once, at the end), \"best valid\" the valid metric there and \"at step\" "
                  "its step; \"test (final)\" is the test metric at the last step, for reference; \"train\", "
                  "where shown, the whole train set at the selected parameters. "
                  "Mean ± sample std over seeds; the 95% interval is Student's t over seeds. The orderings "
                  "below each table compare groups next to each other in the ranking of the test metric (and "
                  "every pair, in tables of up to 6 groups) with Welch's t-test, two-sided at 5%.")


def _ci(values) -> str:
  values = _present(values)
  if len(values) < 2:
    return ""
  low, high = stats.interval(values)
  return f"[{low:.4g}, {high:.4g}]"


def orderings(named: dict[str, list[float]], higher_is_better: bool) -> list[str]:
  """Welch's test between the groups next to each other in the ranking by mean (every pair when
  there are at most 6), for groups with 2 or more values."""
  ranked = sorted((k for k, v in named.items() if len(v) >= 2), key=lambda k: np.mean(named[k]), reverse=higher_is_better)
  if len(ranked) <= 6:
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
  else:
    pairs = list(zip(ranked, ranked[1:]))
  return [stats.ordering(a, named[a], b, named[b], higher_is_better) for a, b in pairs]


def markdown(rows: list[dict], title: str, solved_below: float | None = None) -> str:
  """Per group, mean ± std over seeds of the test metric at the best-on-valid step (and of that
  valid metric, its step and the final test metric), one table per task; with `solved_below`, the
  seeds whose valid metric passed it and the steps they needed."""
  lines = [f"# {title}", "", SELECTION_NOTE, ""]
  by_task: dict[str, list[dict]] = {}
  for row in rows:
    by_task.setdefault(row["task"], []).append(row)
  for task, task_rows in by_task.items():
    done = [r for r in task_rows if r["status"] == "done"]
    metric = done[0]["metric"] if done else "metric"
    direction = "" if not done else (" (higher is better)" if done[0]["higher_is_better"] else " (lower is better)")
    varying = varying_fields(task_rows)
    fields = [k for k, _ in group_key(task_rows[0]) if k in varying]
    fixed = [k for k, _ in group_key(task_rows[0]) if k not in varying and k != "task"]
    lines += [f"## {task}: {metric}{direction}", ""]
    if fixed:
      lines += ["Same in every run: " + ", ".join(f"{k}={task_rows[0][k]}" for k in fixed) + ".", ""]
    columns = ["seeds", "params", f"test {metric}", f"test {metric} 95% CI", f"best valid {metric}", "at step", f"test {metric} (final)",
               "baseline", "steps/s", "matmul GFLOP/step"]
    with_train = any(r.get("train") is not None for r in done)
    if with_train:
      columns.insert(columns.index("baseline"), f"train {metric}")
    if solved_below is not None:
      columns += [f"solved (valid {metric} < {solved_below:g})", "steps to solve"]
    lines.append("| " + " | ".join(fields + columns) + " |")
    lines.append("|" + "---|" * (len(fields) + len(columns)))
    named: dict[str, list[float]] = {}
    for key, members in groups(task_rows).items():
      values = dict(key)
      ok = [r for r in members if r["status"] == "done"]
      failed = len(members) - len(ok)
      seeds = f"{len(ok)}" + (f" (+{failed} not done)" if failed else "")
      params = f"{ok[0]['params']:,}" if ok else ""
      baseline = f"{ok[0]['baseline']:.4g}" if ok else ""
      gflops = f"{ok[0]['gflops_per_step']:.3g}" if ok else ""
      cells = [str(values[f]) for f in fields] + [
        seeds, params, _mean_std(r["test"] for r in ok), _ci(r["test"] for r in ok), _mean_std(r["valid"] for r in ok),
        _mean_std((r["valid_step"] for r in ok), steps=True), _mean_std(r["test_final"] for r in ok)]
      if with_train:
        cells.append(_mean_std(r["train"] for r in ok))
      cells += [baseline, _mean_std(r["steps_per_s"] for r in ok), gflops]
      if solved_below is not None:
        cells += [f"{sum(r['solved_step'] is not None for r in ok)}/{len(ok)}", _mean_std((r["solved_step"] for r in ok), steps=True)]
      lines.append("| " + " | ".join(cells) + " |")
      label = ", ".join(f"{f}={values[f]}" for f in fields) or "the runs"
      named[label] = _present(r["test"] for r in ok)
    lines.append("")
    found = orderings(named, bool(done and done[0]["higher_is_better"]))
    if found:
      lines += [f"Orderings of test {metric}:", ""] + [f"- {o}" for o in found] + [""]
  failed = [r for r in rows if r["status"] in ("failed", "diverged")]
  if failed:
    lines += ["## Failed or diverged points", ""] + [f"- `{r['run']}` ({r['status']}): {r.get('error', '')}" for r in failed] + [""]
  return "\n".join(lines)


def _param_counter(point: Point) -> Callable[[int], int]:
  """`features -> parameters` of the model of `point` at that width; the task is built once and
  only shapes are evaluated."""
  import jax  # pylint: disable=g-import-not-at-top

  from gru_jax.lab import train  # pylint: disable=g-import-not-at-top

  task, model, _, _ = train.build(build_config(point))
  xs = task.valid_set["xs"][:1]  # the parameters' shapes do not depend on the lengths

  def count(features: int) -> int:
    shapes = jax.eval_shape(lambda: model.clone(features=features).init(jax.random.key(0), xs))
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes["params"]))

  return count


def count_params(point: Point) -> int:
  """Parameters of the model of `point` (shapes only: nothing is computed)."""
  return _param_counter(point)(build_config(point).model.features)


def features_for_params(point: Point, target: int) -> int:
  """The `model.features` at which the model of `point` has the parameter count closest to
  `target` (for comparisons at equal parameter count)."""
  size = _param_counter(point)
  low, high = 1, 1
  while size(high) < target:
    low, high = high, high * 2
  while high - low > 1:  # size(low) < target <= size(high)
    mid = (low + high) // 2
    low, high = (mid, high) if size(mid) < target else (low, mid)
  return min((low, high), key=lambda f: abs(size(f) - target))


def matmul_flops_per_step(config: ml_collections.ConfigDict) -> float:
  """The matmul FLOPs of one training step of `config`'s recurrent stack: x @ W_x and h @ W_h over
  all steps of a batch (`gru_jax.models.matmul_flops`), for every layer and direction, backward
  counted as twice the forward; the embedding and the head are left out. Sequences are counted at
  their padded length."""
  import jax  # pylint: disable=g-import-not-at-top

  from gru_jax import models
  from gru_jax.lab import train  # pylint: disable=g-import-not-at-top

  task, _, _, _ = train.build(config)
  xs = jax.eval_shape(lambda k: task.train_batch(k, 1), jax.random.key(0))["xs"]  # a training batch's steps
  width = config.model.features
  inputs = config.model.embed_features if task.vocab_size else xs.shape[-1]
  directions = 2 if config.model.bidirectional else 1
  forward = sum(
    directions * models.matmul_flops(config.model.cell, config.train.batch_size, xs.shape[1],
                                     inputs if layer == 0 else width * directions, width)
    for layer in range(config.model.num_layers)
  )
  return 3.0 * forward


def cached_flops(run_dir: str, point: Point) -> float:
  """`matmul_flops_per_step` of a point, cached in its run folder (cost.json)."""
  path = os.path.join(run_dir, "cost.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)["matmul_flops_per_step"]
  flops = matmul_flops_per_step(build_config(point))
  files.atomic_write(path, json.dumps({"matmul_flops_per_step": flops}))
  return flops
