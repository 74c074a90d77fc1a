"""Speed and memory of recurrent layers: gru_jax against flax.linen and PyTorch, in one process.

  python -m benchmarks.speed                       # the target points, and T=1024/4096 with remat
  python -m benchmarks.speed --quick               # a few small points (seconds; what the test runs)
  python -m benchmarks.speed --grid                # B in {1,8,32,128} x T in {64,256,1024} x H in {128,256,512}
  python -m benchmarks.speed --points=8x512x64x128,32x256x128x256   # B x T x D x H
  python -m benchmarks.speed --parallel_cells      # minGRU/minLSTM/SRU (parallel scans) vs our GRU, T up to 4096
  python -m benchmarks.speed --options             # layer norm, recurrent dropout, zoneout vs the plain GRU

For each point and model it times a training step (forward, backward, Adam update) and a forward
pass: the median over --repeats calls after --warmup calls, plus the compile time (JAX) and XLA's
memory analysis of the compiled training step (JAX; the arguments, outputs and temporaries of the
step). GFLOP/s counts the matmuls only (input projection and recurrence; backward = 2x forward),
against a matmul peak measured here on the same device. Results go to --out as JSON and markdown,
with device, versions and date; ratios compare models measured in the same run.
"""

import datetime
import os
import platform
import statistics
import time
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

import gru_jax as gj
from benchmarks import report
from gru_jax.models import matmul_flops as layer_matmul_flops

_QUICK = flags.DEFINE_bool("quick", False, "A few small points.")
_GRID = flags.DEFINE_bool("grid", False, "The full grid (hours on a 2-core CPU).")
_PARALLEL_CELLS = flags.DEFINE_bool("parallel_cells", False, "The parallel-scan cells against our sequential GRU.")
_OPTIONS = flags.DEFINE_bool("options", False, "The GRU's and LSTM's options (layer norm, recurrent dropout, zoneout), "
                              "trained with their random draws, against the plain cells; fused and autodiff.")
_KEEP_MEMORY = flags.DEFINE_bool(
  "keep_memory", True, "On glibc, keep freed memory in the process (mallopt) so that no model's step pays page faults "
  "on fresh buffers: with the default settings, buffers above 32 MB are returned to the OS after every call.")
_POINTS = flags.DEFINE_list("points", None, "Points as BxTxDxH; overrides the default set.")
_MODELS = flags.DEFINE_list("models", None, "Model names to run (default: all available).")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed calls per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls after compilation.")
_OUT = flags.DEFINE_string("out", None, "Output path without extension (default: benchmarks/results/<device>-<date>).")

TARGETS = [(8, 512, 64, 128), (32, 256, 128, 256), (64, 128, 256, 512)]
# The GPU target of issue 4 (training step vs Flax and cuDNN); added to the default set on a GPU.
GPU_TARGETS = [(64, 512, 512, 512)]
# Long sequences, where remat should flatten the growth of memory with T.
MEMORY = [(8, 1024, 64, 128), (8, 4096, 64, 128)]
MEMORY_MODELS = ["gru_jax.GRU", "gru_jax.GRU[remat]", "gru_jax.GRU[autodiff]", "flax.RNN(GRUCell)"]
QUICK = [(2, 16, 8, 16), (4, 32, 16, 32)]
GRID = [(b, t, h, h) for b in (1, 8, 32, 128) for t in (64, 256, 1024) for h in (128, 256, 512)]
# The parallel-scan cells (gates from x only) against the sequential GRU, as T grows.
PARALLEL = [(16, t, 128, 256) for t in (256, 1024, 4096)]
PARALLEL_MODELS = ["gru_jax.GRU", "gru_jax.MinGRU", "gru_jax.MinGRU[sequential]", "gru_jax.MinLSTM", "gru_jax.SRU",
                   "gru_jax.SRU[sequential]"]
