"""Task heads around a recurrent stack, built by name so that a cell is one line of config."""

from typing import Any

import flax.linen as nn
from flax import nnx as flax_nnx
import jax
import jax.numpy as jnp

from gru_jax import layers, specs
from gru_jax import nnx as gj_nnx

# The linen layer of each cell by registry name (`gru_jax.specs.SPECS`).
CELLS: dict[str, type[layers.Recurrent]] = layers.LAYER_CLASSES
HEADS = ("last", "each")
FRONT_ENDS = ("linen", "nnx")
# Computation dtypes (model.dtype): parameters and optimizer state stay float32 either way.
DTYPES = ("float32", "bfloat16")
# model.kernel_init / model.recurrent_kernel_init: initializers by name, each applied per gate block
# ("" keeps the layer's default: LeCun normal input kernels, orthogonal recurrent kernels).
INITIALIZERS = {
  "glorot_normal": jax.nn.initializers.glorot_normal,
  "glorot_uniform": jax.nn.initializers.glorot_uniform,
  "he_normal": jax.nn.initializers.he_normal,
  "he_uniform": jax.nn.initializers.he_uniform,
  "lecun_normal": jax.nn.initializers.lecun_normal,
  "lecun_uniform": jax.nn.initializers.lecun_uniform,
  "orthogonal": jax.nn.initializers.orthogonal,
}


def initializers(kernel_init: str = "", recurrent_kernel_init: str = "", cell: str = "") -> dict[str, Any]:
  """The layer keyword arguments for initializers given by name ("": the layer's default), with
  a clear error naming the config key for an unknown name or a cell without a recurrent kernel."""
  chosen = {}
  for key, name in (("kernel_init", kernel_init), ("recurrent_kernel_init", recurrent_kernel_init)):
    if not name:
      continue
    if name not in INITIALIZERS:
      raise ValueError(f"model.{key}={name!r} is not an initializer; expected '' (the default) or one of {sorted(INITIALIZERS)}")
    chosen[key] = INITIALIZERS[name]()
  if "recurrent_kernel_init" in chosen and cell in CELLS and not CELLS[cell].cell_class.spec_class.has_recurrent_kernel:
    raise ValueError(f"model.recurrent_kernel_init={recurrent_kernel_init!r}: the {cell} cell has no recurrent kernel")
  return chosen


def cell_options(cell: str) -> list[str]:
  """The options a cell takes beyond `features` (for `SequenceModel.cell_kwargs`)."""
  functions = {"gate_fn", "activation_fn"}  # callables: set them on the layers, not in a config
  return sorted(set(specs.options(CELLS[cell].cell_class.spec_class)) - functions)


def matmul_flops(cell: str, batch: int, steps: int, in_features: int, features: int) -> float:
  """Forward matmul FLOPs of one layer and direction of `cell` over a batch: x @ W_x, and h @ W_h
  where the cell has a recurrent kernel. (A training step is counted as 3x this: backward = 2x.
  The SRU's highway matmul, present when in_features != features, is not counted.)"""
  spec_class = CELLS[cell].cell_class.spec_class
  fan_in = in_features + (features if spec_class.has_recurrent_kernel else 0)
  return 2.0 * batch * steps * fan_in * spec_class.num_gates * features


def make_layer(cell: str, features: int, **kwargs) -> layers.Recurrent:
  """The scanned layer of the cell called `cell`, with a clear error for unknown names."""
  if cell not in CELLS:
    raise ValueError(f"model.cell={cell!r} is not a cell; expected one of {sorted(CELLS)}")
  return CELLS[cell](features=features, **kwargs)


