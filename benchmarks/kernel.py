"""The persistent Pallas GRU kernel (gru_jax.kernels.pallas_gru) against our fused scan and cuDNN.

  python -m benchmarks.kernel                    # on a Hopper GPU: the default points, fp32 and bf16
  python -m benchmarks.kernel --quick            # B=8, T=512, D=64, H=128 only, fp32 and bf16
  python -m benchmarks.kernel --points=8x512x64x128 --dtypes=float32 --models=pallas_gru,fused.scan
  python -m benchmarks.kernel --interpret        # anywhere: a tiny point in Mosaic GPU interpret mode
                                                 # (a smoke test of this script; the times mean nothing)

Every model is the same one-layer GRU (reset-after, as cuDNN) trained on mean(y^2): the input
projection x W_x + b in XLA, then the recurrence by
  pallas_gru[...]   `gru_scan`: the forward and reverse persistent kernels, dW_h after the loop;
                    options in brackets: block_b=16, approx_math, no_auto_barriers
                    (`plgpu.CompilerParams(unsafe_no_auto_barriers=True)`)
  fused.scan        `gru_jax.fused.scan` with the layers' unroll on this backend (16 on a GPU):
                    what `gj.GRU` runs today
  torch.nn.GRU      PyTorch's GRU: cuDNN on a GPU (same shapes, same dtype, Adam)
and a training step is forward + backward + Adam (optax / torch.optim), as in benchmarks.speed.
For each point it also checks the kernel against fused.scan on the same parameters (outputs and
gradients, the largest error relative to the largest value) before timing it.

Precision: fp32 arrays with each library's default matmul precision: the kernel's fp32 matmuls are
TF32 wgmma; XLA's follow jax_default_matmul_precision; cuDNN's follow torch.backends.cudnn.allow_tf32
(all recorded). bf16: bf16 operands, fp32 accumulation (the kernel keeps the carry and the gate
arithmetic in fp32).

Flags of benchmarks.speed used here: --quick, --points (BxTxDxH), --models, --repeats, --warmup, --out (path
without extension; default benchmarks/results/gpu-<date>-kernel, or a temporary directory with
--interpret), --keep_memory. Results: <out>.json and <out>.md (device, versions, precision).
"""

import datetime
import functools
import importlib.util
import os
import re
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from benchmarks import report
from benchmarks.speed import environment, interleaved_median_ms, keep_freed_memory, torch_model  # and its flags
from gru_jax import cells, fused
from gru_jax import scan as scan_lib
from gru_jax.kernels import pallas_gru

_DTYPES = flags.DEFINE_list("dtypes", None, "float32 and/or bfloat16 (default: DEFAULT_PLAN's).")
_INTERPRET = flags.DEFINE_bool("interpret", False, "Run the kernel in Mosaic GPU interpret mode (any host; tiny "
                               "default point; the times are meaningless).")
_CHECK = flags.DEFINE_bool("check", True, "Check the kernel against fused.scan at each point before timing.")

# (B, T, D, H), dtype, models. B=8, T=512, H=128 is where cuDNN's persistent kernel beat our fused
# scan 2.2x on an H100 (benchmarks/results/gpu-2026-11-22.md); H=128 is the largest fp32 H whose
# weights fit in shared memory (bf16: 192).
MODELS = ["pallas_gru", "pallas_gru[approx_math,no_auto_barriers]", "fused.scan", "torch.nn.GRU"]
DEFAULT_PLAN = [
  ((8, 512, 64, 128), "float32", MODELS + ["pallas_gru[block_b=16]"]),
  ((1, 512, 64, 128), "float32", MODELS),
  ((64, 512, 128, 128), "float32", MODELS + ["pallas_gru[block_b=16]"]),
  ((8, 2048, 64, 128), "float32", ["pallas_gru", "fused.scan", "torch.nn.GRU"]),
  ((8, 512, 64, 128), "bfloat16", ["pallas_gru", "fused.scan", "torch.nn.GRU"]),
  ((8, 512, 64, 192), "bfloat16", ["pallas_gru", "fused.scan", "torch.nn.GRU"]),
]
# --quick: the point cuDNN won, fp32 and bf16 (a few minutes of a GPU session, compiles included).
QUICK_PLAN = [
  ((8, 512, 64, 128), "float32", MODELS),
  ((8, 512, 64, 128), "bfloat16", ["pallas_gru", "fused.scan", "torch.nn.GRU"]),
]
INTERPRET_PLAN = [((8, 4, 8, 64), "float32", ["pallas_gru", "fused.scan", "torch.nn.GRU"])]


