"""The optional parts of gru_jax and how to install them.

The library (cells, layers, scan, interop, insight) needs jax, flax, optax and chex only. The
experiment tooling (`gru_jax.lab.config`, `gru_jax.lab.train`, `gru_jax.lab.ablation`, `gru_jax.lab.ablation_plots`,
`gru_jax.lab.insight_plots`) also needs the `lab` extra (ml-collections, orbax, TensorBoard writer,
tqdm, matplotlib); the real-data tasks need the `data` extra, which `lab` includes.
"""

LAB = "pip install 'gru_jax[lab]' (in a checkout: pip install -e '.[lab]')"


def lab_missing(module: str, error: ImportError) -> ImportError:
  """The ImportError raised when a tooling module is imported without the lab extra."""
  return ImportError(f"{module} is experiment tooling and needs the lab extra: {LAB}; missing {error.name or error}")
