"""The ablation runner on a tiny study: the grid, results files, resume, a failing point, plots."""

import csv
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

from gru_jax import specs
from gru_jax.lab import ablation, train

ROOT = pathlib.Path(__file__).resolve().parent.parent

STUDY = '''
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "tiny"
  c.seeds = 2
  return c


def sweep(study, add):
  tiny = {"task.seq_len": 5, "model.features": 4, "train.num_steps": 4, "opt.warmup_steps": 0,
          "train.batch_size": 4, "task.eval_size": 16, "train.eval_batch_size": 16, "train.eval_every": 2,
          "train.log_every": 2}
  for cell in ("gru", "rnn"):
    for seed in range(study.seeds):
      add(cell=cell, task="adding", size="tiny", **{**tiny, "task.seq_len": 5 if cell == "gru" else 6}, seed=seed)
  add(cell="gru", task="text_classify", **{"task.path": "/nonexistent/reviews.csv", "train.num_steps": 4,
                                            "opt.warmup_steps": 0})
'''


def ablate(study_file, workdir, *extra):
  return subprocess.run(
    [sys.executable, "-m", "experiments.ablate", f"--config={study_file}", f"--workdir={workdir}", *extra],
    cwd=ROOT, capture_output=True, text=True,
  )


@pytest.mark.slow
def test_study_runs_records_a_failure_resumes_and_plots(tmp_path):
  study_file = tmp_path / "tiny_study.py"
  study_file.write_text(STUDY)
  workdir = tmp_path / "study"
  spec = {"cell": "gru", "task": "adding", "size": "tiny"}
  # One point half-trained beforehand: the runner must resume it, not start over.
  import importlib.util

  loader = importlib.util.spec_from_file_location("tiny_study", study_file)
  module = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(module)
  points = ablation.expand(module.sweep, module.get_config())
  assert len(points) == 5 and [p["cell"] for p in points] == ["gru", "gru", "rnn", "rnn", "gru"]
  assert {k: points[0][k] for k in spec} == spec and points[1]["seed"] == 1
  groups = ablation.seed_groups(points)  # the two seeds of each cell train as one program
  assert [[p["seed"] for p in g if "seed" in p] for g in groups] == [[0, 1], [0, 1], []]
  partial = workdir / ablation.group_name(groups[0])
  assert partial.name.endswith("-seeds=0-1")
  seed_dirs = [str(workdir / ablation.point_name(p)) for p in groups[0]]
  train.train_and_evaluate(ablation.build_group_config(groups[0]), str(partial), steps_this_run=2, seed_dirs=seed_dirs)
  assert ablation.status(seed_dirs[0]) == "partial"

  first = ablate(study_file, workdir, "--jobs=2", "--inspect")
  assert first.returncode == 1, first.stderr  # one point failed
  assert "5 points in 3 programs, 0 done, 5 to run" in first.stdout
  rows = list(csv.DictReader(open(workdir / "results.csv")))
  assert [r["run"] for r in rows] == [ablation.point_name(p) for p in points]
  assert [r["status"] for r in rows] == ["done"] * 4 + ["failed"]
  assert "reviews.csv" in rows[4]["error"] and os.path.exists(workdir / rows[4]["run"] / "error.txt")
  for row in rows[:4]:
    assert row["steps"] == "4" and float(row["params"]) > 0 and row["metric"] == "mse" and float(row["steps_per_s"]) > 0
    assert float(row["gflops_per_step"]) > 0
    assert {"cell", "task", "size", "seed", "task.seq_len", "valid", "valid_step", "test", "test_final", "wall_time_s"} <= set(row)
  log = (partial / "log.txt").read_text()
  assert "resum" in log.lower()  # the half-trained point continued from its checkpoint
  markdown = (workdir / "results.md").read_text()
  assert "## adding: mse (lower is better)" in markdown and " ± " in markdown and "## Failed or diverged points" in markdown
  assert "the test metric at those parameters" in markdown
  # one checkpoint folder per program; each seed's records and summary in its point's folder
  assert (partial / "checkpoints").is_dir() and not (workdir / rows[0]["run"] / "checkpoints").exists()
  assert json.load(open(workdir / rows[1]["run"] / "summary.json"))["seed"] == 1
  for name in ("curves-adding.png", "params-adding.png", "length-adding.png"):
    assert (workdir / "plots" / name).stat().st_size > 1000
  # --inspect: the gradient through time of each finished program (not the failed one)
  assert (workdir / "inspect" / "gradient_flow.png").stat().st_size > 1000
  assert len(json.load(open(workdir / "inspect" / "summary.json"))) == 2

  done_before = {r["run"]: os.path.getmtime(workdir / r["run"] / "summary.json") for r in rows[:4]}
  records = tmp_path / "records"
  second = ablate(study_file, workdir, "--plots=false", f"--records={records}")
  assert "5 points in 3 programs, 4 done, 1 to run" in second.stdout
  assert {run: os.path.getmtime(workdir / run / "summary.json") for run in done_before} == done_before
  # a new session, where the workdir is gone: the records alone carry the finished runs
  third = ablate(study_file, tmp_path / "elsewhere", "--plots=false", f"--records={records}")
  assert "4 finished runs copied" in third.stdout and "4 done, 1 to run" in third.stdout
  again = list(csv.DictReader(open(tmp_path / "elsewhere" / "results.csv")))
  assert [{k: r[k] for k in ("run", "status", "valid", "test", "steps")} for r in again] == \
         [{k: r[k] for k in ("run", "status", "valid", "test", "steps")} for r in rows]


