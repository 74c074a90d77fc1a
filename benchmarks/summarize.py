"""The README's performance summaries, rendered from committed results files of benchmarks.speed.

  python -m benchmarks.summarize benchmarks/results/cpu-2026-11-22.json
  python -m benchmarks.summarize benchmarks/results/gpu-2026-11-22-parallel.json   # a --parallel_cells run
"""

import json
import sys

OURS = "gru_jax.GRU"


def _row(rows, model, point):
  return next((r for r in rows if r["model"] == model and (r["B"], r["T"], r["D"], r["H"]) == point), None)


def _header(path, env) -> str:
  return (
    f"From `{path}` ({env['device']}, {env['cpu']}, {env['cores']} cores; jax {env['jax']}, flax {env['flax']}, "
    f"torch {env.get('torch', 'n/a')}; {env['date']}; matmul peak measured {env['matmul_peak_gflops']:.0f} GFLOP/s). "
    "Training step = forward + backward + Adam; speed-up = peer's median time / ours, same run."
  )


def summary(path: str) -> str:
  with open(path) as f:
    result = json.load(f)
  env, rows = result["environment"], result["rows"]
  if any(r["model"] == "gru_jax.MinGRU" for r in rows):
    return parallel_summary(path, env, rows)
  if any(r["model"] == "gru_jax.GRU[layer_norm]" for r in rows):
    return options_summary(path, env, rows)
  points = []
  for r in rows:
    point = (r["B"], r["T"], r["D"], r["H"])
    if r["model"] == OURS and point not in points:
      points.append(point)
  lines = [
    _header(path, env),
    "",
    "| B, T, D, H | ours train ms | vs flax.linen.RNN(GRUCell) | vs torch.nn.GRU | vs our autodiff path | % of matmul peak | XLA MB (remat) |",
    "|---|---|---|---|---|---|---|",
  ]
  for point in points:
    ours = _row(rows, OURS, point)
    ratio = lambda peer: f"{ours['train_speedup_vs'][peer]:.2f}x" if peer in ours.get("train_speedup_vs", {}) else ""
    remat = _row(rows, "gru_jax.GRU[remat]", point)
    memory = f"{ours['xla_memory_mb']:.0f}" + (f" ({remat['xla_memory_mb']:.0f})" if remat else "")
    lines.append(
      f"| {', '.join(map(str, point))} | {ours['train_ms']:.1f} | {ratio('flax.RNN(GRUCell)')} | {ratio('torch.nn.GRU')} | "
      f"{ratio('gru_jax.GRU[autodiff]')} | {100 * ours['train_peak_fraction']:.0f}% | {memory} |"
    )
  return "\n".join(lines) + "\n"


def parallel_summary(path, env, rows) -> str:
  """The parallel-scan cells' training step against our sequential GRU, per sequence length."""
  points = sorted({(r["B"], r["T"], r["D"], r["H"]) for r in rows}, key=lambda p: p[1])
  lines = [
    _header(path, env),
    "",
    "| B, T, D, H | GRU train ms | minGRU (parallel) speed-up vs GRU | minGRU parallel vs its sequential path "
    "| minLSTM vs GRU | SRU (parallel) vs GRU | XLA MB: GRU / minGRU |",
    "|---|---|---|---|---|---|---|",
  ]
  for point in points:
    gru, mingru = _row(rows, OURS, point), _row(rows, "gru_jax.MinGRU", point)
    speedup = lambda name, peer: f"{_row(rows, name, point)['train_speedup_vs'][peer]:.1f}x"
    lines.append(
      f"| {', '.join(map(str, point))} | {gru['train_ms']:.1f} | {speedup('gru_jax.MinGRU', OURS)} | "
      f"{speedup('gru_jax.MinGRU', 'gru_jax.MinGRU[sequential]')} | {speedup('gru_jax.MinLSTM', OURS)} | "
      f"{speedup('gru_jax.SRU', OURS)} | {gru['xla_memory_mb']:.0f} / {mingru['xla_memory_mb']:.0f} |"
    )
  return "\n".join(lines) + "\n"


def options_summary(path, env, rows) -> str:
  """Each option's training step as a multiple of the plain cell's (1.00x: as fast), on the fast
  path and on the autodiff path, per point."""
  points = []
  for r in rows:
    if (r["B"], r["T"], r["D"], r["H"]) not in points:
      points.append((r["B"], r["T"], r["D"], r["H"]))
  options = [("gru_jax.GRU", "layer_norm"), ("gru_jax.GRU", "recurrent_dropout"), ("gru_jax.GRU", "zoneout"),
             ("gru_jax.LSTM", "layer_norm")]
  lines = [
    _header(path, env).replace("speed-up = peer's median time / ours, same run.",
                               "each cell: the option's median time / the plain cell's, same run (above 1: slower); "
                               f"memory allocator: {env.get('malloc', 'default')}."),
    "",
    "| B, T, D, H | GRU train ms | " + " | ".join(f"{m[8:]} {o}: fast / autodiff" for m, o in options) + " |",
    "|---|---|" + "---|" * len(options),
  ]
  for point in points:
    cells = []
    for model, option in options:
      base = _row(rows, model, point)["train_ms"]
      fast, slow = _row(rows, f"{model}[{option}]", point), _row(rows, f"{model}[{option},autodiff]", point)
      cells.append(f"{fast['train_ms'] / base:.2f}x / {slow['train_ms'] / base:.2f}x")
    lines.append(f"| {', '.join(map(str, point))} | {_row(rows, OURS, point)['train_ms']:.1f} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python -m benchmarks.summarize RESULTS.json")
  print(summary(sys.argv[1]), end="")
