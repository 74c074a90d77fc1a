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
  published = (README.parent / "docs" / "results" / "ablations" / "chung2014" / "final" / "results.md").read_text()
  assert block.strip() == published.split("\n", 1)[1].strip()  # all but its title line
  for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", README.read_text()):
    assert (README.parent / image).exists(), image


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
