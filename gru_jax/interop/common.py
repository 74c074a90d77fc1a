"""What every converter of `gru_jax.interop` shares: refusals, front ends, widths and the GRU's biases."""

from typing import Any

import numpy as np

from gru_jax import layers

# The gru_jax layers torch.nn and Keras hold exactly, by exact type (a subclass such as PeepholeLSTM
# adds parameters or equations they lack).
EXACT_KINDS = {layers.GRU: "gru", layers.LSTM: "lstm", layers.SimpleRNN: "rnn"}
FRONT_ENDS = ("linen", "nnx")


def refuse(owner: str, name: str, refusals: list[tuple[Any, str]]) -> None:
  """Raises `ValueError("{owner}: {name} with {why}")` for the first `(refused, why)` that holds."""
  for refused, why in refusals:
    if refused:
      raise ValueError(f"{owner}: {name} with {why}")


def exact_kind(owner: str, layer, peer: str) -> str:
  """"gru" / "lstm" / "rnn" for a layer `peer` holds exactly; else a ValueError naming it."""
  kind = EXACT_KINDS.get(type(layer))
  if kind is None:
    raise ValueError(f"{owner}: {type(layer).__name__} has no {peer} equivalent; only GRU, LSTM and SimpleRNN convert")
  return kind


def check_front_end(owner: str, front_end: str) -> None:
  if front_end not in FRONT_ENDS:
    raise ValueError(f"{owner}: front_end must be 'linen' or 'nnx'; got {front_end!r}")


def in_features(owner: str, params: dict[str, Any]) -> int:
  """The input width of a layer's, Bidirectional's or Stacked's params (the first input kernel's rows)."""
  while "input_kernel" not in params:
    params = params.get("layer_0", params.get("forward_rnn"))
    if params is None:
      raise ValueError(f"{owner}: the variables hold no input_kernel")
  return int(params["input_kernel"].shape[0])


def fold_gru_biases(b_in: np.ndarray, b_rec: np.ndarray, hidden: int) -> tuple[np.ndarray, np.ndarray]:
  """A reset-after GRU's input and recurrent biases (r, z, n blocks) -> gru_jax's `(bias,
  recurrent_bias_n)`: the r and z blocks add; b_hn stays apart, inside r ⊙ (W_hn h + b_hn)."""
  return b_in + np.concatenate([b_rec[: 2 * hidden], np.zeros(hidden)]), b_rec[2 * hidden :]


def unfold_gru_biases(bias: np.ndarray, recurrent_bias_n: np.ndarray, hidden: int) -> tuple[np.ndarray, np.ndarray]:
  """The inverse of `fold_gru_biases`: the input bias is `bias`, the recurrent one zero but for b_hn."""
  return bias, np.concatenate([np.zeros(2 * hidden, bias.dtype), recurrent_bias_n])