def test_records_carry_only_finished_points_and_refuse_another_grid(tmp_path):
  points = [{"cell": "gru", "task": "adding", "seed": s} for s in range(3)]
  workdir, records = tmp_path / "w", tmp_path / "records"
  for point, finished in zip(points, (True, True, False)):
    run = workdir / ablation.point_name(point)
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"finished": finished, "seed": point["seed"]}))
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
  (workdir / ablation.point_name(points[0]) / "checkpoints").mkdir()
  assert ablation.export_records(str(workdir), points, str(records)) == 2
  assert sorted(os.listdir(records)) == sorted(ablation.point_name(p) for p in points[:2])
  assert sorted(os.listdir(records / ablation.point_name(points[0]))) == ["metrics.jsonl", "summary.json"]
  fresh = tmp_path / "fresh"
  assert ablation.import_records(str(records), str(fresh), points) == 2
  assert ablation.import_records(str(records), str(fresh), points) == 0  # already there
  assert [ablation.status(str(fresh / ablation.point_name(p))) for p in points] == ["done", "done", "new"]
  with pytest.raises(ValueError, match="no point of this study"):
    ablation.import_records(str(records), str(fresh), points[1:])
  assert ablation.import_records(str(tmp_path / "missing"), str(fresh), points) == 0  # a study's first session
  (tmp_path / "a_file").write_text("")
  with pytest.raises(ValueError, match="is not a folder"):
    ablation.import_records(str(tmp_path / "a_file"), str(fresh), points)


def test_bad_studies_are_refused_before_anything_runs(tmp_path):
  bad_key = tmp_path / "bad_key.py"
  bad_key.write_text(STUDY.replace('"task.seq_len": 5', '"task.seq_length": 5'))
  result = ablate(bad_key, tmp_path / "w")
  assert result.returncode == 2 and "'task.seq_length' is not a config key" in result.stderr
  assert not (tmp_path / "w").exists()
  bad_value = tmp_path / "bad_value.py"
  bad_value.write_text(STUDY.replace('"opt.warmup_steps": 0,\n          "train.batch_size"', '"opt.warmup_steps": 9,\n          "train.batch_size"'))
  result = ablate(bad_value, tmp_path / "w")
  assert result.returncode == 2 and "opt.warmup_steps (9) must be smaller than train.num_steps (4)" in result.stderr


