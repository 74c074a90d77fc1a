"""Chung et al. 2014 (arXiv:1412.3555), Table 2: tanh RNN, GRU and LSTM at about 20K parameters on
the four polyphonic music sets of Boulanger-Lewandowski et al. 2012, with their published splits.

Two phases per data set, one command each (docs/results/ablations/run.sh has the published ones):

  # 1. learning rate: 10 log-uniform samples in [e^-12, e^-6], drawn separately for each cell and
  #    each data set, all with the search seed (0), picked on valid
  python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=jsb_chorales \
    --workdir=runs/chung2014-jsb_chorales-search --jobs=2
  # 2. the picked rate of each cell (best valid NLL in phase 1's results.csv) with 5 fresh seeds (1..5)
  python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=jsb_chorales \
    --config.phase=final --config.search_dir=runs/chung2014-jsb_chorales-search \
    --workdir=runs/chung2014-jsb_chorales --jobs=2

As in the paper: tanh RNN 100 units, GRU 46 with the reset gate before the recurrent matmul
(reset_after=False), LSTM 36 with peepholes, a sigmoid read-out per key; RMSProp, gradient norm
clipped to 1, weight noise of std 0.075, a constant learning rate chosen on valid from 10
log-uniform samples in [e^-12, e^-6] per model, early stopping on valid, NLL per frame summed over
the keys; the published train / valid / test pieces; train and test NLL at the best-valid parameters.

Not as in the paper (the README lists these beside the results):
- 88 inputs and outputs (every piano key), where the paper used the key range each set uses (93,
  96, 105, 108), so the recurrent layers have slightly fewer input weights; every frame of a piece
  is predicted, the first from a zero input frame;
- minibatches of 16 pieces; on Nottingham, MuseData and Piano-midi random windows of `window`
  frames of a piece (from a zero state), on JSB whole pieces; valid and test always whole pieces;
- a step budget with patience (`num_steps`, `patience`) in place of the paper's unstated rule;
- initialisation: LeCun-normal input kernels and read-out, orthogonal recurrent kernels, zero biases but the
  LSTM's forget bias of 1 (the paper does not state its own);
- weight noise on every parameter, the read-out included, drawn afresh each step;
- RMSProp as optax's (decay 0.9, eps 1e-8), 5 seeds.
"""

import os
import zlib

import ml_collections
import numpy as np

UNITS = {"rnn": 100, "gru": 46, "peephole_lstm": 36}  # Chung et al. 2014, Table 1
# Chung et al. 2014 (arXiv:1412.3555v1), Table 2: (train, test) NLL per frame, as quoted in the
# shared data's SOURCE.md; and Table 1's parameter counts (about 20K each).
PAPER = {
  "nottingham": {"rnn": (3.22, 3.13), "gru": (2.79, 3.23), "peephole_lstm": (3.08, 3.20)},
  "jsb_chorales": {"rnn": (8.82, 9.10), "gru": (6.94, 8.54), "peephole_lstm": (8.15, 8.67)},
  "musedata": {"rnn": (5.64, 6.23), "gru": (5.06, 5.99), "peephole_lstm": (5.18, 6.23)},
  "piano_midi": {"rnn": (5.64, 9.03), "gru": (4.93, 8.82), "peephole_lstm": (6.49, 9.03)},
}
PAPER_PARAMS = {"rnn": "≈20.1K", "gru": "≈20.2K", "peephole_lstm": "≈19.8K"}
CELL_NAMES = {"rnn": "tanh", "gru": "GRU", "peephole_lstm": "LSTM"}
NUM_KEYS = 88
OPTIONS = {"gru": {"model.cell_kwargs.reset_after": False}}
LONG = ("nottingham", "musedata", "piano_midi")  # pieces of up to 1,793-4,273 frames: trained in windows


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "chung2014"
  c.phase = "search"  # "search" (the learning rates, seed search_seed) or "final" (the picked rate, c.seeds fresh seeds)
  c.search_dir = ""  # phase "final": the workdir of the search phase, whose results.csv picks each cell's rate
  c.tasks = "jsb_chorales,nottingham,musedata,piano_midi"  # also "chorales" (music21's, moved to C)
  c.cells = "rnn,gru,peephole_lstm"
  c.num_rates = 10
  c.rate_seed = 2014  # with the cell and the data set, draws each model's learning-rate samples
  c.search_seed = 0  # the seed of every search run
  c.seeds = 5  # final seeds: search_seed + 1 .. search_seed + seeds, none of them the search seed
  c.num_steps = 20000  # the most steps; early stopping usually ends a run before
  c.eval_every = 250
  c.patience = 8  # evaluations without a better valid NLL before a seed stops
  c.weight_noise = 0.075
  c.batch_size = 16
  c.window = 200  # training frames per piece on the LONG sets (JSB and chorales: whole pieces)
  # a variant, not the protocol: the recurrent kernels' initializer by name (gru_jax.models.INITIALIZERS;
  # "": orthogonal), e.g. glorot_uniform to probe how much the tanh RNN owes to its orthogonal init
  c.recurrent_kernel_init = ""
  return c


