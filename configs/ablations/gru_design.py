"""The GRU's design choices, one ablation each (issue 6): reset after vs before the recurrent
matmul, no reset gate, the minimal gated unit (one gate), minGRU (gates from x only, parallel
scan) and layer normalisation, on the long-memory adding task and the Bach chorales.

  python -m experiments.ablate --config=configs/ablations/gru_design.py --workdir=runs/gru_design

Published in docs/results/ablations/gru_design/ with these defaults (3 seeds, 1,500 steps); the
README's "design choices" section says what it shows and what it does not.
"""

import ml_collections

VARIANTS = {  # label -> (config name, cell options)
  "gru": ("gru", {}),
  "gru_reset_before": ("gru", {"model.cell_kwargs.reset_after": False}),
  "gru_no_reset": ("gru_no_reset", {}),
  "mgu": ("mgu", {}),
  "mingru": ("mingru", {}),
  "gru_layer_norm": ("gru", {"model.cell_kwargs.layer_norm": True}),
}


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "gru_design"
  c.variants = ",".join(VARIANTS)
  c.tasks = "adding,chorales"
  c.adding_length = 100
  c.seeds = 3
  c.num_steps = 1500
  c.features = 64
  return c


def sweep(study, add):
  for task in study.tasks.split(","):
    extra = {"task.seq_len": study.adding_length} if task == "adding" else {}
    for label in study.variants.split(","):
      cell, options = VARIANTS[label]
      for seed in range(study.seeds):
        add(cell=cell, task=task, variant=label, **extra, **options,
            **{"model.features": study.features, "train.num_steps": study.num_steps, "opt.warmup_steps": min(100, study.num_steps // 10), "seed": seed})