def test_expand_refuses_duplicates_and_points_without_cell_or_task():
  with pytest.raises(ValueError, match="declared twice"):
    ablation.expand(lambda s, add: [add(cell="gru", task="adding", seed=0) for _ in range(2)], None)
  with pytest.raises(ValueError, match="every point needs task"):
    ablation.expand(lambda s, add: add(cell="gru"), None)
  with pytest.raises(ValueError, match=r"point .*: unknown cell 'grux'; expected one of " + re.escape(str(sorted(specs.SPECS)))):
    ablation.build_config({"cell": "grux", "task": "adding"})


def test_features_for_params_matches_a_parameter_count():
  target = ablation.count_params({"cell": "gru", "task": "adding", "model.features": 32})
  features = ablation.features_for_params({"cell": "lstm", "task": "adding"}, target)
  got = ablation.count_params({"cell": "lstm", "task": "adding", "model.features": features})
  step = ablation.count_params({"cell": "lstm", "task": "adding", "model.features": features + 1}) - got
  assert abs(got - target) <= step and features < 32


def test_matmul_flops_per_step_counts_every_layer_direction_and_gate():
  config = ablation.build_config({"cell": "lstm", "task": "adding", "model.features": 8, "task.seq_len": 10,
                                  "model.num_layers": 2, "model.bidirectional": True, "train.batch_size": 4})
  per_layer = lambda fan_in: 2 * 2 * 4 * 10 * (fan_in + 8) * 4 * 8  # 2 directions, B=4, T=10, G=4, H=8
  assert ablation.matmul_flops_per_step(config) == 3 * (per_layer(2) + per_layer(16))
  mingru = ablation.build_config({"cell": "mingru", "task": "adding", "model.features": 8, "task.seq_len": 10,
                                  "train.batch_size": 4})
  assert ablation.matmul_flops_per_step(mingru) == 3 * 2 * 4 * 10 * 2 * 2 * 8  # no recurrent matmul


def load_study(name):
  import importlib.util

  spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / "ablations" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
def test_long_memory_follows_the_published_budgets():
  study = load_study("long_memory")
  config = study.get_config()
  config.tasks, config.lengths = "adding", "200,400"
  points = ablation.expand(study.sweep, config)
  assert {(p["task.seq_len"], p["train.num_steps"]) for p in points} == {(200, 20000), (400, 40000)}
  assert all(p["opt.name"] == "rmsprop" and p["opt.learning_rate"] == 1e-3 and p["train.batch_size"] == 50 for p in points)
  chrono = [p for p in points if p["init"] == "chrono"]
  assert {p["cell"] for p in chrono} == {"gru", "lstm"} and all(p["model.cell_kwargs.chrono_init"] == p["task.seq_len"] for p in chrono)
  for group in ablation.seed_groups(points):
    assert [p["seed"] for p in group] == [0, 1, 2]
    train.check_config(ablation.build_group_config(group))
  config.max_steps = 5000
  assert {p["train.num_steps"] for p in ablation.expand(study.sweep, config)} == {5000}