def learning_rates(study, cell: str, task: str) -> list[float]:
  """`num_rates` samples, log-uniform in [e^-12, e^-6], rounded to 3 significant digits; a
  separate draw for each (cell, data set), as the paper searched each model on its own."""
  rng = np.random.default_rng([study.rate_seed, zlib.crc32(cell.encode()), zlib.crc32(task.encode())])
  return [float(f"{r:.3g}") for r in np.exp(rng.uniform(-12.0, -6.0, study.num_rates))]


def picked_rates(search_dir: str) -> dict[tuple[str, str], float]:
  """(task, cell) -> the learning rate with the best (lowest) valid NLL in the search's results."""
  from gru_jax.lab import ablation  # pylint: disable=g-import-not-at-top  (the lab extra)

  picks = ablation.search_picks(search_dir, lambda row: (row["task"], row["cell"]))
  return {key: float(row["opt.learning_rate"]) for key, row in picks.items()}


def sweep(study, add):
  if study.phase not in ("search", "final"):
    raise ValueError(f"phase={study.phase!r}; expected 'search' or 'final'")
  if study.seeds < 1:
    raise ValueError(f"seeds={study.seeds}; the final phase needs at least one seed")
  rates = picked_rates(study.search_dir) if study.phase == "final" else None
  for task in study.tasks.split(","):
    for cell in study.cells.split(","):
      fixed = {"model.features": UNITS[cell], **OPTIONS.get(cell, {}), "opt.name": "rmsprop", "opt.schedule": "constant",
               "opt.warmup_steps": 0, "opt.clip_norm": 1.0, "opt.weight_noise": study.weight_noise,
               "train.num_steps": study.num_steps, "train.eval_every": study.eval_every,
               "train.checkpoint_every": study.eval_every, "train.early_stopping": study.patience,
               "train.batch_size": study.batch_size}
      if study.recurrent_kernel_init:
        fixed["model.recurrent_kernel_init"] = study.recurrent_kernel_init
      if task == "chorales":
        fixed["task.transpose"] = "C"
      else:
        fixed["task.window"] = study.window if task in LONG else 0
      if study.phase == "search":
        for rate in learning_rates(study, cell, task):
          add(cell=cell, task=task, **{"opt.learning_rate": rate, **fixed, "seed": study.search_seed})
      else:
        if (task, cell) not in rates:
          raise ValueError(f"search_dir: no finished run of {cell} on {task} in {study.search_dir}/results.csv")
        for seed in range(study.search_seed + 1, study.search_seed + 1 + study.seeds):
          add(cell=cell, task=task, **{"opt.learning_rate": rates[(task, cell)], **fixed, "seed": seed})


