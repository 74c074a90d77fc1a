"""PNG plots of `gru_jax.insight`'s measurements (matplotlib, the `lab` extra)."""

import os
from typing import Sequence

import numpy as np

from gru_jax.lab import extras

try:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
except ImportError as e:  # pragma: no cover - the lab extra installs it
  raise extras.lab_missing("gru_jax.lab.insight_plots", e) from e


def curves(series: dict[str, np.ndarray], path: str, *, title: str, xlabel: str, ylabel: str, log: bool = True) -> str:
  """One line per entry of `series` (label -> values over t = 1, 2, ...), on a log y axis."""
  fig, ax = plt.subplots(figsize=(7, 4))
  for label, values in series.items():
    values = np.asarray(values, np.float64)
    ax.plot(np.arange(1, len(values) + 1), values, label=label)
  if log:
    ax.set_yscale("log")
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def gate_heatmap(gates: dict[str, np.ndarray], path: str, *, title: str, tokens: Sequence[str] | None = None) -> str:
  """For one sequence: a heatmap per gate (units x steps, values in [0, 1]) and, on top, the mean
  share of the state each step writes anew (1 - keep), with the tokens on the time axis."""
  names = [n for n in gates if n != "keep"]
  rows = len(names) + ("keep" in gates)
  steps = next(iter(gates.values())).shape[0]
  fig, axes = plt.subplots(rows, 1, figsize=(max(6, 0.32 * steps + 2), 1.6 + 1.9 * rows), squeeze=False)
  axes = axes[:, 0]
  row = 0
  if "keep" in gates:
    write = 1.0 - np.asarray(gates["keep"]).mean(axis=-1)
    axes[0].bar(np.arange(steps), write, color="tab:orange")
    axes[0].set(ylabel="written\n(1 - keep)", xlim=(-0.5, steps - 0.5), ylim=(0, 1))
    row = 1
  for ax, name in zip(axes[row:], names):
    image = ax.imshow(np.asarray(gates[name]).T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set(ylabel=f"{name}\n(unit)")
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
  for ax in axes:
    if tokens is not None:
      ax.set_xticks(np.arange(steps))
      ax.set_xticklabels(tokens, rotation=70, fontsize=8)
    else:
      ax.set_xlabel("step")
  axes[0].set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def write_index(folder: str, title: str, sections: list[tuple[str, str]]) -> str:
  """index.md in `folder`: a title, then (heading, markdown body) sections; images are referenced
  by their names relative to the folder."""
  lines = [f"# {title}", ""]
  for heading, body in sections:
    lines += [f"## {heading}", "", body.rstrip(), ""]
  path = os.path.join(folder, "index.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path
