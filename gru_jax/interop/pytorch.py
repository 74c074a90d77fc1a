"""PyTorch <-> gru_jax: torch.nn.GRU, LSTM and RNN with their weights and carries.

`from_torch(m)` returns `(module, variables)`: a `Stacked` of the matching gru_jax layer (with
`time_major = not m.batch_first`) whose outputs equal torch's. PyTorch keeps an input and a
recurrent bias per gate; gru_jax folds each pair into one `bias`, except the GRU's b_hn, which
sits inside r ⊙ (W_hn h + b_hn) and is kept as `recurrent_bias_n`. `to_torch` goes back.

Carries: torch's h_n is [num_layers * num_directions, ..., H] (and (h_n, c_n) for LSTM);
gru_jax's is one carry per layer, a (forward, backward) pair when bidirectional, LSTM carries
(c, h). `carry_from_torch` and `carry_to_torch` convert between the two.
"""

from typing import Any

import jax.numpy as jnp
import numpy as np

from gru_jax import layers
from gru_jax.interop import common, linen_nnx

_INSTALL = "pip install torch==2.13.0 (the CPU build; any torch with nn.GRU works)"


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"gru_jax.interop's torch converters need PyTorch: {_INSTALL}") from e
  return torch


def _kind(torch_module) -> str:
  nn = _torch().nn
  for kind, cls in (("gru", nn.GRU), ("lstm", nn.LSTM), ("rnn", nn.RNN)):
    if isinstance(torch_module, cls):
      return kind
  raise TypeError(f"from_torch: expected torch.nn.GRU, LSTM or RNN; got {type(torch_module).__name__}")


def _directions(bidirectional: bool) -> list[tuple[str, str | None]]:
  """(torch parameter suffix, gru_jax sub-module name) per direction."""
  return [("", "forward_rnn"), ("_reverse", "backward_rnn")] if bidirectional else [("", None)]


def from_torch(torch_module, front_end: str = "linen"):
  """Converts a torch.nn.GRU / LSTM / RNN to a gru_jax module with equal outputs.

  Any num_layers, bidirectional, batch_first, bias and (RNN) nonlinearity; `dropout` becomes the
  Stacked dropout between layers. LSTM `proj_size` is not supported.

  Returns: with front_end="linen", `(module, variables)`, a `gru_jax.layers.Stacked` and its
  variables; with front_end="nnx", a `gru_jax.nnx.Stacked` holding the parameters.
  """
  common.check_front_end("from_torch", front_end)
  kind = _kind(torch_module)
  m = torch_module
  shared = dict(features=m.hidden_size, use_bias=m.bias, time_major=not m.batch_first)
  if kind == "gru":
    template = layers.GRU(**shared)
  elif kind == "lstm":
    if m.proj_size:
      raise ValueError(f"from_torch: LSTM proj_size={m.proj_size} is not supported; only proj_size=0")
    template = layers.LSTM(**shared, forget_bias=0.0)
  else:
    template = layers.SimpleRNN(**shared, activation=m.nonlinearity)
  module = layers.Stacked(template, num_layers=m.num_layers, bidirectional=m.bidirectional, dropout=m.dropout)

  state = {k: v.detach().cpu().double().numpy() for k, v in m.state_dict().items()}
  hidden = m.hidden_size
  params: dict[str, Any] = {}
  for layer in range(m.num_layers):
    for suffix, sub in _directions(m.bidirectional):
      get = lambda name: state.get(f"{name}_l{layer}{suffix}")
      p = {
        "input_kernel": get("weight_ih").T,
        "recurrent_kernel": get("weight_hh").T,
      }
      if m.bias:
        b_ih, b_hh = get("bias_ih"), get("bias_hh")
        if kind == "gru":
          p["bias"], p["recurrent_bias_n"] = common.fold_gru_biases(b_ih, b_hh, hidden)
        else:
          p["bias"] = b_ih + b_hh
      p = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}
      if sub is None:
        params[f"layer_{layer}"] = p
      else:
        params.setdefault(f"layer_{layer}", {})[sub] = p
  return linen_nnx.on_front_end(front_end, module, params)


def _unpack(module) -> tuple[layers.Recurrent, int, bool, float]:
  """(template layer, num_layers, bidirectional, dropout) of a module to_torch can convert."""
  if isinstance(module, layers.Stacked):
    if module.residual:
      raise ValueError("to_torch: residual=True has no torch.nn equivalent")
    return module.layer, module.num_layers, module.bidirectional, module.dropout
  if isinstance(module, layers.Recurrent):
    return module, 1, False, 0.0
  raise TypeError(f"to_torch: expected a gru_jax GRU, LSTM, SimpleRNN or Stacked of one; got {type(module).__name__}")


