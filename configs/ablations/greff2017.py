"""Greff et al. 2017 ("LSTM: A Search Space Odyssey", arXiv:1503.04069) on JSB Chorales: the
peephole ("vanilla") LSTM against its eight variants, each with its own random search.

Two phases, one command each (docs/results/ablations/run.sh has the published ones):

  # 1. a random search per variant over the hidden size and the learning rate, seed 0, picked on valid
  python -m experiments.ablate --config=configs/ablations/greff2017.py --workdir=runs/greff2017-search --jobs=2
  # 2. each variant's best valid setting with 5 fresh seeds (1..5), Welch's t-test against the vanilla LSTM
  python -m experiments.ablate --config=configs/ablations/greff2017.py --config.phase=final \
    --config.search_dir=runs/greff2017-search --workdir=runs/greff2017 --jobs=2
  python -m experiments.study_table --config=configs/ablations/greff2017.py --root=docs/results/ablations/greff2017

As in the paper (its ranges as secondary sources quote them; the paper's own text was not at
hand): one recurrent layer and a sigmoid read-out per key; the variants V (peephole LSTM), NIG,
NFG, NOG, NIAF, NOAF, NP, CIFG and FGR; hidden sizes log-uniform in [20, 200]; SGD with Nesterov
momentum, no gradient clipping; a separate search for each variant; early stopping on valid;
Welch's t-test of each variant's mean test NLL against the vanilla LSTM's.

Not as in the paper (the README lists these beside the results):
- `trials` draws per variant (the paper: 200), and the comparison is over 5 seeds at each
  variant's best valid draw (the paper compares the test NLL of its best 10% of trials);
- momentum fixed at 0.9 and no input noise (the paper draws momentum 1 - log-U[0.01, 1] and an
  input-noise std U[0, 1]); only the hidden size and the rate are searched;
- minibatches of 16 whole pieces and the NLL per frame (summed over the 88 keys) averaged over the
  batch's frames; so the rates are log-uniform in [1e-4, 1], the paper's [1e-6, 1e-2] moved by
  two decades, about the factor (1 - momentum) * 16 pieces * 60 frames between a per-frame mean
  over a batch and a per-sequence sum with online updates (our reading of the paper's setup);
- a budget of `epochs` passes over the train pieces with a patience of `patience` evaluations,
  one every `eval_every` steps;
- our CIFG is the LSTM with f = 1 - i and no peepholes (gru_jax's `cifg_lstm`), the paper's keeps
  the peepholes; our LSTMs start the forget bias at 1 (the paper does not state its init);
- 88 keys, every frame predicted, the first from a zero input frame (as our chung2014 study).
"""

import math
import os
import zlib

import ml_collections
import numpy as np

VARIANTS = {  # registry name -> the paper's name
  "peephole_lstm": "V", "nig_lstm": "NIG", "nfg_lstm": "NFG", "nog_lstm": "NOG", "niaf_lstm": "NIAF",
  "noaf_lstm": "NOAF", "lstm": "NP", "cifg_lstm": "CIFG", "fgr_lstm": "FGR",
}
VANILLA = "peephole_lstm"
# The paper's findings on the music task, as secondary sources state them (the paper's text was not
# at hand; its abstract: "the forget gate and the output activation function [are] its most critical
# components" and "none of the variants can improve upon the standard LSTM architecture
# significantly"); a reader's notes: NIG, NOG, NIAF "led to a significant reduction in performance
# on speech and handwriting recognition. No significant effect on music modeling"; CIFG and NP
# "no significant effect"; NFG and NOAF "hurt performance significantly" (stated for all tasks).
PAPER = {
  "nig_lstm": "not significant (music)", "nfg_lstm": "worse (all tasks)", "nog_lstm": "not significant (music)",
  "niaf_lstm": "not significant (music)", "noaf_lstm": "worse (all tasks)", "lstm": "not significant (all tasks)",
  "cifg_lstm": "not significant (all tasks)", "fgr_lstm": "not found in the sources read",
}
TASK = "jsb_chorales"
HIDDEN = (20, 200)  # log-uniform, as the paper
RATES = (1e-4, 1.0)  # log-uniform: the paper's [1e-6, 1e-2] moved to our loss (see above)
TRAIN_PIECES = 229  # JSB's train split (tests check it against the data)


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "greff2017"
  c.phase = "search"  # "search" (the draws, seed search_seed) or "final" (each variant's best draw, c.seeds fresh seeds)
  c.search_dir = ""  # phase "final": the workdir of the search phase, whose results.csv picks each variant's draw
  c.cells = ",".join(VARIANTS)
  c.trials = 12  # random draws per variant (the paper: 200)
  c.draw_seed = 2017  # with the variant's name, draws its trials
  c.search_seed = 0
  c.seeds = 5  # final seeds: search_seed + 1 .. search_seed + seeds
  c.momentum = 0.9
  c.batch_size = 16
  c.epochs = 150  # passes over the train pieces: the step budget
  c.eval_every = 45  # steps between evaluations on valid (3 epochs of 16 pieces)
  c.patience = 5  # evaluations without a better valid NLL before a seed stops (15 epochs)
  return c


