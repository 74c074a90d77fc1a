#!/usr/bin/env bash
# The exact commands behind docs/results/ablations/: reduced grids that fit a 2-core CPU, each run
# by experiments.ablate into runs/<study>, then its results.csv, results.md and plots copied here.
set -euo pipefail
publish() {  # study name
  mkdir -p "docs/results/ablations/$1"
  cp "runs/$1/results.csv" "runs/$1/results.md" "docs/results/ablations/$1/"
  rm -rf "docs/results/ablations/$1/plots" && cp -r "runs/$1/plots" "docs/results/ablations/$1/plots"
}
python -m experiments.ablate --config=configs/ablations/gru_design.py --workdir=runs/gru_design \
  --config.seeds=2 --config.num_steps=600 --jobs=2
publish gru_design
# long_memory and chorales below ran on 2026-11-22 with the study files of commit daa3402 (before the
# valid split; `git show daa3402:configs/ablations/long_memory.py`); the current files take other keys.
python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory \
  --config.tasks=adding --config.lengths=50,200 --config.seeds=2 --config.num_steps=600 --jobs=2
publish long_memory
python -m experiments.ablate --config=configs/ablations/chorales.py --workdir=runs/chorales \
  --config.seeds=2 --jobs=2
publish chorales
python -m experiments.ablate --config=configs/ablations/classify.py --workdir=runs/classify \
  --config.seeds=2 --jobs=2
publish classify
python -m experiments.ablate --config=configs/ablations/cost.py --workdir=runs/cost
publish cost