def test_chung2014_search_then_final_reads_the_picked_rates(tmp_path):
  study = load_study("chung2014")
  config = study.get_config()
  points = ablation.expand(study.sweep, config)
  assert len(points) == 4 * 3 * 10 and {p["seed"] for p in points} == {0}
  draws = {(t, c): study.learning_rates(config, c, t) for t in config.tasks.split(",") for c in config.cells.split(",")}
  assert all(len(set(r)) == 10 for r in draws.values()) and len({tuple(r) for r in draws.values()}) == 12  # one draw each
  assert all(math.exp(-12) * 0.99 <= r <= math.exp(-6) * 1.01 for rates in draws.values() for r in rates)
  assert all(p["opt.learning_rate"] in draws[(p["task"], p["cell"])] for p in points)
  gru = [p for p in points if p["cell"] == "gru"]
  assert all(p["model.cell_kwargs.reset_after"] is False and p["model.features"] == 46 for p in gru)
  assert {p["task"]: p["task.window"] for p in points} == {"jsb_chorales": 0, "nottingham": 200, "musedata": 200,
                                                           "piano_midi": 200}
  for p in points[:1] + gru[:1]:
    built = ablation.build_config(p)
    train.check_config(built)
    assert built.opt.weight_noise == 0.075 and built.train.early_stopping == 8 and built.opt.name == "rmsprop"
  config.phase = "final"
  config.search_dir = str(tmp_path)
  with pytest.raises(ValueError, match="run the search phase first"):
    ablation.expand(study.sweep, config)
  rows = [{"task": p["task"], "cell": p["cell"], "opt.learning_rate": p["opt.learning_rate"], "status": "done",
           "metric": "nll", "valid": 9.0 - i * 0.01} for i, p in enumerate(points)]
  with open(tmp_path / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, ["task", "cell", "opt.learning_rate", "status", "metric", "valid"])
    writer.writeheader()
    writer.writerows(rows)
  final = ablation.expand(study.sweep, config)
  assert len(final) == 60 and [len(g) for g in ablation.seed_groups(final)] == [5] * 12
  assert {p["seed"] for p in final} == {1, 2, 3, 4, 5}  # disjoint from the search seed
  last = {(p["task"], p["cell"]): p["opt.learning_rate"] for p in points}  # the lowest valid NLL: each model's last rate
  assert all(p["opt.learning_rate"] == last[(p["task"], p["cell"])] for p in final)
  assert all("model.recurrent_kernel_init" not in p for p in final)  # the protocol keeps the layers' default
  config.cells, config.recurrent_kernel_init = "rnn", "glorot_uniform"  # the init variant
  variant = ablation.expand(study.sweep, config)
  assert len(variant) == 20 and {p["model.recurrent_kernel_init"] for p in variant} == {"glorot_uniform"}
  assert ablation.build_config(variant[0]).model.recurrent_kernel_init == "glorot_uniform"
  config.tasks = "chorales"
  config.phase = "search"
  assert all(ablation.build_config(p).task.transpose == "C" for p in ablation.expand(study.sweep, config)[:1])