def kernel_options(name: str) -> dict[str, Any]:
  """gru_scan keyword arguments of a model name pallas_gru[...]."""
  match = re.fullmatch(r"pallas_gru(?:\[([a-z_=0-9,]*)\])?", name)
  if not match:
    raise app.UsageError(f"--models: unknown {name!r}; pallas_gru[block_b=N,approx_math,no_auto_barriers], "
                         "fused.scan, torch.nn.GRU")
  options: dict[str, Any] = {}
  params: dict[str, bool] = {}
  for option in filter(None, (match.group(1) or "").split(",")):
    if option.startswith("block_b="):
      options["block_b"] = int(option.split("=")[1])
    elif option == "approx_math":
      params["approx_math"] = True
    elif option == "no_auto_barriers":
      params["unsafe_no_auto_barriers"] = True
    else:
      raise app.UsageError(f"--models: unknown option {option!r} in {name!r}")
  if params:
    options["compiler_params"] = params
  return options


def init_params(key, d: int, h: int) -> dict[str, jax.Array]:
  k = jax.random.split(key, 4)
  u = lambda key, shape, fan_in: jax.random.uniform(key, shape, jnp.float32, -1, 1) / np.sqrt(fan_in)
  return {"w_x": u(k[0], (d, 3 * h), d), "b": u(k[1], (3 * h,), h), "w_h": u(k[2], (h, 3 * h), h),
          "b_hn": u(k[3], (h,), h)}


def recurrence(name: str, interpret: bool) -> Callable:
  """(xp blocks, w_h, b_hn, h0) -> (final, ys) of a JAX model name."""
  if name == "fused.scan":
    unroll = scan_lib.default_unroll()

    def run(xp, w_h, b_hn, h0):
      b = jnp.concatenate([jnp.zeros(2 * b_hn.shape[0], b_hn.dtype), b_hn])
      return fused.scan(cells.gru_gates, lambda h: h, w_h, b, h0, xp, unroll=unroll)

    return run
  options = kernel_options(name)
  return functools.partial(pallas_gru.gru_scan, interpret=True if interpret else None, **options)


def layer(run: Callable, dtype) -> Callable:
  """params, xs [B, T, D] -> ys [T, B, H] (time-major; the loss does not care)."""

  def apply(params, xs):
    p = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    xp = jnp.einsum("btd,dg->tbg", xs.astype(dtype), p["w_x"]) + p["b"]
    h = p["w_h"].shape[0]
    h0 = jnp.zeros((xs.shape[0], h), dtype)
    return run(tuple(jnp.split(xp, 3, axis=-1)), p["w_h"], p["b_hn"], h0)[1]

  return apply


def loss_fn(apply):
  return lambda params, xs: jnp.mean(apply(params, xs).astype(jnp.float32) ** 2)


def jax_model(name: str, dtype: str, interpret: bool):
  def build(b, t, d, h):
    apply = layer(recurrence(name, interpret), jnp.dtype(dtype))
    params = init_params(jax.random.key(1), d, h)
    xs = jax.random.normal(jax.random.key(0), (b, t, d))
    tx = optax.adam(1e-3)

    def train_step(params, opt_state, xs):
      grads = jax.grad(loss_fn(apply))(params, xs)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    start = time.perf_counter()
    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, tx.init(params), xs).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    mem_mb = None if memory is None else (
      memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes) / 2**20
    forward = jax.jit(apply)
    state = {"params": params, "opt": tx.init(params)}

    def run_step():
      state["params"], state["opt"] = compiled(state["params"], state["opt"], xs)
      jax.block_until_ready(state["params"])

    return run_step, lambda: forward(state["params"], xs).block_until_ready(), compile_s, mem_mb, {}

  return build


def outputs_and_gradients(b, t, d, h, dtype: str, name: str, interpret: bool):
  """ys and the gradients of the loss, for one model on the benchmark's parameters and inputs."""
  params = init_params(jax.random.key(1), d, h)
  xs = jax.random.normal(jax.random.key(0), (b, t, d))
  apply = layer(recurrence(name, interpret), jnp.dtype(dtype))
  with_ys = lambda params, xs: (lambda ys: (jnp.mean(ys.astype(jnp.float32) ** 2), ys))(apply(params, xs))
  (_, ys), grads = jax.jit(jax.value_and_grad(with_ys, has_aux=True))(params, xs)
  return ys, grads


@functools.lru_cache(maxsize=4)
def reference(b, t, d, h, dtype: str, interpret: bool):
  return outputs_and_gradients(b, t, d, h, dtype, "fused.scan", interpret)