# The options on the fast path against the plain cells (and against their autodiff path, where
# they ran before issue 14).
OPTIONS = [(8, 512, 64, 128), (32, 256, 128, 256)]
OPTION_MODELS = ["gru_jax.GRU", "gru_jax.GRU[layer_norm]", "gru_jax.GRU[layer_norm,autodiff]", "gru_jax.GRU[recurrent_dropout]",
                 "gru_jax.GRU[recurrent_dropout,autodiff]", "gru_jax.GRU[zoneout]", "gru_jax.GRU[zoneout,autodiff]",
                 "gru_jax.LSTM", "gru_jax.LSTM[layer_norm]", "gru_jax.LSTM[layer_norm,autodiff]"]


def keep_freed_memory() -> str | None:
  """Raises glibc's mmap and trim thresholds (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) so that
  freed buffers stay in the process. By default glibc serves allocations above a threshold that
  grows up to 32 MB with fresh mmaps and trims freed memory back to the OS, so every training step
  whose temporaries exceed it page-faults on all of them (`--keep_memory=false` shows it:
  benchmarks/results/cpu-2026-11-26-options-default-malloc.md against cpu-2026-11-26-options.md).
  Returns what was set, or None where there is no glibc."""
  import ctypes  # pylint: disable=g-import-not-at-top

  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return None
  m_trim_threshold, m_mmap_threshold = -1, -3
  if libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 2**31 - 1):
    return "glibc mallopt: M_MMAP_THRESHOLD=1 GiB, M_TRIM_THRESHOLD=2 GiB"
  return None


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int) -> float:
  return interleaved_median_ms([fn], repeats, warmup)[0]


def interleaved_median_ms(fns: list[Callable[[], Any]], repeats: int, warmup: int) -> list[float]:
  """Median ms per call of each fn, timed in rounds that call every fn once: a slow drift of the
  machine (clock, other load) then reaches every model of a point alike, not just the ones timed
  during it, so the ratios between them hold better than their absolute times."""
  for fn in fns:
    for _ in range(warmup):
      fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, fn_times in zip(fns, times):
      start = time.perf_counter()
      fn()
      fn_times.append(time.perf_counter() - start)
  return [1e3 * statistics.median(t) for t in times]


def matmul_peak_gflops(repeats: int) -> float:
  """fp32 matmul throughput of this device, measured on square matrices."""
  n = 2048 if jax.default_backend() == "cpu" else 8192
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  ms = median_ms(lambda: f(a).block_until_ready(), repeats, 1)
  return 2 * n**3 / (ms * 1e-3) / 1e9


def matmul_flops(cell: str, b: int, t: int, d: int, h: int) -> tuple[float, float]:
  """(forward, training step) matmul FLOPs (`gru_jax.models.matmul_flops`); backward = 2x."""
  forward = layer_matmul_flops(cell, b, t, d, h)
  return forward, 3.0 * forward


def jax_model(cell: str, make_layer: Callable[[], nn.Module], training: bool = False):
  """training: apply the layer with deterministic=False (recurrent dropout and zoneout draw their
  masks, from a fixed key) in the training step."""

  def build(b, t, d, h):
    layer = make_layer(h)
    xs = jax.random.normal(jax.random.key(0), (b, t, d))
    params = layer.init(jax.random.key(1), xs)
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)
    mode = dict(deterministic=False, rngs={"dropout": jax.random.key(2)}) if training else {}

    def loss(params, xs):
      return jnp.mean(layer.apply(params, xs, **mode) ** 2)

    def train_step(params, opt_state, xs):
      grads = jax.grad(loss)(params, xs)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    forward = jax.jit(lambda p, x: layer.apply(p, x))
    step = jax.jit(train_step, donate_argnums=(0, 1))
    start = time.perf_counter()
    compiled = step.lower(params, opt_state, xs).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    state = {"params": params, "opt": opt_state}

    def run_step():
      state["params"], state["opt"] = compiled(state["params"], state["opt"], xs)
      jax.block_until_ready(state["params"])

    run_forward = lambda: forward(state["params"], xs).block_until_ready()
    mem_mb = None
    if memory is not None:
      total = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
      mem_mb = total / 2**20
    return run_step, run_forward, compile_s, mem_mb, {}

  return cell, build