def test_chung2014_table_sets_the_paper_beside_our_seeds(tmp_path):
  study = load_study("chung2014")
  folder = tmp_path / "jsb_chorales" / "final"
  folder.mkdir(parents=True)
  rows = [{"cell": cell, "model.features": study.UNITS[cell], "status": "done", "metric": "nll", "params": params,
           "train": 8.0 + 0.1 * seed, "test": test + 0.01 * seed, "train.num_steps": 20000, "task.window": 0,
           "steps": 20000 if (cell, seed) == ("rnn", 1) else 9000}
          for cell, params, test in (("rnn", 27788, 8.6), ("gru", 22766, 8.5), ("peephole_lstm", 21364, 8.5))
          for seed in range(1, 6)]
  rows.append({"cell": "gru", "model.features": 46, "status": "failed", "metric": "", "params": "", "train": "", "test": "",
               "train.num_steps": 20000, "task.window": 0, "steps": ""})
  with open(folder / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  table = study.table(str(tmp_path))
  assert len([line for line in table.splitlines() if line.startswith("| ") and "NLL" not in line and "pieces" not in line]) == 12 + 4
  # the paper's numbers for every set; ours where a set has run; the recurrent layer without the read-out
  assert "| jsb_chorales | GRU | 18,630 / 22,766 (≈20.2K) | 5 | 6.94 | 8.30 ± 0.16 [8.10, 8.50] | 8.54 | 8.53 ± 0.02 [8.51, 8.55] |" in table
  assert "| jsb_chorales | tanh | 18,900 / 27,788 (≈20.1K) |" in table  # 88 x 100 + 100 x 100 + 100
  assert "| nottingham | LSTM | (≈19.8K) | 0 | 3.08 | not run yet | 3.20 | not run yet |" in table
  ordering = next(line for line in table.splitlines() if line.startswith("- jsb_chorales: "))
  assert "GRU better than tanh" in ordering and "GRU vs LSTM: not resolved" in ordering and "- nottingham" not in table
  assert "| jsb_chorales | 229 (13,807) | 76 (4,602) | 77 (4,725) | jsb_chorales.npz, " in table  # the splits as scored
  assert "| nottingham | 692 (" in table  # two of its published 694 training pieces are also in valid or test
  assert ("- jsb_chorales: reduced budget: 1 of 15 final runs ended at the 20,000-step cap, not by early stopping; "
          "trained on whole pieces") in table and "- nottingham:" not in table.split("Budgets")[1]


def test_greff2017_searches_each_variant_then_runs_its_best_draw_with_fresh_seeds(tmp_path):
  study = load_study("greff2017")
  config = study.get_config()
  points = ablation.expand(study.sweep, config)
  assert len(points) == 9 * 12 and {p["seed"] for p in points} == {0} and {p["task"] for p in points} == {"jsb_chorales"}
  assert {p["cell"] for p in points} == set(study.VARIANTS) <= set(specs.SPECS)
  draws = {c: study.draws(config, c) for c in study.VARIANTS}
  assert len({tuple(d) for d in draws.values()}) == 9  # a separate search for each variant
  assert all(20 <= h <= 200 and 1e-4 * 0.99 <= r <= 1.01 for d in draws.values() for h, r in d)
  built = ablation.build_config(points[0])
  train.check_config(built)
  assert (built.opt.name, built.opt.nesterov, built.opt.momentum, built.opt.clip_norm) == ("sgd", True, 0.9, 0.0)
  assert built.train.num_steps == 150 * 15 and built.train.early_stopping == 5  # 150 epochs of 229 pieces in 16s
  from gru_jax.lab.tasks import polyphonic  # pylint: disable=g-import-not-at-top

  assert len(polyphonic.dedupe(polyphonic.load("jsb_chorales"))["train"]) == study.TRAIN_PIECES
  config.phase, config.search_dir = "final", str(tmp_path)
  with pytest.raises(ValueError, match="run the search phase first"):
    ablation.expand(study.sweep, config)
  rows = [{"cell": p["cell"], "model.features": p["model.features"], "opt.learning_rate": p["opt.learning_rate"],
           "status": "done", "metric": "nll", "valid": "nan" if i % 12 == 11 else 9.0 - (i % 12) * 0.01}
          for i, p in enumerate(points)]
  with open(tmp_path / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  final = ablation.expand(study.sweep, config)
  assert len(final) == 45 and [len(g) for g in ablation.seed_groups(final)] == [5] * 9
  assert {p["seed"] for p in final} == {1, 2, 3, 4, 5}
  best = {c: d[10] for c, d in draws.items()}  # the lowest finite valid NLL: each variant's 11th draw
  assert all((p["model.features"], p["opt.learning_rate"]) == best[p["cell"]] for p in final)
  config.cells = "gru"
  with pytest.raises(ValueError, match=r"cells: \['gru'\] are not variants of this study"):
    ablation.expand(study.sweep, config)


def test_greff2017_table_tests_each_variant_against_the_vanilla_lstm(tmp_path):
  study = load_study("greff2017")
  for phase in ("search", "final"):
    (tmp_path / phase).mkdir()
  search = [{"cell": "peephole_lstm", "model.features": 50, "opt.learning_rate": 0.1, "status": "done", "metric": "nll", "valid": 8.6,
             "params": 0, "train": 8.0, "test": 8.7}]
  final = [{"cell": cell, "model.features": 50, "opt.learning_rate": 0.1, "status": "done", "metric": "nll", "valid": 8.6, "params": 25000,
            "train": 8.0, "test": test + 0.01 * seed}
           for cell, test in (("peephole_lstm", 8.6), ("nfg_lstm", 9.1), ("lstm", 8.6)) for seed in range(1, 6)]
  for phase, rows in (("search", search), ("final", final)):
    with open(tmp_path / phase / "results.csv", "w", newline="") as f:
      writer = csv.DictWriter(f, list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)
  table = study.table(str(tmp_path))
  assert "| V (`peephole_lstm`) | 1 | 50, 0.1 (8.60) | 25,000 | 5 | 8.00 ± 0.00" in table
  nfg = next(line for line in table.splitlines() if line.startswith("| NFG"))
  assert "| 9.13 ± 0.02 [9.11, 9.15] | worse (t = " in nfg and nfg.endswith("| worse (all tasks) |")
  assert "not resolved (t = 0.00, p = 1)" in next(line for line in table.splitlines() if line.startswith("| NP"))
  assert "| NIG (`nig_lstm`) | 0 | — | — | 0 | not run yet | not run yet | — |" in table


def test_long_point_names_are_shortened_and_stay_unique():
  fields = {f"train.field_{i}": 1000 + i for i in range(20)}
  a = ablation.point_name({"cell": "gru", "task": "adding", **fields, "seed": 0})
  b = ablation.point_name({"cell": "gru", "task": "adding", **fields, "seed": 1})
  assert len(a) == len(b) == ablation.MAX_NAME and a != b and a.startswith("gru-adding-train.field_0=1000")
  assert ablation.point_name({"cell": "gru", "task": "adding", "seed": 0}) == "gru-adding-seed=0"


def test_solved_step_is_the_first_valid_record_past_the_threshold():
  records = [{"step": 1, "split": "valid", "mse": 0.2}, {"step": 2, "split": "train", "mse": 0.001},
             {"step": 3, "split": "valid", "mse": 0.005}, {"step": 4, "split": "valid", "mse": 0.001}]
  assert ablation.solved_step(records, "mse", 0.01) == 3
  assert ablation.solved_step(records, "mse", 0.0001) is None
  assert ablation.solved_step([{"step": 5, "split": "valid", "accuracy": 0.99}], "accuracy", 0.9, higher_is_better=True) == 5


def test_markdown_reports_test_at_best_valid_with_train_and_solved_columns():
  def row(seed, test, train, solved):
    return {"cell": "gru", "task": "chorales", "seed": seed, "run": f"r{seed}", "status": "done", "params": 100, "steps": 10,
            "metric": "nll", "valid": test + 0.5, "valid_step": 4 + seed, "test": test, "test_final": test + 1, "train": train,
            "baseline": 11.0, "higher_is_better": False, "steps_per_s": 5.0, "gflops_per_step": 0.1, "solved_step": solved}
  rows = [row(0, 8.0, 7.0, 3), row(1, 9.0, 7.5, None)]
  text = ablation.markdown(rows, "Study t", solved_below=8.5)
  header = next(line for line in text.splitlines() if line.startswith("| seeds"))
  assert header.split(" | ")[:7] == ["| seeds", "params", "test nll", "test nll 95% CI", "best valid nll", "at step",
                                     "test nll (final)"]
  assert "train nll" in header and "solved (valid nll < 8.5)" in header
  line = next(line for line in text.splitlines() if line.startswith("| 2 |"))
  assert "| 8.5 ± 0.71 | [2.147, 14.85] |" in line and "| 7.25 ± 0.35 |" in line and "| 1/2 | 3 |" in line
  lstm = [dict(r, cell="lstm", run=f"l{r['seed']}", test=r["test"] + d) for r, d in zip(rows, (10.0, 10.1))]
  text = ablation.markdown(rows + lstm, "Study t")
  assert "Orderings of test nll:" in text and "- cell=gru better than cell=lstm (Welch's t = " in text
  text = ablation.markdown(rows + [dict(r, cell="lstm", run=f"l{r['seed']}", test=r["test"] + 0.1) for r in rows], "Study t")
  assert "- cell=gru vs cell=lstm: not resolved (Welch's t = " in text


def test_a_published_csv_renders_the_table_its_runs_made(tmp_path):
  def row(cell, seed, test, **fields):
    return {"cell": cell, "task": "chorales", "opt.learning_rate": 0.001, **fields, "seed": seed, "run": f"{cell}{seed}",
            "status": "done", "params": 100, "steps": 10, "metric": "nll", "valid": test + 0.5, "valid_step": 4,
            "test": test, "test_final": test + 1, "train": None, "baseline": 11.0, "higher_is_better": False,
            "wall_time_s": 3.5, "steps_per_s": 5.0, "gflops_per_step": 0.1, "solved_step": None}
  rows = [row("rnn", s, 8.6 + 0.01 * s) for s in (1, 2, 3)]
  rows += [row("gru", s, 8.5 + 0.01 * s, **{"model.cell_kwargs.reset_after": False}) for s in (1, 2, 3)]  # a field rnn lacks
  rows.append({"cell": "gru", "task": "chorales", "opt.learning_rate": 0.001, "model.cell_kwargs.reset_after": False,
               "seed": 4, "run": "gru4", "status": "failed", "error": "ValueError: no"})
  ablation.write_csv(rows, str(tmp_path / "results.csv"))
  back = ablation.read_csv(str(tmp_path / "results.csv"))
  assert ablation.markdown(back, "Study t") == ablation.markdown(rows, "Study t")
  assert back[0]["params"] == 100 and back[0]["train"] is None and "model.cell_kwargs.reset_after" not in back[0]
  (tmp_path / "odd.csv").write_text((tmp_path / "results.csv").read_text().replace(",nll,", ",perplexity,"))
  with pytest.raises(ValueError, match=r"odd.csv: line 2: metric 'perplexity' is not one of"):
    ablation.read_csv(str(tmp_path / "odd.csv"))


@pytest.mark.slow
def test_workers_stop_when_the_runner_is_killed(tmp_path):
  import signal
  import time

  study_file = tmp_path / "long_study.py"
  study_file.write_text(STUDY.replace('"train.num_steps": 4, "opt.warmup_steps": 0,\n', '"train.num_steps": 100000, "opt.warmup_steps": 0,\n'))
  runner = subprocess.Popen([sys.executable, "-m", "experiments.ablate", f"--config={study_file}",
                             f"--workdir={tmp_path / 'w'}", "--jobs=2", "--plots=false"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  children = []
  deadline = time.time() + 120
  while time.time() < deadline and len(children) < 2:  # the two workers (and the resource tracker)
    time.sleep(0.5)
    out = subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True, text=True).stdout
    children = [int(p) for p in out.split()]
  assert len(children) >= 2, "the workers did not start"
  time.sleep(5)
  runner.send_signal(signal.SIGKILL)
  runner.wait()
  deadline = time.time() + 60
  alive = lambda: [p for p in children if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]]
  while time.time() < deadline and alive():
    time.sleep(0.5)
  assert not alive(), "workers outlived the runner"


def test_best_valid_skips_unfinished_and_non_finite_runs_and_follows_the_metric():
  row = lambda cell, valid, metric="nll", status="done": {"cell": cell, "valid": valid, "status": status, "metric": metric,
                                                          "higher_is_better": ablation.HIGHER_IS_BETTER[metric]}
  rows = [row("a", 8.0), row("a", float("nan")), row("a", 7.0, status="failed"), row("a", 7.5), row("b", None),
          row("c", 0.8, "accuracy"), row("c", 0.9, "accuracy")]
  best = ablation.best_valid(rows, lambda r: r["cell"])
  assert set(best) == {"a", "c"} and best["a"]["valid"] == 7.5 and best["c"]["valid"] == 0.9
