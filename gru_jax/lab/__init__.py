"""The lab: the experiment tooling around the library, which `import gru_jax` never imports.

Training (`train`: `train_and_evaluate(config, workdir)`), its configs (`config`), the tasks and
their data (`tasks`), ablation studies and their plots (`ablation`, `ablation_plots`, `stats`),
insight reports (`insight_report`, `insight_plots`), meshes (`sharding`) and atomic files
(`files`). It needs the `lab` extra (`extras.LAB`).
"""
