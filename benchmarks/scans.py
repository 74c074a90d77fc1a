"""The parallel scans of gru_jax.parallel against the sequential loop: speed and float32 accuracy.

  python -m benchmarks.scans                                   # B=16, H=256, T in 256/1024/4096
  python -m benchmarks.scans --T=4096 --repeats=3 --accuracy=false
  python -m benchmarks.scans --variants=sequential,chunked[16,unroll],chunked[64,custom_vjp]

Speed: the forward and backward pass of sum(h) with respect to the coefficients (a, b), or (log a,
log b) for the scans that take them (`log_space_scan`, `chunked_logs[...]`), jitted, on a_t in
[0.05, 1] and b_t in [0.01, 2] (positive, so that every scan applies) and h0 = 0. The median over
--repeats rounds after --warmup calls (flags of benchmarks.speed, as are --keep_memory and --out),
each round timing every variant once (`speed.interleaved_median_ms`), plus the compile time and
XLA's memory analysis of the compiled step (temporaries).

Variants (DEFAULT_VARIANTS, and GPU_VARIANTS on a GPU): sequential, linear, log_space (the default
chunk of 256, as the layers used it before chunked_scan), log_space[none] (one log-space scan over all T), chunked[C] and chunked_logs[C] (`chunked_scan`,
`chunked_scan_from_logs` with chunk C), with options after the chunk: custom_vjp, unroll (a fully
unrolled inner loop), unroll=K, sequential_carries (the chunk carries by `sequential_scan`).

Accuracy (--accuracy): at T = --accuracy_T, B=4, H=64, each scan in float32 against the float64 loop
on the same float32 inputs, for three kinds of coefficients: minGRU gates (a = 1 - z, b = z g(h~),
pre-activations N(0, 2)), long memory (z = σ(k), k ~ N(-5, 1): a ~ 0.99, the state an average over
hundreds of steps) and signed (the SRU: a = σ(f), b = (1 - a) x~, any sign; linear-space scans
only). The largest error of the states relative to the largest state, and of the gradients of
sum(w ⊙ h) (w ~ N(0, 1)) relative to the largest gradient.

Results go to --out (default benchmarks/results/<backend>-<date>-scans) as JSON and markdown.
"""

import os
import re
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import report
from benchmarks.speed import environment, interleaved_median_ms, keep_freed_memory  # and its flags below
from gru_jax import parallel

_T = flags.DEFINE_list("T", ["256", "1024", "4096"], "Sequence lengths.")
_BATCH = flags.DEFINE_integer("batch", 16, "B.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "H.")
_VARIANTS = flags.DEFINE_string(
  "variants", None, "Scans to time and check, comma-separated (commas inside [] belong to the scan; default: "
  "DEFAULT_VARIANTS, and ACCURACY_VARIANTS for the accuracy).")
_ACCURACY = flags.DEFINE_bool("accuracy", True, "Also measure the float32 errors against a float64 loop.")
_ACCURACY_T = flags.DEFINE_integer("accuracy_T", 4096, "T of the accuracy measurement.")
# From benchmarks.speed: --repeats (timed rounds), --warmup (untimed calls of each scan after
# compiling), --keep_memory (`speed.keep_freed_memory`), --out (path without extension).

DEFAULT_VARIANTS = ["sequential", "linear", "log_space", "chunked[16]", "chunked[64]", "chunked[256]",
                    "chunked[64,custom_vjp]", "chunked[16,unroll]"]
# Added to the default set on a GPU, where the loop's iterations (kernel launches) cost most.
GPU_VARIANTS = ["chunked[32,unroll]", "chunked[16,custom_vjp,unroll]", "chunked[64,unroll=8]",
                "chunked[64,sequential_carries]"]
ACCURACY_VARIANTS = ["sequential", "linear", "log_space", "log_space[none]", "chunked[16]", "chunked[64]",
                     "chunked[256]", "chunked[64,custom_vjp]", "chunked_logs[64]",
                     "chunked_logs[64,custom_vjp]"]  # the last: what minGRU / minLSTM run


def scan_fn(name: str) -> tuple[Callable, bool]:
  """(scan(a, b, h0), whether it takes log a and log b) for a variant name."""
  if name == "sequential":
    return parallel.sequential_scan, False
  if name == "linear":
    return parallel.linear_scan, False
  if name == "log_space":
    return parallel.log_space_scan, True
  if name == "log_space[none]":
    return lambda a, b, h0: parallel.log_space_scan(a, b, h0, chunk=None), True
  match = re.fullmatch(r"(chunked|chunked_logs)\[(\d+)((?:,[a-z_]+(?:=\d+)?)*)\]", name)
  if not match:
    raise app.UsageError(f"unknown scan {name!r}: sequential, linear, log_space, log_space[none], chunked[C,...], "
                         "chunked_logs[C,...]")
  kwargs: dict[str, Any] = {"chunk": int(match.group(2))}
  for option in filter(None, match.group(3).split(",")):
    if option == "custom_vjp":
      kwargs["custom_vjp"] = True
    elif option == "unroll":
      kwargs["unroll"] = True
    elif option.startswith("unroll="):
      kwargs["unroll"] = int(option.split("=")[1])
    elif option == "sequential_carries":
      kwargs["carry_scan"] = parallel.sequential_scan
    else:
      raise app.UsageError(f"{name!r}: unknown option {option!r} (custom_vjp, unroll, unroll=K, sequential_carries)")
  logs = match.group(1) == "chunked_logs"
  fn = parallel.chunked_scan_from_logs if logs else parallel.chunked_scan
  return lambda a, b, h0: fn(a, b, h0, **kwargs), logs


def time_point(t: int, b: int, h: int, names: list[str], repeats: int, warmup: int) -> list[dict[str, Any]]:
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.uniform(0.05, 1.0, size=(t, b, h)), jnp.float32)
  bb = jnp.asarray(rng.uniform(0.01, 2.0, size=(t, b, h)), jnp.float32)
  log_a, log_b = jnp.log(a), jnp.log(bb)
  h0 = jnp.zeros((b, h), jnp.float32)
  calls, rows = [], []
  for name in names:
    scan, logs = scan_fn(name)
    args = (log_a, log_b) if logs else (a, bb)
    step = jax.jit(jax.grad(lambda x, y, scan=scan: jnp.sum(scan(x, y, h0)), argnums=(0, 1)))
    start = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    calls.append(lambda compiled=compiled, args=args: jax.block_until_ready(compiled(*args)))
    rows.append({"scan": name, "B": b, "T": t, "H": h, "log_inputs": logs, "compile_s": compile_s,
                 "xla_temp_mb": None if memory is None else memory.temp_size_in_bytes / 2**20})
  for row, ms in zip(rows, interleaved_median_ms(calls, repeats, warmup)):
    row["train_ms"] = ms
  base = next((r["train_ms"] for r in rows if r["scan"] == "sequential"), None)
  for row in rows:
    row["speedup_vs_sequential"] = None if base is None else base / row["train_ms"]
    print(f"T={t} {row['scan']}: {row['train_ms']:.2f} ms, compile {row['compile_s']:.2f} s", flush=True)
  return rows