def check(b, t, d, h, dtype: str, name: str, interpret: bool) -> dict[str, float]:
  """The kernel against fused.scan on the same parameters: the largest error of ys and of each
  gradient, relative to the largest reference value."""
  ours, want = outputs_and_gradients(b, t, d, h, dtype, name, interpret), reference(b, t, d, h, dtype, interpret)
  result = {}
  for what, o, w in (("ys", ours[0], want[0]), ("grads", ours[1], want[1])):
    errors = [float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32))) /
                    max(float(jnp.max(jnp.abs(y.astype(jnp.float32)))), 1e-30))
              for x, y in zip(jax.tree_util.tree_leaves(o), jax.tree_util.tree_leaves(w))]
    result[f"max_rel_err_{what}"] = max(errors)
  return result


def environment_with_precision() -> dict[str, Any]:
  env = environment()
  env["pallas_fp32_matmul"] = "TF32 wgmma (fp32 accumulation)"
  try:
    import torch  # pylint: disable=g-import-not-at-top

    env["torch_cuda_matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    env.setdefault("torch_cudnn_allow_tf32", torch.backends.cudnn.allow_tf32)
  except ImportError:
    pass
  return env


def run(plan, repeats: int, warmup: int, interpret: bool, do_check: bool) -> dict[str, Any]:
  env = environment_with_precision()
  rows = []
  for (b, t, d, h), dtype, names in plan:
    built, timed_names = [], []
    for name in names:
      row = {"model": name, "B": b, "T": t, "D": d, "H": h, "dtype": dtype}
      if name.startswith("pallas_gru"):
        options = kernel_options(name)
        reason = None if interpret else pallas_gru.unsupported_reason(
          b, h, dtype, block_b=options.get("block_b"), check_registers="block_b" not in options)
        if reason is not None:
          rows.append({**row, "skipped": reason})
          print(f"B={b} T={t} D={d} H={h} {dtype} {name}: skipped ({reason})", flush=True)
          continue
        if do_check:
          row.update(check(b, t, d, h, dtype, name, interpret))
      try:
        model = torch_model("gru", dtype)[1] if name == "torch.nn.GRU" else jax_model(name, dtype, interpret)
        built.append((row, model(b, t, d, h)))
        timed_names.append(name)
      except Exception as error:  # pylint: disable=broad-except
        rows.append({**row, "error": f"{type(error).__name__}: {str(error)[:500]}"})
        print(f"B={b} T={t} D={d} H={h} {dtype} {name}: error {type(error).__name__}: {str(error)[:500]}", flush=True)
    if not built:
      continue
    train = interleaved_median_ms([m[0] for _, m in built], repeats, warmup)
    forward = interleaved_median_ms([m[1] for _, m in built], repeats, warmup)
    point_rows = []
    for (row, (_, _, compile_s, mem_mb, extra)), train_ms, forward_ms in zip(built, train, forward):
      row.update(train_ms=train_ms, forward_ms=forward_ms, compile_s=compile_s,
                 **{("torch_peak_mb" if row["model"].startswith("torch") else "xla_memory_mb"): mem_mb}, **extra)
      point_rows.append(row)
      errors = "".join(f", {k} {row[k]:.1e}" for k in ("max_rel_err_ys", "max_rel_err_grads") if k in row)
      print(f"B={b} T={t} D={d} H={h} {dtype} {row['model']}: train {train_ms:.2f} ms, forward {forward_ms:.2f} ms"
            f"{errors}", flush=True)
    for row in point_rows:
      for peer in ("fused.scan", "torch.nn.GRU"):
        match = [r for r in point_rows if r["model"] == peer]
        if match and peer != row["model"]:
          row.setdefault("train_speedup_vs", {})[peer] = match[0]["train_ms"] / row["train_ms"]
          row.setdefault("forward_speedup_vs", {})[peer] = match[0]["forward_ms"] / row["forward_ms"]
    rows.extend(point_rows)
  return {"environment": env, "repeats": repeats, "warmup": warmup, "interleaved": True, "interpret": interpret,
          "rows": rows}


def markdown(result: dict[str, Any]) -> str:
  env = result["environment"]
  versions = ", ".join(f"{k} {env[k]}" for k in ("python", "jax", "flax", "optax", "torch") if k in env)
  fmt = lambda v, spec: "" if v is None else format(v, spec)
  lines = [
    f"# Pallas GRU kernel: {env['device']} ({env['cpu']}, {env['cores']} cores), {env['date']}",
    "",
    f"{versions}. Median of {result['repeats']} calls after {result['warmup']} warm-up calls, timed in rounds that "
    "run every model of a point once. Training step = forward + backward + Adam of a one-layer GRU (input "
    "projection in XLA); speed-up = peer time / this time (above 1: this model is faster), same run."
    + (" **Interpret mode: the kernel ran in Mosaic GPU interpret mode; the times mean nothing.**"
       if result.get("interpret") else ""),
    "",
    f"Precision: kernel fp32 = {env['pallas_fp32_matmul']}; JAX default matmul precision "
    f"{env.get('jax_default_matmul_precision')!r}"
    + (f"; torch.backends.cudnn.allow_tf32={env['torch_cudnn_allow_tf32']}" if "torch_cudnn_allow_tf32" in env else "")
    + (f", cuDNN {env['cudnn']}" if "cudnn" in env else "")
    + (f". XLA_FLAGS: `{env['xla_flags']}`" if env.get("xla_flags") else "") + ". Errors: the kernel against "
    "fused.scan on the same parameters, largest |difference| / largest |value| over ys and over all gradients.",
    "",
    "| B | T | D | H | dtype | model | train ms | forward ms | train speed-up vs fused.scan | vs torch.nn.GRU | "
    "max rel err ys / grads | compile s | memory MB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in result["rows"]:
    head = f"| {r['B']} | {r['T']} | {r['D']} | {r['H']} | {r['dtype']} | {r['model']} |"
    if "skipped" in r or "error" in r:
      lines.append(f"{head} {'skipped: ' + r['skipped'] if 'skipped' in r else 'error: ' + r['error']} |||||||")
      continue
    speedups = r.get("train_speedup_vs", {})
    errors = (f"{r['max_rel_err_ys']:.1e} / {r['max_rel_err_grads']:.1e}" if "max_rel_err_ys" in r else "")
    lines.append(
      f"{head} {r['train_ms']:.2f} | {r['forward_ms']:.2f} | {fmt(speedups.get('fused.scan'), '.2f')} | "
      f"{fmt(speedups.get('torch.nn.GRU'), '.2f')} | {errors} | {fmt(r['compile_s'], '.2f')} | "
      f"{fmt(r.get('xla_memory_mb', r.get('torch_peak_mb')), '.1f')} |"
    )
  lines += [f"- {r['dtype']} B={r['B']} T={r['T']} H={r['H']}: torch ran cuDNN's {r['cudnn_rnn']} RNN algorithm"
            for r in result["rows"] if r.get("cudnn_rnn")]
  return "\n".join(lines) + "\n"


def plan_from_flags(interpret: bool):
  plan = INTERPRET_PLAN if interpret else QUICK_PLAN if flags.FLAGS.quick else DEFAULT_PLAN
  if flags.FLAGS.points:
    points = []
    for p in flags.FLAGS.points:
      parts = p.lower().split("x")
      if len(parts) != 4 or not all(s.isdigit() and int(s) > 0 for s in parts):
        raise app.UsageError(f"--points: {p!r} is not BxTxDxH with positive integers, e.g. 8x512x64x128")
      points.append(tuple(int(s) for s in parts))
    dtypes = _DTYPES.value or ["float32"]
    plan = [(p, dt, MODELS) for p in points for dt in dtypes]
  elif _DTYPES.value:
    plan = [entry for entry in plan if entry[1] in _DTYPES.value]
  for dt in _DTYPES.value or []:
    if dt not in ("float32", "bfloat16"):
      raise app.UsageError(f"--dtypes: {dt!r} is not float32 or bfloat16")
  if flags.FLAGS.models:
    for name in flags.FLAGS.models:
      if name not in ("fused.scan", "torch.nn.GRU"):
        kernel_options(name)
    plan = [(p, dt, list(flags.FLAGS.models)) for p, dt, _ in plan]
  if importlib.util.find_spec("torch") is None:
    plan = [(p, dt, [n for n in names if n != "torch.nn.GRU"]) for p, dt, names in plan]
  return plan


def main(argv):
  del argv
  interpret = _INTERPRET.value
  if not interpret:
    reason = pallas_gru.unsupported_reason(8, 128, jnp.float32)
    if reason is not None:
      sys.exit(f"benchmarks.kernel times the Mosaic GPU kernel and needs a Hopper GPU (H100/H200): {reason}. "
               "For a smoke run of this script anywhere (Mosaic GPU interpret mode, meaningless times): "
               "python -m benchmarks.kernel --interpret")
  plan = plan_from_flags(interpret)
  repeats, warmup = flags.FLAGS.repeats, flags.FLAGS.warmup
  if interpret and "--repeats" not in " ".join(sys.argv):
    repeats, warmup = 1, 0
  malloc = keep_freed_memory() if flags.FLAGS.keep_memory else None
  result = run(plan, repeats, warmup, interpret, _CHECK.value)
  env = result["environment"]
  env["malloc"] = malloc or "default"
  name = f"{env['backend']}-{datetime.date.today().isoformat()}-kernel"
  out = flags.FLAGS.out or (os.path.join(tempfile.mkdtemp(), name) if interpret else
                            os.path.join("benchmarks", "results", name))
  report.write_result(out, result, markdown(result))
  print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
  app.run(main)
