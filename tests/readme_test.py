"""Every python block in README.md runs as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
  assert len(BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
  exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


def test_readme_reference_table_is_the_committed_file():
  text = README.read_text()
  table = text.split("<!-- reference table -->\n")[1].split("<!-- end reference table -->")[0]
  committed = (README.parent / "docs" / "results" / "reference.md").read_text()
  assert table == committed, "copy docs/results/reference.md into the README's reference table"


def test_readme_has_exactly_two_setup_commands():
  setup = README.read_text().split("## Set up")[1].split("\n## ")[0]
  commands = re.findall(r"```bash\n(.*?)```", setup, flags=re.S)
  assert [c.strip() for c in commands] == [
    "pip install -e '.[lab]' && python -m experiments.train",
    "pip install -e '.[test]' && python -m pytest -q -n auto",
  ]


def test_readme_speed_summaries_are_rendered_from_the_committed_results():
  import os

  from benchmarks import summarize

  blocks = [b.split("<!-- end speed summary -->")[0] for b in README.read_text().split("<!-- speed summary -->\n")[1:]]
  assert len(blocks) == 5  # CPU and GPU, targets and parallel cells; the options on the CPU
  cwd = os.getcwd()
  os.chdir(README.parent)
  try:
    for block in blocks:
      path = re.search(r"From `(benchmarks/results/[^`]+\.json)`", block).group(1)
      assert block.strip() == summarize.summary(path).strip()
  finally:
    os.chdir(cwd)


def test_readme_seeds_summary_is_the_committed_file():
  block = README.read_text().split("<!-- seeds summary -->\n")[1].split("<!-- end seeds summary -->")[0]
  path = re.search(r"copied from\s+`(benchmarks/results/seeds-[^`]+\.md)`", README.read_text()).group(1)
  assert block == (README.parent / path).read_text()


def test_ci_runs_the_readme_test_command():
  setup = README.read_text().split("## Set up")[1].split("\n## ")[0]
  test_command = re.findall(r"```bash\n(.*?)```", setup, flags=re.S)[-1].strip()
  ci = (README.parent / ".ci" / "run").read_text()
  assert test_command in ci.splitlines(), ".ci/run must run the README's test command"
  assert "python3 -m venv" in ci  # a fresh environment, installing everything itself


def test_readme_ablation_table_is_the_published_one():
  block = README.read_text().split("<!-- ablation results -->\n")[1].split("<!-- end ablation results -->")[0]
  published = (README.parent / "docs" / "results" / "ablations" / "chung2014" / "music21_chorales" / "final" / "results.md").read_text()
  assert block.strip() == published.split("\n", 1)[1].strip()  # all but its title line
  for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", README.read_text()):
    assert (README.parent / image).exists(), image


@pytest.mark.parametrize("study", ["chung2014"])  # greff2017 joins once its results are published
def test_readme_study_tables_are_the_rendered_ones(study):
  """The README's table of each study is <root>/table.md, and table.md is what the study's results render to."""
  from experiments import study_table

  root = README.parent / "docs" / "results" / "ablations" / study
  block = README.read_text().split(f"<!-- {study} table -->\n")[1].split(f"<!-- end {study} table -->")[0]
  assert block == (root / "table.md").read_text(), f"copy docs/results/ablations/{study}/table.md into the README"
  study_file = README.parent / "configs" / "ablations" / f"{study}.py"
  assert block == study_table.render(str(study_file), str(root)), f"rerun python -m experiments.study_table --config={study_file}"


def test_readme_insight_table_is_the_committed_summaries():
  import json

  table = README.read_text().split("| model | ‖dLoss/dh_100‖ |")[1].split("\n\n")[0]
  root = README.parent / "docs" / "results" / "inspect"
  summaries = {**json.loads((root / "init-adding" / "summary.json").read_text()),
               **{k.split(" ")[0] + " trained": v for k, v in json.loads((root / "trained-adding" / "summary.json").read_text()).items()}}
  assert len(summaries) == 7
  for s in summaries.values():
    row = f"| {s['grad_norm_last_step']:.3g} | {s['grad_norm_first_step']:.3g} | {s['to_end_first_step']:.3g} |"
    assert row in table, row


def test_readme_seq2seq_figures_are_the_committed_summary():
  summary = (README.parent / "docs" / "results" / "flax_seq2seq" / "summary.md").read_text()
  rows = [row.split("|") for row in summary.split("\n") if row.startswith("| ")]
  accuracy = {row[1].strip(): row[2].strip() for row in rows}
  spread = {row[1].strip(): row[3].strip() for row in rows}
  text = " ".join(README.read_text().split())
  assert (f"LSTM {accuracy['ours_lstm']} ours against {accuracy['flax_lstm']} Flax's; GRU {accuracy['ours_gru']} "
          f"against {accuracy['flax_gru']}") in text
  assert f"(Flax's {spread['flax_lstm']}, ours {spread['ours_lstm']})" in text


# Each ordering the README's study sections state, and the Welch's t-test line of the published
# results.md behind it (the README quotes its p).
ORDERINGS = [
  ("params_accuracy", "cell=gru, budget=12000, model.features=32 better than cell=lstm, budget=12000, model.features=27", "0.0007"),
  ("params_accuracy", "cell=gru, budget=48000, model.features=95 better than cell=lstm, budget=48000, model.features=82", "5.5e-05"),
  ("params_accuracy", "cell=gru, budget=192000, model.features=221 better than cell=lstm, budget=192000, model.features=191", "0.0016"),
  ("params_accuracy", "cell=gru, budget=6000, model.features=15 better than cell=lstm, budget=6000, model.features=12", "0.006"),
  ("params_accuracy", "cell=gru, budget=24000, model.features=48 vs cell=lstm, budget=24000, model.features=40: not resolved", "0.054"),
  ("params_accuracy", "cell=lstm, budget=96000, model.features=109 better than cell=gru, budget=96000, model.features=129", "0.006"),
  ("params_accuracy/long", "cell=gru, model.features=95 better than cell=lstm, model.features=82", "1.5e-06"),
  ("classify", "cell=rnn, model.features=110 vs cell=gru, model.features=64: not resolved", "0.066"),
  ("gru_design", "cell=mgu, variant=mgu better than cell=mingru, variant=mingru", "0.013"),
  ("gru_design", "cell=mingru, variant=mingru vs cell=gru, variant=gru_layer_norm: not resolved", "0.14"),
  ("chung2014/music21_chorales/final", "cell=peephole_lstm, opt.learning_rate=0.00152, model.features=36 better than cell=gru", "0.00033"),
  ("chung2014/jsb_chorales/final", "cell=peephole_lstm, opt.learning_rate=0.000595, model.features=36 better than cell=gru", "0.0032"),
  ("chung2014/jsb_chorales/final", "cell=gru, opt.learning_rate=0.000257, model.features=46 better than cell=rnn", "0.00037"),
  ("chung2014/jsb_chorales/final", "cell=peephole_lstm, opt.learning_rate=0.000595, model.features=36 better than cell=rnn", "1.5e-05"),
  ("chung2014/nottingham/final", "cell=rnn, opt.learning_rate=0.000676, model.features=100 vs cell=peephole_lstm", "0.85"),
  ("chung2014/nottingham/final", "cell=rnn, opt.learning_rate=0.000676, model.features=100 vs cell=gru", "0.44"),
  ("chung2014/nottingham/final", "cell=peephole_lstm, opt.learning_rate=0.00175, model.features=36 vs cell=gru", "0.74"),
]


@pytest.mark.parametrize("study, line, p", ORDERINGS)
def test_readme_orderings_are_the_published_tests(study, line, p):
  published = (README.parent / "docs" / "results" / "ablations" / study / "results.md").read_text()
  found = [row for row in published.splitlines() if row.startswith(f"- {line}")]
  assert len(found) == 1, line
  assert float(found[0].rsplit("p = ", 1)[1].rstrip(")")) == pytest.approx(float(p), rel=0.1)  # as the README rounds it
  assert p in " ".join(README.read_text().split()), f"the README should quote p = {p} for {line}"