def torch_model(cell: str, dtype: str = "float32"):
  def build(b, t, d, h):
    import torch  # pylint: disable=g-import-not-at-top

    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](d, h, batch_first=True).to(device=device, dtype=torch_dtype)
    xs = torch.randn(b, t, d, device=device, dtype=torch_dtype)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run_step():
      opt.zero_grad(set_to_none=True)
      loss = (module(xs)[0].float() ** 2).mean()
      loss.backward()
      opt.step()
      sync()

    def run_forward():
      with torch.no_grad():
        module(xs)
      sync()

    mem_mb = None
    if device == "cuda":  # peak allocated memory over one training step, above what was held before it
      torch.cuda.synchronize()
      before = torch.cuda.memory_allocated()
      torch.cuda.reset_peak_memory_stats()
      run_step()
      mem_mb = (torch.cuda.max_memory_allocated() - before) / 2**20
    # What the peer ran: the kernels of one training step (on CUDA, cuDNN's RNN kernels among them).
    kernels = report.launched_kernels(run_step, cuda=device == "cuda")
    return run_step, run_forward, None, mem_mb, {"torch_kernels": kernels, "cudnn_rnn": report.cudnn_rnn_algorithm(kernels)}

  return cell, build


def models() -> dict[str, tuple[str, Callable]]:
  table = {
    "gru_jax.GRU": jax_model("gru", lambda h: gj.GRU(h)),
    "gru_jax.GRU[autodiff]": jax_model("gru", lambda h: gj.GRU(h, custom_vjp=False)),
    "gru_jax.GRU[remat]": jax_model("gru", lambda h: gj.GRU(h, remat=True)),
    "gru_jax.GRU[unroll=1]": jax_model("gru", lambda h: gj.GRU(h, unroll=1)),
    "gru_jax.GRU[unroll=4]": jax_model("gru", lambda h: gj.GRU(h, unroll=4)),
    "gru_jax.GRU[unroll=16]": jax_model("gru", lambda h: gj.GRU(h, unroll=16)),
    "gru_jax.LSTM": jax_model("lstm", lambda h: gj.LSTM(h)),
    "gru_jax.MinGRU": jax_model("mingru", lambda h: gj.MinGRU(h, parallel=True)),
    "gru_jax.MinGRU[sequential]": jax_model("mingru", lambda h: gj.MinGRU(h, parallel=False)),
    "gru_jax.MinLSTM": jax_model("minlstm", lambda h: gj.MinLSTM(h, parallel=True)),
    "gru_jax.SRU": jax_model("sru", lambda h: gj.SRU(h, parallel=True)),
    "gru_jax.SRU[sequential]": jax_model("sru", lambda h: gj.SRU(h, parallel=False)),
    "gru_jax.SimpleRNN": jax_model("rnn", lambda h: gj.SimpleRNN(h)),
    "flax.RNN(GRUCell)": jax_model("gru", lambda h: nn.RNN(nn.GRUCell(h))),
    "flax.RNN(OptimizedLSTMCell)": jax_model("lstm", lambda h: nn.RNN(nn.OptimizedLSTMCell(h))),
  }
  for cell, layer in (("gru", gj.GRU), ("lstm", gj.LSTM)):
    name = f"gru_jax.{layer.__name__}"
    for option, value in (("layer_norm", True), ("recurrent_dropout", 0.25), ("zoneout", 0.1)):
      for fast in (True, False):
        make = lambda h, layer=layer, option=option, value=value, fast=fast: layer(h, custom_vjp=fast, **{option: value})
        table[f"{name}[{option}]" if fast else f"{name}[{option},autodiff]"] = jax_model(cell, make, training=True)
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import

    table["torch.nn.GRU"] = torch_model("gru")
    table["torch.nn.LSTM"] = torch_model("lstm")
  except ImportError:
    pass
  return table