def float64_loop(a: np.ndarray, b: np.ndarray, h0: np.ndarray, w: np.ndarray):
  """States and the gradients (da, db) of sum(w ⊙ h), by the loop and its adjoint, in float64."""
  a, b, h0, w = (np.asarray(x, np.float64) for x in (a, b, h0, w))
  hs, state = np.empty(b.shape), h0
  for i in range(len(a)):
    state = a[i] * state + b[i]
    hs[i] = state
  g, grad = np.empty(b.shape), np.zeros_like(h0)
  for i in reversed(range(len(a))):
    grad = w[i] + (a[i + 1] * grad if i + 1 < len(a) else 0.0)
    g[i] = grad
  h_prev = np.concatenate([h0[None], hs[:-1]])
  return hs, g * h_prev, g


def accuracy(t: int, names: list[str]) -> list[dict[str, Any]]:
  rng = np.random.default_rng(1)
  b, h = 4, 64
  shape = (t, b, h)
  sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
  g = lambda x: np.where(x >= 0, x + 0.5, sigmoid(x))
  cases = {}
  k, h_tilde = rng.normal(size=shape) * 2.0, rng.normal(size=shape) * 2.0
  cases["minGRU gates"] = (sigmoid(-k), sigmoid(k) * g(h_tilde))
  k = rng.normal(size=shape) - 5.0
  cases["long memory"] = (sigmoid(-k), sigmoid(k) * g(rng.normal(size=shape)))
  f = sigmoid(rng.normal(size=shape))
  cases["signed (SRU)"] = (f, (1.0 - f) * rng.normal(size=shape))
  h0 = rng.normal(size=(b, h)).astype(np.float32)
  w = rng.normal(size=shape).astype(np.float32)
  rows = []
  for case, (a64, b64) in cases.items():
    positive = bool(np.all(b64 > 0))
    lin = (a64.astype(np.float32), b64.astype(np.float32))
    logs = (np.log(a64).astype(np.float32), np.log(b64).astype(np.float32)) if positive else None
    refs = {False: float64_loop(*lin, h0, w)}
    if positive:  # the log-space inputs round differently: their own reference, gradients w.r.t. log a, log b
      hs, da, db = float64_loop(np.exp(logs[0].astype(np.float64)), np.exp(logs[1].astype(np.float64)), h0, w)
      refs[True] = (hs, da * np.exp(logs[0].astype(np.float64)), db * np.exp(logs[1].astype(np.float64)))
    for name in names:
      scan, takes_logs = scan_fn(name)
      if takes_logs and not positive:
        continue
      args = logs if takes_logs else lin
      def loss(x, y, scan=scan):
        hs = scan(x, y, h0)
        return jnp.sum(w * hs), hs

      fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
      (_, hs), grads = fn(*args)
      ref_hs, *ref_grads = refs[takes_logs]
      grad_error = max(float(np.max(np.abs(np.asarray(gr, np.float64) - rg))) / float(np.max(np.abs(rg)))
                       for gr, rg in zip(grads, ref_grads))
      rows.append({"case": case, "scan": name, "T": t, "B": b, "H": h, "max_abs_h": float(np.max(np.abs(ref_hs))),
                   "h_error": float(np.max(np.abs(np.asarray(hs, np.float64) - ref_hs))) / float(np.max(np.abs(ref_hs))),
                   "grad_error": grad_error, "finite": bool(np.all(np.isfinite(hs)))})
      print(f"accuracy {case} {name}: states {rows[-1]['h_error']:.2e}, gradients {grad_error:.2e}", flush=True)
  return rows