def last_valid(ys: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
  """ys [B, T, H] -> [B, H] at each sequence's last valid step (the last step without lengths)."""
  if seq_lengths is None:
    return ys[:, -1]
  index = jnp.clip(seq_lengths - 1, 0, ys.shape[1] - 1)
  return jnp.take_along_axis(ys, index[:, None, None], axis=1)[:, 0]


def _nnx_stack(cell: str, in_features: int, features: int, layer_kwargs: dict, stacking: dict) -> nn.Module:
  """The NNX `Stacked` of the cell's NNX layer, equal to the linen `layers.Stacked` of its linen
  layer with the same keyword arguments, as a linen submodule "rnn"."""
  return flax_nnx.bridge.to_linen(
    gj_nnx.Stacked, gj_nnx.LAYER_CLASSES[cell], in_features, features, **stacking, layer_options=layer_kwargs, name="rnn",
  )


class SequenceModel(nn.Module):
  """A `Stacked` recurrent network with a linear read-out.

  Attributes:
    output_features: width of the read-out (set by the task).
    head: "last" (one output per sequence, at its last valid step) or "each" (one per step).
    cell: a name in CELLS.
    features: hidden size of every layer.
    num_layers, bidirectional, dropout, residual: as in `gru_jax.Stacked`.
    unroll, remat, parallel, recurrent_dropout, zoneout, learn_initial_carry: as in the layers
      (`gru_jax.Recurrent`).
    cell_kwargs: options of the cell (`cell_options(cell)`), e.g. {"reset_after": False}.
    kernel_init, recurrent_kernel_init: initializers of the input and recurrent kernels by name in
      INITIALIZERS, applied per gate block; "" keeps the layer's (LeCun normal, orthogonal).
    input_vocab: for token inputs (integer ids [B, T]; 0 is padding), the number of ids; they are
      embedded into `embed_features` dimensions. None (set by the task) for float inputs.
    embed_features: width of the token embedding.
    dtype: the computation dtype, "float32" or "bfloat16" (mixed precision: bf16 matmuls and
      activations, float32 parameters, optimizer state and outputs, so the loss is float32).
    sequence_axis: split time over this axis of the mesh set by `jax.set_mesh` (sequence
      parallelism, for the cells whose recurrence is linear in the carry; `gru_jax.Recurrent`).
    front_end: "linen" runs the recurrent stack as `gru_jax.layers.Stacked`; "nnx" as
      `gru_jax.nnx.Stacked`, inside this linen model through `flax.nnx.bridge.to_linen`. The
      parameters have the same names and layout either way, so checkpoints load into both.
  """

  output_features: int
  head: str = "last"
  cell: str = "gru"
  features: int = 128
  num_layers: int = 1
  bidirectional: bool = False
  dropout: float = 0.0
  residual: bool = False
  unroll: int | None = None
  remat: bool = False
  parallel: bool | None = None
  recurrent_dropout: float = 0.0
  zoneout: float = 0.0
  learn_initial_carry: bool = False
  cell_kwargs: Any = None
  kernel_init: str = ""
  recurrent_kernel_init: str = ""
  input_vocab: int | None = None
  embed_features: int = 64
  front_end: str = "linen"
  dtype: str = "float32"
  sequence_axis: str | None = None

  def __post_init__(self):
    if self.dtype not in DTYPES:
      raise ValueError(f"model.dtype={self.dtype!r} is not supported; expected one of {list(DTYPES)}")
    if self.head not in HEADS:
      raise ValueError(f"head={self.head!r} is not supported; expected one of {list(HEADS)}")
    if self.front_end not in FRONT_ENDS:
      raise ValueError(f"model.front_end={self.front_end!r} is not a front-end; expected one of {list(FRONT_ENDS)}")
    extra = dict(self.cell_kwargs or {})
    if self.cell in CELLS:
      unknown = sorted(set(extra) - set(cell_options(self.cell)))
      if unknown:
        raise ValueError(
          f"model.cell_kwargs has {unknown}, not options of the {self.cell} cell; expected some of {cell_options(self.cell)}"
        )
    self.template()  # unknown cells and impossible values fail here, at construction
    super().__post_init__()

  @nn.nowrap
  def layer_kwargs(self) -> dict[str, Any]:
    """The keyword arguments of each layer of the stack, the same for its linen and NNX layer
    (`layers.LAYER_CLASSES[cell]`, `nnx.LAYER_CLASSES[cell]`): cell options, layer options, dtype."""
    return dict(
      unroll=self.unroll, remat=self.remat, parallel=self.parallel, recurrent_dropout=self.recurrent_dropout,
      zoneout=self.zoneout, learn_initial_carry=self.learn_initial_carry, sequence_axis=self.sequence_axis,
      dtype=jnp.dtype(self.dtype), **dict(self.cell_kwargs or {}),
      **initializers(self.kernel_init, self.recurrent_kernel_init, self.cell),
    )

  @nn.nowrap
  def template(self) -> layers.Recurrent:
    """The linen layer of each level of the stack."""
    return make_layer(self.cell, self.features, **self.layer_kwargs(), parent=None)

  @nn.compact
  def __call__(self, xs, *, seq_lengths=None, deterministic=True, initial_carry=None, return_carry=False):
    """xs [B, T, D] (or token ids [B, T]) -> [B, output_features] ("last") or [B, T, output_features] ("each").

    initial_carry / return_carry: the per-layer carries of the stack (as in `gru_jax.Stacked`), to
    continue a sequence step by step, e.g. when sampling.
    """
    if self.input_vocab is not None:
      xs = nn.Embed(self.input_vocab, self.embed_features, dtype=jnp.dtype(self.dtype), name="embed")(xs)
    stacking = dict(num_layers=self.num_layers, bidirectional=self.bidirectional, dropout=self.dropout, residual=self.residual)
    if self.front_end == "linen":
      stack = layers.Stacked(self.template(), **stacking, name="rnn")
      rngs = {}
    else:
      stack = _nnx_stack(self.cell, xs.shape[-1], self.features, self.layer_kwargs(), stacking)
      rngs = {"rngs": None if deterministic else flax_nnx.Rngs(dropout=self.make_rng("dropout"))}
    ys, carries = stack(
      xs, seq_lengths=seq_lengths, deterministic=deterministic, initial_carry=initial_carry, return_carry=True, **rngs
    )
    if self.head == "last":
      ys = last_valid(ys, seq_lengths)
    outputs = nn.Dense(self.output_features, dtype=jnp.dtype(self.dtype), name="head")(ys).astype(jnp.float32)
    return (outputs, carries) if return_carry else outputs