# The default set: each layer against its peers (variants of ours are named with --models).
MAIN_MODELS = ["gru_jax.GRU", "gru_jax.GRU[autodiff]", "gru_jax.LSTM", "gru_jax.SimpleRNN", "flax.RNN(GRUCell)",
               "flax.RNN(OptimizedLSTMCell)", "torch.nn.GRU", "torch.nn.LSTM"]
PEERS = {"gru": ["flax.RNN(GRUCell)", "torch.nn.GRU", "gru_jax.GRU[autodiff]", "gru_jax.GRU"],
         "lstm": ["flax.RNN(OptimizedLSTMCell)", "torch.nn.LSTM", "gru_jax.LSTM"],
         "mingru": ["gru_jax.GRU", "gru_jax.MinGRU[sequential]"],
         "minlstm": ["gru_jax.GRU"],
         "sru": ["gru_jax.GRU", "gru_jax.SRU[sequential]"]}


def environment() -> dict[str, Any]:
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  env = {
    "date": datetime.date.today().isoformat(), "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind, "cpu": cpu, "cores": os.cpu_count(),
    "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else jax.__version__,
    "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__,
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
  }
  try:
    import torch  # pylint: disable=g-import-not-at-top

    env["torch"] = torch.__version__
    if torch.cuda.is_available():
      env["torch_device"] = torch.cuda.get_device_name()
      env["cudnn"] = torch.backends.cudnn.version()
      env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
  except ImportError:
    pass
  return env


