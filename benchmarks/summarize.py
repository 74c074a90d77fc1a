"""The README's performance summary, rendered from a committed results file of benchmarks.speed.

  python -m benchmarks.summarize benchmarks/results/cpu-2026-11-22.json
"""

import json
import sys

OURS = "gru_jax.GRU"


def _row(rows, model, point):
  return next((r for r in rows if r["model"] == model and (r["B"], r["T"], r["D"], r["H"]) == point), None)


def summary(path: str) -> str:
  with open(path) as f:
    result = json.load(f)
  env, rows = result["environment"], result["rows"]
  points = []
  for r in rows:
    point = (r["B"], r["T"], r["D"], r["H"])
    if r["model"] == OURS and point not in points:
      points.append(point)
  lines = [
    f"From `{path}` ({env['device']}, {env['cpu']}, {env['cores']} cores; jax {env['jax']}, flax {env['flax']}, "
    f"torch {env.get('torch', 'n/a')}; {env['date']}; matmul peak measured {env['matmul_peak_gflops']:.0f} GFLOP/s). "
    "Training step = forward + backward + Adam; speed-up = peer's median time / ours, same run.",
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


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python -m benchmarks.summarize RESULTS.json")
  print(summary(sys.argv[1]), end="")
