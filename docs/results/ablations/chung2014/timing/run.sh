#!/usr/bin/env bash
# A short run of each set at the chung2014 study's settings (GRU 46, reset before, RMSProp at a
# fixed rate, weight noise 0.075, batch 16, valid scored every 250 steps on whole pieces), to
# estimate the study's cost: 1,000 steps each, one after another on an otherwise idle machine.
set -euo pipefail
out=docs/results/ablations/chung2014/timing
: > "$out/timing.txt"
for t in jsb_chorales nottingham musedata piano_midi; do
  window=200; [ "$t" = jsb_chorales ] && window=0
  python -m experiments.train --config=configs/default.py:cell=gru,task=$t --workdir="runs/timing-$t" \
    --config.model.features=46 --config.model.cell_kwargs.reset_after=False --config.opt.name=rmsprop \
    --config.opt.schedule=constant --config.opt.warmup_steps=0 --config.opt.learning_rate=0.002 \
    --config.opt.weight_noise=0.075 --config.task.window=$window --config.train.num_steps=1000 \
    --config.train.eval_every=250 --config.train.checkpoint_every=250 --config.train.log_every=250 2>&1 \
    | grep "this run" >> "$out/timing.txt"
done
