"""Run an ablation study: every point of its grid is one training run, each in its own sub-folder.

  python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory
  python -m experiments.ablate --config=configs/ablations/long_memory.py --config.seeds=1 --jobs=2

The study file declares its grid with `sweep(study, add)` (see `gru_jax.lab.ablation`). Each point runs
through `gru_jax.lab.train.train_and_evaluate`, as `experiments.train` does. Points that differ only in
their seed train as one vmapped program (`--vmap_seeds`, on by default): its checkpoints and log.txt
go to <workdir>/<point without seed>-seeds=<first>-<last>/, each seed's records and summary to
<workdir>/<point>/, as a separate run's would. Run again, the same command skips finished points and resumes an
unfinished one from its checkpoint. A point that fails is recorded (error.txt, and in the results)
and the others go on. At the end (and after each point) the workdir gets results.csv, results.md and
the plots under plots/. `--jobs=N` runs N points at once in separate processes. `--records=DIR`
keeps the finished runs' records in DIR as well (and takes the finished ones found there), so a study
can go on in another session or on another machine, where the workdir is gone.
"""

import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
import traceback

import tqdm
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli
from gru_jax.lab import ablation, files

try:
  _CONFIG = config_flags.DEFINE_config_file("config", None, "Study file (configs/ablations/<study>.py).", lock_config=True)
except Exception as e:  # pylint: disable=broad-except
  cli.fail_on_bad_flags(e)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the study (default: runs/<study name>).")
_JOBS = flags.DEFINE_integer("jobs", 1, "Points run at once, each in its own process.")
_PLOTS = flags.DEFINE_bool("plots", True, "Write the plots (matplotlib) after the runs.")
_INSPECT = flags.DEFINE_bool("inspect", False, "After the runs, compare the gradient through time of every finished "
                             "program (its first seed) in <workdir>/inspect (as experiments.inspect --compare).")
_RECORDS = flags.DEFINE_string(
  "records", None, "A folder of the study's finished runs, kept outside the workdir (their config, summary and "
  "metrics; no checkpoints): finished points found there are copied into the workdir and skipped, and every point "
  "that finishes is copied there. A study spans machines or sessions this way.")
_VMAP_SEEDS = flags.DEFINE_bool("vmap_seeds", True, "Train the seeds of a point as one vmapped program (else one run each).")


def load_sweep(path: str):
  """The `sweep` function of the study file at `path`."""
  module = ablation.load_study_file(path)
  if not hasattr(module, "sweep"):
    raise app.UsageError(f"--config: {path} defines no sweep(study, add) function")
  return module.sweep


