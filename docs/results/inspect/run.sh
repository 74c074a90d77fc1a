#!/usr/bin/env bash
# The README's insight figures (issue 15): fresh and trained tanh RNN, GRU and LSTM on the adding
# problem (T=100), and the gates of a GRU sentiment model on one text. Each config's defaults, seed 0,
# on the 2-core CPU (a few minutes in all). Run from the repository root.
set -euo pipefail
python -m experiments.inspect --cells=rnn,gru,gru:chrono_init=100,lstm --out=docs/results/inspect/init-adding
for cell in rnn gru lstm; do
  python -m experiments.train --config=configs/$cell.py:adding --workdir=runs/inspect/$cell-adding
done
python -m experiments.inspect --compare=runs/inspect/rnn-adding,runs/inspect/gru-adding,runs/inspect/lstm-adding \
  --out=docs/results/inspect/trained-adding
python -m experiments.train --config=configs/gru.py:sentiment --workdir=runs/inspect/gru-sentiment
python -m experiments.inspect --workdir=runs/inspect/gru-sentiment --out=docs/results/inspect/gru-sentiment \
  --text="Amazing! This box of cereal gave me a perfectly balanced breakfast, as all things should be. I only ate half of it but will definitely be buying again!"
