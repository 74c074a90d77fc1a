#!/usr/bin/env bash
# The exact commands behind docs/results/ablations/: each study run by experiments.ablate into
# runs/<study>, then its results.csv, results.md and plots copied here. Grids reduced to fit the
# 2-core CPU say so in their command (and in the README).
set -euo pipefail
publish() {  # study workdir name under runs/, published folder name
  mkdir -p "docs/results/ablations/$2"
  cp "runs/$1/results.csv" "runs/$1/results.md" "docs/results/ablations/$2/"
  rm -rf "docs/results/ablations/$2/plots" && cp -r "runs/$1/plots" "docs/results/ablations/$2/plots"
}
# Chung et al. 2014 on the four published music sets, one set at a time (2026-12-02, 2-core CPU).
# JSB Chorales at the full protocol: the search from the tree at commit 161dc6b, the final seeds and
# the init variant from this file's commit (the sweep and the jsb_chorales task are the same in both):
for set in jsb_chorales; do
  python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=$set \
    --workdir=runs/chung2014-$set-search --jobs=2
  publish chung2014-$set-search chung2014/$set/search
  python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=$set --config.phase=final \
    --config.search_dir=docs/results/ablations/chung2014/$set/search --workdir=runs/chung2014-$set --jobs=2
  publish chung2014-$set chung2014/$set/final
done
# ... the tanh RNN at its picked rate with Glorot-uniform recurrent kernels (the tanh-gap check):
python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=jsb_chorales --config.phase=final \
  --config.search_dir=docs/results/ablations/chung2014/jsb_chorales/search --config.cells=rnn \
  --config.recurrent_kernel_init=glorot_uniform --workdir=runs/chung2014-jsb_chorales-rnn-glorot --jobs=1
publish chung2014-jsb_chorales-rnn-glorot chung2014/jsb_chorales/rnn_glorot
# Nottingham's search (2026-12-03, 2-core CPU; all 30 runs in one session, from a clone of commit
# 3bd390e: the same sweep and task as this file's commit, whose lab modules moved since): its records (runs/) carry it
# across sessions; the final phase and MuseData and Piano-midi follow. benchmarks/gpu.sh's chung2014
# stage runs all four.
python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=nottingham \
  --workdir=runs/chung2014-nottingham-search --records=docs/results/ablations/chung2014/nottingham/search/runs --jobs=2
publish chung2014-nottingham-search chung2014/nottingham/search
# ... and its final seeds (2026-12-04, 2-core CPU, from a clone of commit b4b3e24, the same sweep and task
# as this file's commit): 15 runs in 3 programs of 5 vmapped seeds; results.csv's wall_time_s: 2,776-2,934 s a
# program, the LSTM's after the other two, so about 1 h 36 min with 2 jobs.
python -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=nottingham --config.phase=final \
  --config.search_dir=docs/results/ablations/chung2014/nottingham/search --workdir=runs/chung2014-nottingham \
  --records=docs/results/ablations/chung2014/nottingham/final/runs --jobs=2
publish chung2014-nottingham chung2014/nottingham/final
python -m experiments.study_table --config=configs/ablations/chung2014.py --root=docs/results/ablations/chung2014  # table.md, the README's table
# Greff et al. 2017 on JSB Chorales: the search phase, started 2026-12-04 (2-core CPU, from a clone of
# commit 76d7b50, the same study file as this one's commit); its finished runs' records carry it
# across sessions; the final phase follows.
python -m experiments.ablate --config=configs/ablations/greff2017.py --workdir=runs/greff2017-search \
  --records=docs/results/ablations/greff2017/search/runs --jobs=1
# Chung et al. 2014 on music21's chorales (2026-11-26, 2-core CPU; the study file at commit be83621, run
# before the four published sets were shipped: `git show be83621:configs/ablations/chung2014.py` is it):
python -m experiments.ablate --config=configs/ablations/chung2014.py --workdir=runs/chung2014-search --jobs=2
publish chung2014-search chung2014/music21_chorales/search
python -m experiments.ablate --config=configs/ablations/chung2014.py --config.phase=final \
  --config.search_dir=runs/chung2014-search --workdir=runs/chung2014 --jobs=2
publish chung2014 chung2014/music21_chorales/final
# Long memory, a CPU slice (2026-11-26): the adding problem at T=100 only, equal width only,
# 2,000 of the published 20,000 steps; 3 seeds as one program per point.
python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory \
  --config.tasks=adding --config.lengths=100 --config.budgets=width --config.max_steps=2000 --jobs=1
publish long_memory long_memory
# GRU vs LSTM at equal parameters, a CPU slice (2026-11-26, commit 407f1e3's study file): 3 of the
# 5 chorales budgets and the 3 character budgets, 3,000 steps each (the study's default).
python -m experiments.ablate --config=configs/ablations/params_accuracy.py --workdir=runs/params_accuracy \
  --config.chorales_budgets=6000,24000,96000 --jobs=1
publish params_accuracy params_accuracy
# ... and the 4x longer check of one character point (commit e0610ca's study file):
python -m experiments.ablate --config=configs/ablations/params_accuracy.py --workdir=runs/params_accuracy_long \
  --config.tasks=char_lm --config.char_lm_budgets=48000 --config.num_steps=12000 --config.eval_every=500 --jobs=1
publish params_accuracy_long params_accuracy/long

# The GRU's design choices and the cost of every cell (2026-11-26, commit e0610ca's study files;
# the defaults: 3 seeds, 1,500 steps; cost: 1 seed, 200 steps):
python -m experiments.ablate --config=configs/ablations/cost.py --workdir=runs/cost --jobs=1
publish cost cost
python -m experiments.ablate --config=configs/ablations/gru_design.py --workdir=runs/gru_design --jobs=1
publish gru_design gru_design
python -m experiments.ablate --config=configs/ablations/classify.py --workdir=runs/classify --jobs=1
publish classify classify

# Every results.md above re-rendered from its results.csv with 95% intervals and Welch's t-test
# orderings (2026-12-02; the runs themselves unchanged):
for study in classify cost gru_design long_memory params_accuracy; do
  python -m experiments.render_results --config=configs/ablations/$study.py --dir=docs/results/ablations/$study
done
python -m experiments.render_results --config=configs/ablations/params_accuracy.py --dir=docs/results/ablations/params_accuracy/long
for phase in search final; do
  python -m experiments.render_results --config=configs/ablations/chung2014.py --dir=docs/results/ablations/chung2014/music21_chorales/$phase
done