def _die_with_parent(runner_pid: int) -> None:
  """Worker initializer: on Linux, SIGKILL this worker when the runner dies, so that no orphan
  keeps training into a study's folders (or takes the next queued point). A killed point resumes
  from its last checkpoint, which is written atomically, when the study runs again. A runner that
  died while this worker was still starting (before the signal was asked for) is caught by its pid."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    import signal  # pylint: disable=g-import-not-at-top

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass  # not Linux: workers outlive a killed runner, as before
  if os.getppid() != runner_pid:  # the runner is gone already: the signal will never come
    os._exit(1)


def run_group(group: list[ablation.Point], workdir: str) -> tuple[str, str]:
  """Trains the points of one group as one program (in this process or a worker); returns (status,
  error line). A failure is written to error.txt in the group's folder and in every point's."""
  group_dir = os.path.join(workdir, ablation.group_name(group))
  point_dirs = [os.path.join(workdir, ablation.point_name(p)) for p in group]
  for folder in {group_dir, *point_dirs}:
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(os.path.join(folder, "error.txt")):
      os.remove(os.path.join(folder, "error.txt"))  # a retry
  logging.set_verbosity(logging.WARNING)
  with open(os.path.join(group_dir, "log.txt"), "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    try:
      from gru_jax.lab import train  # pylint: disable=g-import-not-at-top

      train.train_and_evaluate(ablation.build_group_config(group), group_dir, seed_dirs=point_dirs)
      return "done", ""
    except Exception as e:  # pylint: disable=broad-except  (a failed point must not stop the study)
      traceback.print_exc()
      message = f"{type(e).__name__}: {e}".splitlines()[0]
      for folder in {group_dir, *point_dirs}:
        with open(os.path.join(folder, "error.txt"), "w") as f:
          f.write(traceback.format_exc() + message + "\n")
      return "failed", message


def write_results(study, points, workdir, plots: bool) -> list[dict]:
  solved_below = study.get("solved_below")  # studies that count seeds reaching a threshold
  rows = ablation.collect(workdir, points, solved_below)
  ablation.write_csv(rows, os.path.join(workdir, "results.csv"))
  files.atomic_write(os.path.join(workdir, "results.md"), ablation.markdown(rows, f"Study {study.name}", solved_below))
  if plots:
    from gru_jax.lab import ablation_plots  # pylint: disable=g-import-not-at-top

    ablation_plots.all_plots(rows, workdir, os.path.join(workdir, "plots"))
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config=configs/ablations/<study>.py is required")
  if _JOBS.value < 1:
    raise app.UsageError(f"--jobs must be a positive integer; got {_JOBS.value}")
  logging.set_verbosity(logging.WARNING)
  study = _CONFIG.value
  try:
    points = ablation.expand(load_sweep(config_flags.get_config_filename(flags.FLAGS["config"])), study)
    from gru_jax.lab import train  # pylint: disable=g-import-not-at-top

    for point in points:  # every point's config is valid before anything runs
      try:
        train.check_config(ablation.build_config(point))
      except train.ConfigError as e:
        raise ValueError(f"point {ablation.point_name(point)}: {e}") from e
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  workdir = _WORKDIR.value or os.path.join("runs", study.name)
  os.makedirs(workdir, exist_ok=True)
  if _RECORDS.value:
    try:
      copied = ablation.import_records(_RECORDS.value, workdir, points)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    print(f"{study.name}: {copied} finished runs copied from {_RECORDS.value}", flush=True)
  groups = ablation.seed_groups(points) if _VMAP_SEEDS.value else [[p] for p in points]
  is_done = lambda p: ablation.status(os.path.join(workdir, ablation.point_name(p))) == "done"
  todo = [g for g in groups if not all(is_done(p) for p in g)]
  remaining = sum(len(g) for g in todo)
  bar = tqdm.tqdm(total=len(points), initial=len(points) - remaining, desc=study.name, unit="run", disable=None)
  print(f"{study.name}: {len(points)} points in {len(groups)} programs, {len(points) - remaining} done, {remaining} to "
        f"run; workdir {workdir}", flush=True)
  failures = 0

  def finished(group, outcome):
    nonlocal failures
    state, message = outcome
    failures += len(group) * (state == "failed")
    bar.update(len(group))
    line = f"{ablation.group_name(group)}: {state}" + (f" ({message})" if message else "")
    bar.write(line) if not bar.disable else print(line, flush=True)
    write_results(study, points, workdir, plots=False)
    if _RECORDS.value:
      ablation.export_records(workdir, group, _RECORDS.value)

  if _JOBS.value == 1:
    for group in todo:
      finished(group, run_group(group, workdir))
  else:
    context = multiprocessing.get_context("spawn")  # JAX does not survive fork
    with concurrent.futures.ProcessPoolExecutor(_JOBS.value, mp_context=context, initializer=_die_with_parent,
                                                initargs=(os.getpid(),)) as pool:
      futures = {pool.submit(run_group, g, workdir): g for g in todo}
      for future in concurrent.futures.as_completed(futures):
        finished(futures[future], future.result())
  bar.close()
  rows = write_results(study, points, workdir, plots=_PLOTS.value)
  if _RECORDS.value:
    ablation.export_records(workdir, points, _RECORDS.value)
  if _INSPECT.value:
    from gru_jax.lab import insight_report  # pylint: disable=g-import-not-at-top

    finished_dirs = [os.path.join(workdir, ablation.group_name(g)) for g in groups if all(is_done(p) for p in g)]
    if finished_dirs:
      print(f"inspection: {insight_report.compare_runs(finished_dirs, os.path.join(workdir, 'inspect'))}", flush=True)
  done = sum(r["status"] in ("done", "diverged") for r in rows)
  print(f"{study.name}: {done}/{len(rows)} points done, {failures} failed in this call; "
        f"results in {os.path.join(workdir, 'results.md')}")
  if done < len(rows):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