def draws(study, cell: str) -> list[tuple[int, float]]:
  """`trials` (hidden size, learning rate) pairs, log-uniform in HIDDEN and RATES, the rate
  rounded to 3 significant digits; a separate draw for each variant."""
  rng = np.random.default_rng([study.draw_seed, zlib.crc32(cell.encode())])
  hidden = np.exp(rng.uniform(math.log(HIDDEN[0]), math.log(HIDDEN[1]), study.trials))
  rates = np.exp(rng.uniform(math.log(RATES[0]), math.log(RATES[1]), study.trials))
  return [(int(round(h)), float(f"{r:.3g}")) for h, r in zip(hidden, rates)]


def picked(search_dir: str) -> dict[str, tuple[int, float]]:
  """variant -> (hidden size, learning rate) of its best (lowest) valid NLL in the search's results."""
  from gru_jax.lab import ablation  # pylint: disable=g-import-not-at-top  (the lab extra)

  picks = ablation.search_picks(search_dir, lambda row: row["cell"])
  return {cell: (int(row["model.features"]), float(row["opt.learning_rate"])) for cell, row in picks.items()}


def sweep(study, add):
  if study.phase not in ("search", "final"):
    raise ValueError(f"phase={study.phase!r}; expected 'search' or 'final'")
  unknown = sorted(set(study.cells.split(",")) - set(VARIANTS))
  if unknown:
    raise ValueError(f"cells: {unknown} are not variants of this study; expected some of {list(VARIANTS)}")
  num_steps = study.epochs * math.ceil(TRAIN_PIECES / study.batch_size)
  fixed = {"opt.name": "sgd", "opt.momentum": study.momentum, "opt.nesterov": True, "opt.schedule": "constant",
           "opt.warmup_steps": 0, "opt.clip_norm": 0.0, "train.num_steps": num_steps, "train.eval_every": study.eval_every,
           "train.checkpoint_every": study.eval_every, "train.early_stopping": study.patience,
           "train.batch_size": study.batch_size, "task.window": 0}
  best = picked(study.search_dir) if study.phase == "final" else None
  for cell in study.cells.split(","):
    if study.phase == "search":
      for hidden, rate in draws(study, cell):
        add(cell=cell, task=TASK, **{"model.features": hidden, "opt.learning_rate": rate, **fixed, "seed": study.search_seed})
      continue
    if cell not in best:
      raise ValueError(f"search_dir: no finished run of {cell} in {study.search_dir}/results.csv")
    hidden, rate = best[cell]
    for seed in range(study.search_seed + 1, study.search_seed + 1 + study.seeds):
      add(cell=cell, task=TASK, **{"model.features": hidden, "opt.learning_rate": rate, **fixed, "seed": seed})


def _against_vanilla(values: list[float], vanilla: list[float]) -> str:
  from gru_jax.lab import stats  # pylint: disable=g-import-not-at-top

  if len(values) < 2 or len(vanilla) < 2:
    return "—"
  found, t, p = stats.verdict(values, vanilla, higher_is_better=False)
  return f"{found} (t = {t:.2f}, p = {p:.2g})"


def table(root: str) -> str:
  """Each variant's search (trials done, best valid draw) and final seeds (test and train NLL at the
  best-valid parameters, mean ± std [95% t interval]) from `root`/search and `root`/final, with
  Welch's t-test of its test NLL against the vanilla LSTM's, beside the paper's finding."""
  from gru_jax.lab import ablation, stats  # pylint: disable=g-import-not-at-top  (the lab extra)

  read = lambda phase: ([r for r in ablation.read_csv(os.path.join(root, phase, "results.csv")) if r["status"] == "done"]
                        if os.path.exists(os.path.join(root, phase, "results.csv")) else [])
  search, final = read("search"), read("final")
  picks = ablation.best_valid(search, lambda row: row["cell"])
  tests = {cell: [r["test"] for r in final if r["cell"] == cell] for cell in VARIANTS}
  lines = ["| variant | trials | best valid draw: hidden, rate (valid NLL) | params | seeds | train NLL | test NLL | "
           "test vs V (Welch) | paper, vs V |", "|---|---|---|---|---|---|---|---|---|"]
  for cell, name in VARIANTS.items():
    trials = [r for r in search if r["cell"] == cell]
    best = picks.get(cell)
    draw = f"{int(best['model.features'])}, {float(best['opt.learning_rate']):.3g} ({best['valid']:.2f})" if best else "—"
    mine = [r for r in final if r["cell"] == cell]
    params = f"{mine[0]['params']:,}" if mine else "—"
    versus = "—" if cell == VANILLA else _against_vanilla(tests[cell], tests[VANILLA])
    lines.append(f"| {name} (`{cell}`) | {len(trials)} | {draw} | {params} | {len(mine)} | "
                 f"{stats.mean_std_ci([r['train'] for r in mine])} | {stats.mean_std_ci(tests[cell])} | {versus} | "
                 f"{PAPER.get(cell, 'the baseline')} |")
  lines += ["", "NLL per frame (nats, summed over the 88 keys) at the parameters best on valid; mean ± sample std "
            "[95% Student's t interval] over the final seeds. Welch's t-test, two-sided at 5%, of each variant's test "
            "NLL against V's; \"worse\" is a higher NLL."]
  return "\n".join(lines) + "\n"
