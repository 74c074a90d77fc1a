"""docs/results/flax_seq2seq: the provenance (source.txt) and the table (summary.md) of run.sh's logs.

  python summarize.py OUT                         # summary.md from OUT/*.log and OUT/source.txt
  python summarize.py --source SRC COMMIT STEPS   # prints source.txt's lines
"""

import datetime
import pathlib
import re
import sys


def source(src: str, commit: str, steps: str) -> str:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  import gru_jax  # pylint: disable=g-import-not-at-top

  text = pathlib.Path(src, "train.py").read_text()
  pattern = r"',\s*default=([0-9.]+)"
  defaults = [name + "=" + re.search(name + pattern, text).group(1) for name in ("learning_rate", "batch_size", "hidden_size")]
  return "\n".join([
    f"flax examples/seq2seq at commit {commit}",
    f"its train.py defaults: {' '.join(defaults)}; {steps} steps, one seed (its key 0)",
    f"flax {flax.__version__}, jax {jax.__version__}, gru_jax {gru_jax.__version__}; {datetime.date.today()}",
  ])


def main(out: pathlib.Path) -> str:
  rows = ["| model | sequence accuracy, mean of the last 5 logs | their range | loss, mean | logged steps |",
          "|---|---|---|---|---|"]
  for variant in ("flax_lstm", "ours_lstm", "flax_gru", "ours_gru"):
    lines = [line.split() for line in (out / f"{variant}.log").read_text().split("\n") if line.startswith("STEP")][-5:]
    logs = [dict(kv.split("=") for kv in line[2:]) for line in lines]
    accuracy = [float(log["accuracy"]) for log in logs]
    loss = sum(float(log["loss"]) for log in logs) / len(logs)
    rows.append(f"| {variant} | {sum(accuracy) / len(accuracy):.3f} | {min(accuracy):.3f}-{max(accuracy):.3f} | "
                f"{loss:.4f} | {lines[0][1]}-{lines[-1][1]} |")
  provenance = (out / "source.txt").read_text().strip().split("\n")
  table = "\n".join([f"{line}  " for line in provenance] + [""] + rows) + "\n"
  (out / "summary.md").write_text(table)
  return table


if __name__ == "__main__":
  if sys.argv[1] == "--source":
    print(source(*sys.argv[2:5]))
  else:
    print(main(pathlib.Path(sys.argv[1])))