def run(plan, repeats, warmup) -> dict[str, Any]:
  """plan: [(point, model names)]."""
  env = environment()
  env["matmul_peak_gflops"] = matmul_peak_gflops(repeats)
  table = models()
  rows = []
  for (b, t, d, h), names in plan:
    built = [table[name][1](b, t, d, h) for name in names]  # (run_step, run_forward, compile_s, mem_mb, extra)
    train_times = interleaved_median_ms([m[0] for m in built], repeats, warmup)
    forward_times = interleaved_median_ms([m[1] for m in built], repeats, warmup)
    for name, (_, _, compile_s, mem_mb, extra), train_ms, forward_ms in zip(names, built, train_times, forward_times):
      cell = table[name][0]
      _, train_flops = matmul_flops(cell, b, t, d, h)
      gflops = train_flops / (train_ms * 1e-3) / 1e9
      rows.append({
        "model": name, "cell": cell, "B": b, "T": t, "D": d, "H": h, "train_ms": train_ms, "forward_ms": forward_ms,
        "train_gflops": gflops, "train_peak_fraction": gflops / env["matmul_peak_gflops"],
        "compile_s": compile_s, ("torch_peak_mb" if name.startswith("torch") else "xla_memory_mb"): mem_mb, **extra,
      })
      print(f"B={b} T={t} D={d} H={h} {name}: train {train_ms:.2f} ms, forward {forward_ms:.2f} ms, "
            f"{gflops:.1f} GFLOP/s", flush=True)
  for row in rows:
    for peer in PEERS.get(row["cell"], []):
      match = [r for r in rows if r["model"] == peer and (r["B"], r["T"], r["D"], r["H"]) == (row["B"], row["T"], row["D"], row["H"])]
      if match and peer != row["model"]:
        row.setdefault("train_speedup_vs", {})[peer] = match[0]["train_ms"] / row["train_ms"]
        row.setdefault("forward_speedup_vs", {})[peer] = match[0]["forward_ms"] / row["forward_ms"]
  return {"environment": env, "repeats": repeats, "warmup": warmup, "interleaved": True, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
  env = result["environment"]
  versions = ", ".join(f"{k} {env[k]}" for k in ("python", "jax", "flax", "optax", "torch") if k in env)
  lines = [
    f"# Speed: {env['device']} ({env['cpu']}, {env['cores']} cores), {env['date']}",
    "",
    f"{versions}. fp32. Median of {result['repeats']} calls after {result['warmup']} warm-up calls"
    f"{', timed in rounds that run every model of a point once' if result.get('interleaved') else ''}. "
    f"Measured matmul peak: {env['matmul_peak_gflops']:.1f} GFLOP/s. Speed-up = peer time / this time "
    "(above 1: this model is faster), same run. Memory: XLA's analysis of the compiled training step (JAX); "
    "for torch on CUDA, the peak memory allocated during one step.",
    "",
    f"Precision: fp32 arrays; JAX default matmul precision {env.get('jax_default_matmul_precision')!r}"
    + (f"; torch.backends.cudnn.allow_tf32={env['torch_cudnn_allow_tf32']}, cuDNN {env['cudnn']}" if "cudnn" in env else "")
    + (f". XLA_FLAGS: `{env['xla_flags']}`" if env.get("xla_flags") else "")
    + (f". Memory allocator: {env['malloc']}" if env.get("malloc") else "") + ".",
    "",
    "| B | T | D | H | model | train ms | forward ms | train GFLOP/s (% peak) | train speed-up vs peers | compile s | memory MB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  fmt = lambda v, spec: "" if v is None else format(v, spec)
  for r in result["rows"]:
    speedups = "; ".join(f"{peer} {ratio:.2f}x" for peer, ratio in r.get("train_speedup_vs", {}).items())
    lines.append(
      f"| {r['B']} | {r['T']} | {r['D']} | {r['H']} | {r['model']} | {r['train_ms']:.2f} | {r['forward_ms']:.2f} | "
      f"{r['train_gflops']:.1f} ({100 * r['train_peak_fraction']:.0f}%) | {speedups} | {fmt(r['compile_s'], '.2f')} | "
      f"{fmt(r.get('xla_memory_mb', r.get('torch_peak_mb')), '.1f')} |"
    )
  algorithms = [(r, r["cudnn_rnn"]) for r in result["rows"] if r.get("cudnn_rnn")]
  if algorithms:
    lines += ["", "cuDNN RNN algorithm torch ran (from the kernels of one training step, `torch_kernels` in the json):", ""]
    lines += [f"- B={r['B']} T={r['T']} H={r['H']} {r['model']}: {algorithm}" for r, algorithm in algorithms]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  on_gpu = jax.default_backend() == "gpu"
  if _QUICK.value:
    points = QUICK
  elif _GRID.value:
    points = GRID
  elif _PARALLEL_CELLS.value:
    points = PARALLEL
  elif _OPTIONS.value:
    points = OPTIONS
  else:
    points = (GPU_TARGETS if on_gpu else []) + TARGETS
  if _POINTS.value:
    points = []
    for p in _POINTS.value:
      parts = p.lower().split("x")
      if len(parts) != 4 or not all(s.isdigit() and int(s) > 0 for s in parts):
        raise app.UsageError(f"--points: {p!r} is not BxTxDxH with positive integers, e.g. 8x512x64x128")
      points.append(tuple(int(s) for s in parts))
  available = models()
  default = PARALLEL_MODELS if _PARALLEL_CELLS.value else OPTION_MODELS if _OPTIONS.value else [n for n in available if n in MAIN_MODELS]
  names = _MODELS.value or default
  unknown = [n for n in names if n not in available]
  if unknown:
    raise app.UsageError(f"--models: unknown {unknown}; available: {list(available)}")
  plan = [(p, names) for p in points]
  if not (_QUICK.value or _GRID.value or _POINTS.value or _MODELS.value or _PARALLEL_CELLS.value or _OPTIONS.value):
    plan += [(p, MEMORY_MODELS) for p in MEMORY]
  malloc = keep_freed_memory() if _KEEP_MEMORY.value else None
  result = run(plan, _REPEATS.value, _WARMUP.value)
  result["environment"]["malloc"] = malloc or "default"
  env = result["environment"]
  suffix = "-parallel" if _PARALLEL_CELLS.value else "-options" if _OPTIONS.value else ""
  out = _OUT.value or os.path.join("benchmarks", "results", f"{env['backend']}-{env['date']}{suffix}")
  report.write_result(out, result, markdown(result))


if __name__ == "__main__":
  app.run(main)