def table(root: str) -> str:
  """The paper's 24 numbers beside ours, from `root`/<set>/final/results.csv of each set that has
  one: mean ± std [95% t interval] over seeds of the train and test NLL at the best-valid
  parameters, the parameter counts under the paper's convention (the recurrent layer: all but the
  read-out's (units + 1) x 88) and ours in all, and Welch's t-test for each pair of cells."""
  from gru_jax.lab import ablation, stats  # pylint: disable=g-import-not-at-top  (the lab extra)

  lines = ["| data set | cell | params: recurrent layer / all (paper's) | seeds | train NLL, paper | train NLL, ours | "
           "test NLL, paper | test NLL, ours |", "|---|---|---|---|---|---|---|---|"]
  orderings, budgets = [], []
  for task, paper in PAPER.items():
    path = os.path.join(root, task, "final", "results.csv")
    rows = [r for r in ablation.read_csv(path) if r["status"] == "done"] if os.path.exists(path) else []
    tests = {}
    for cell, (paper_train, paper_test) in paper.items():
      mine = [r for r in rows if r["cell"] == cell]
      if mine:
        params = mine[0]["params"]
        recurrent = params - (int(mine[0]["model.features"]) + 1) * NUM_KEYS
        counts = f"{recurrent:,} / {params:,} ({PAPER_PARAMS[cell]})"
      else:
        counts = f"({PAPER_PARAMS[cell]})"
      tests[CELL_NAMES[cell]] = [r["test"] for r in mine]
      lines.append(f"| {task} | {CELL_NAMES[cell]} | {counts} | {len(mine)} | {paper_train:.2f} | "
                   f"{stats.mean_std_ci([r['train'] for r in mine])} | {paper_test:.2f} | "
                   f"{stats.mean_std_ci(tests[CELL_NAMES[cell]])} |")
    found = ablation.orderings(tests, higher_is_better=False)
    if found:
      orderings.append(f"- {task}: " + "; ".join(found))
    if rows:
      budgets.append(_budget(task, rows))
  lines += ["", "Mean ± sample std [95% Student's t interval] over the final seeds; train and test NLL per frame "
            "(nats, summed over the keys) at the parameters best on valid. Orderings of our test NLL "
            "(Welch's t-test, two-sided at 5%):", ""]
  lines += orderings or ["- none yet"]
  lines += ["", "Budgets (a set whose runs the step cap ended, not early stopping, is a reduced budget):", ""]
  lines += budgets or ["- none yet"]
  return "\n".join(lines + ["", data_table()]) + "\n"


def _budget(task: str, rows: list[dict]) -> str:
  """How the final runs of a set ended: at the step cap (a reduced budget) or by early stopping."""
  cap = int(float(rows[0]["train.num_steps"]))
  capped = sum(int(r["steps"]) >= cap for r in rows)
  window = int(float(rows[0].get("task.window") or 0))
  how = (f"reduced budget: {capped} of {len(rows)} final runs ended at the {cap:,}-step cap, not by early stopping"
         if capped else f"early stopping ended all {len(rows)} final runs before the {cap:,}-step cap")
  return f"- {task}: {how}; trained on " + (f"random {window}-frame windows" if window else "whole pieces")


def data_table() -> str:
  """The pieces and frames of each split as the study trains and scores them (task.dedupe on),
  and the sha256 of the shipped file they come from."""
  from gru_jax.lab.tasks import polyphonic  # pylint: disable=g-import-not-at-top

  sums = polyphonic.checksums(polyphonic.DATA_DIR)
  lines = ["| data set | train pieces (frames) | valid | test | gru_jax/lab/tasks/polyphonic_data/ file, sha256 |",
           "|---|---|---|---|---|"]
  for task in PAPER:
    pieces = polyphonic.dedupe(polyphonic.load(task))
    splits = [f"{len(pieces[s])} ({sum(len(r) for r in pieces[s]):,})" for s in ("train", "valid", "test")]
    name = polyphonic.SETS[task][0]
    lines.append(f"| {task} | " + " | ".join(splits) + f" | {name}, {sums[name][:16]}… |")
  return "\n".join(lines)