def _torch_kind(template: layers.Recurrent) -> str:
  """"gru" / "lstm" / "rnn" when torch.nn holds `template` exactly; else a one-line ValueError."""
  kind = common.exact_kind("to_torch", template, "torch.nn")
  common.refuse("to_torch", type(template).__name__, [
    (getattr(template, "layer_norm", False), "layer_norm=True (torch.nn has no layer-normalised cells)"),
    (kind != "rnn" and template.make_cell(parent=None).spec().custom_functions,
     "gate_fn or activation_fn other than sigmoid and tanh (torch.nn's cells have only those)"),
    (kind == "gru" and not template.reset_after, "reset_after=False (torch.nn.GRU has only the reset_after=True form)"),
    (kind == "rnn" and getattr(template, "activation", None) not in ("tanh", "relu"),
     f"activation={getattr(template, 'activation', None)!r} (torch.nn.RNN has tanh and relu)"),
    (kind == "rnn" and template.activation_fn is not None,
     f"activation_fn={template.activation_fn!r} (torch.nn.RNN takes activation='tanh' or 'relu' by name)"),
    (kind == "rnn" and template.residual, "residual=True (torch.nn.RNN has no residual connection)"),
    (template.learn_initial_carry, "learn_initial_carry=True (torch.nn modules have no learned initial carry)"),
    (template.recurrent_dropout, f"recurrent_dropout={template.recurrent_dropout} (torch.nn has no recurrent dropout)"),
    (template.zoneout, f"zoneout={template.zoneout} (torch.nn has no zoneout; its evaluation output differs)"),
  ])
  return kind


def to_torch(module, variables: dict[str, Any] | None = None):
  """Builds the torch.nn.GRU / LSTM / RNN equal to a gru_jax layer or `Stacked` of layers.

  Only what torch.nn holds exactly converts: GRU (reset_after=True), LSTM and SimpleRNN (tanh or
  relu), without layer norm, learned initial carries, recurrent dropout or zoneout; every other
  variant or option raises a one-line ValueError naming it. (Initialisation options such as
  chrono_init or forget_bias only change the starting values and convert.) An NNX module
  (`gru_jax.nnx`) converts without `variables`. Returns a float32 torch module in eval mode.
  """
  torch = _torch()
  module, params = linen_nnx.as_linen("to_torch", module, variables)
  template, num_layers, bidirectional, dropout = _unpack(module)
  kind = _torch_kind(template)
  hidden = template.features
  stacked = isinstance(module, layers.Stacked)
  input_size = common.in_features("to_torch", params)
  kwargs = dict(
    input_size=input_size, hidden_size=hidden, num_layers=num_layers, bias=template.use_bias,
    batch_first=not template.time_major, dropout=dropout, bidirectional=bidirectional,
  )
  if kind == "gru":
    torch_module = torch.nn.GRU(**kwargs)
  elif kind == "lstm":
    torch_module = torch.nn.LSTM(**kwargs)
  else:
    torch_module = torch.nn.RNN(**kwargs, nonlinearity=template.activation)

  state = {}
  for layer in range(num_layers):
    for suffix, sub in _directions(bidirectional):
      p = params[f"layer_{layer}"] if stacked else params
      p = {k: np.asarray(v, np.float64) for k, v in (p[sub] if sub else p).items()}
      state[f"weight_ih_l{layer}{suffix}"] = p["input_kernel"].T
      state[f"weight_hh_l{layer}{suffix}"] = p["recurrent_kernel"].T
      if template.use_bias:
        if kind == "gru":
          b_ih, b_hh = common.unfold_gru_biases(p["bias"], p["recurrent_bias_n"], hidden)
        else:
          b_ih, b_hh = p["bias"], np.zeros_like(p["bias"])
        state[f"bias_ih_l{layer}{suffix}"], state[f"bias_hh_l{layer}{suffix}"] = b_ih, b_hh
  torch_module.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in state.items()})
  return torch_module.eval()


def carry_from_torch(torch_module, hx) -> tuple:
  """torch's h_0 (or (h_0, c_0) for LSTM) -> the per-layer carries `Stacked` takes."""
  kind = _kind(torch_module)
  dirs = 2 if torch_module.bidirectional else 1
  to_np = lambda t: jnp.asarray(t.detach().cpu().numpy())
  h, c = (hx if kind == "lstm" else (hx, None))
  carries = []
  for layer in range(torch_module.num_layers):
    per_dir = []
    for d in range(dirs):
      k = layer * dirs + d
      per_dir.append((to_np(c[k]), to_np(h[k])) if kind == "lstm" else to_np(h[k]))
    carries.append(tuple(per_dir) if dirs == 2 else per_dir[0])
  return tuple(carries)


def carry_to_torch(torch_module, carries):
  """The per-layer carries of `Stacked` -> torch's h_n (or (h_n, c_n) for LSTM)."""
  torch = _torch()
  kind = _kind(torch_module)
  flat = [d for c in carries for d in (c if torch_module.bidirectional else (c,))]
  tensor = lambda xs: torch.from_numpy(np.stack([np.asarray(x) for x in xs]))
  if kind == "lstm":
    return tensor([h for _, h in flat]), tensor([c for c, _ in flat])
  return tensor(flat)
