"""A run's checkpoints: orbax, one folder per step under workdir/checkpoints/, checked against the
model before anything is read (experiment tooling)."""

import os

import jax
import numpy as np

from gru_jax.lab import extras

try:
  import orbax.checkpoint as ocp
except ImportError as e:
  raise extras.lab_missing("gru_jax.lab.checkpoints", e) from e


class CheckpointError(RuntimeError):
  """The workdir's checkpoint cannot be restored into this run's model."""


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(
    os.path.join(os.path.abspath(workdir), "checkpoints"), options=options, item_handlers=ocp.StandardCheckpointHandler()
  )


def leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
  """{"params/rnn/layer_0/bias": shape, ...} for a state or a checkpoint's metadata tree."""
  name = lambda k: str(next(getattr(k, a) for a in ("key", "name", "idx") if hasattr(k, a)))
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  return {"/".join(name(k) for k in path): tuple(np.shape(leaf)) for path, leaf in flat}


def mismatches(stored: dict, wanted: dict, most: int = 3) -> list[str]:
  problems = [f"{k}: checkpoint {stored[k]}, model {wanted[k]}" for k in sorted(set(stored) & set(wanted)) if stored[k] != wanted[k]]
  problems += [f"{k}: not in the checkpoint" for k in sorted(set(wanted) - set(stored))]
  problems += [f"{k}: not in the model" for k in sorted(set(stored) - set(wanted))]
  problems.sort(key=lambda p: not p.startswith("state/params/"))  # the model's own arrays first
  return problems[:most] + ([f"and {len(problems) - most} more"] if len(problems) > most else [])


def restore(manager: ocp.CheckpointManager, state, step: int):
  """Restores `step` into the structure of `state`; anything that does not fit is a CheckpointError.

  Shapes are compared against the checkpoint's metadata first, so a checkpoint of another model
  is named as such and never partly read.
  """
  where = os.path.join(str(manager.directory), str(step))
  advice = "use another --workdir, or remove that checkpoint to start over"
  try:
    metadata = manager.item_metadata(step)
    stored = leaf_shapes(getattr(metadata, "tree", metadata))
  except Exception as e:  # orbax raises several types for missing or unreadable files
    raise CheckpointError(f"the checkpoint {where} is damaged ({type(e).__name__}: {_first_sentence(e)}); {advice}") from e
  problems = mismatches(stored, leaf_shapes(state))
  if not stored or problems:
    detail = "; ".join(problems) or "it holds no arrays"
    raise CheckpointError(f"the checkpoint {where} was written by another model or optimizer ({detail}); {advice}")
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(state))
  except Exception as e:
    raise CheckpointError(f"the checkpoint {where} is damaged ({type(e).__name__}: {_first_sentence(e)}); {advice}") from e


def _first_sentence(e: Exception) -> str:
  text = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return text.split(". ")[0]