def markdown(result: dict[str, Any]) -> str:
  env = result["environment"]
  versions = ", ".join(f"{k} {env[k]}" for k in ("python", "jax", "jaxlib") if k in env)
  lines = [
    f"# Scans: {env['device']} ({env['cpu']}, {env['cores']} cores), {env['date']}",
    "",
    f"{versions}. fp32. `python -m benchmarks.scans`: the forward and backward pass of sum(h) w.r.t. (a, b) "
    "(log-space scans: w.r.t. (log a, log b)), jitted; median of "
    f"{result['repeats']} rounds after {result['warmup']} warm-up calls, each round timing every scan once. "
    "Speed-up = the sequential loop's time / this time, same run. XLA temp: the compiled step's temporaries. "
    f"Memory allocator: {env.get('malloc', 'default')}."
    + (f" Load average (1/5/15 min) at the start {'/'.join(f'{x:.1f}' for x in env['load_average_start'])}, at the end "
       f"{'/'.join(f'{x:.1f}' for x in env['load_average_end'])} (other processes on the machine)."
       if "load_average_end" in env else "")
    + (f" XLA_FLAGS: `{env['xla_flags']}`." if env.get("xla_flags") else ""),
    "",
    "| B | T | H | scan | fwd+bwd ms | speed-up vs sequential | compile s | XLA temp MB |",
    "|---|---|---|---|---|---|---|---|",
  ]
  fmt = lambda v, spec: "" if v is None else format(v, spec)
  for r in result["rows"]:
    lines.append(f"| {r['B']} | {r['T']} | {r['H']} | {r['scan']} | {r['train_ms']:.2f} | "
                 f"{fmt(r['speedup_vs_sequential'], '.2f')}x | {r['compile_s']:.2f} | {fmt(r['xla_temp_mb'], '.1f')} |")
  if result.get("accuracy"):
    acc = result["accuracy"]
    cases = list(dict.fromkeys(r["case"] for r in acc))
    scans = list(dict.fromkeys(r["scan"] for r in acc))
    cell = {(r["case"], r["scan"]): r for r in acc}
    lines += [
      "",
      f"Accuracy: float32 scans against the float64 loop on the same float32 inputs, T={acc[0]['T']}, "
      f"B={acc[0]['B']}, H={acc[0]['H']}: max |error| of the states / max |h|, and of the gradients of "
      "sum(w ⊙ h) / max |gradient| (log-space scans: gradients w.r.t. log a, log b; not run on signed b). "
      "Largest state per case: " + ", ".join(f"{c} {next(r['max_abs_h'] for r in acc if r['case'] == c):.3g}"
                                            for c in cases) + ".",
      "",
      "| scan | " + " | ".join(f"{c}: states / gradients" for c in cases) + " |",
      "|---|" + "---|" * len(cases),
    ]
    for s in scans:
      entries = []
      for c in cases:
        r = cell.get((c, s))
        entries.append("n/a" if r is None else f"{r['h_error']:.1e} / {r['grad_error']:.1e}" + ("" if r["finite"] else " (not finite)"))
      lines.append(f"| {s} | " + " | ".join(entries) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  names = re.findall(r"[^,\[\]]+(?:\[[^\]]*\])?", _VARIANTS.value) if _VARIANTS.value else (
    DEFAULT_VARIANTS + (GPU_VARIANTS if jax.default_backend() == "gpu" else []))
  for name in names:
    scan_fn(name)  # unknown names fail before any timing
  repeats, warmup = flags.FLAGS.repeats, flags.FLAGS.warmup
  malloc = keep_freed_memory() if flags.FLAGS.keep_memory else None
  env = environment()
  env["malloc"] = malloc or "default"
  env["load_average_start"] = list(os.getloadavg())  # 1, 5, 15 min: other processes sharing the machine
  result: dict[str, Any] = {"environment": env, "repeats": repeats, "warmup": warmup, "rows": []}
  if _ACCURACY.value:
    result["accuracy"] = accuracy(_ACCURACY_T.value, names if _VARIANTS.value else ACCURACY_VARIANTS)
  for t in (int(x) for x in _T.value):
    result["rows"] += time_point(t, _BATCH.value, _HIDDEN.value, names, repeats, warmup)
  env["load_average_end"] = list(os.getloadavg())
  out = flags.FLAGS.out or os.path.join("benchmarks", "results", f"{env['backend']}-{env['date']}-scans")
  report.write_result(out, result, markdown(result))


if __name__ == "__main__":
  app.run(main)
