"""A persistent GRU kernel in Pallas for Hopper GPUs (Mosaic GPU), with a persistent reverse kernel.

`gru_scan(xp, w_h, b_hn, h0, valid)` computes what `gru_jax.fused.scan(cells.gru_gates, identity,
w_h, [0, 0, b_hn], h0, xp, valid)` computes (the reset-after GRU, the cuDNN form), outputs and
gradients, with the loop over time inside one kernel launch:

- Forward kernel: each program (CUDA block, one warpgroup) owns a tile of `block_b` sequences
  (8 by default) and runs all T steps. The recurrent weights are copied once into shared memory
  (TMA) and stay there; each step issues one `wgmma` per gate, streams that step's input projection
  in from global memory (prefetched one step ahead, in registers) and streams the carry h_t out.
- Reverse kernel: the same persistent loop from t = T-1 down to 0; it carries d h only, emits the
  gate gradients (d pre-activations [T, 3, H, B] and d(h_n + b_hn)) and d h0. After it, as in
  `gru_jax.fused`, dW_h = H_prev^T dPre and db_hn = sum dPre_n are single large matmuls /
  reductions in XLA (dW_x is the layer's, from d xp).

Layout: the kernels work on transposed tiles [H, block_b] ("swap AB"): pre_g^T = W_g^T h^T is a
`wgmma` with M = H (the hidden units, a multiple of 64), N = block_b (a multiple of 8) and
K = H, so small batches do not pad M up to 64. fp32 operands run as TF32 on the tensor cores
(`wgmma` kind tf32, which needs K-major operands, so the carry is written into shared memory as
[block_b, H] through the WGMMA_TRANSPOSED register layout); bf16 operands accumulate in fp32. The
gate arithmetic and the carry are fp32 in registers in both cases. The wrapper transposes xp to
[T, 3, H, B] and the outputs back (XLA transposes, one pass each).

What is verified where (jax 0.10.2):
- On the CPU, the kernels run in Mosaic GPU *interpret mode*
  (`jax._src.pallas.mosaic_gpu.interpret.params.InterpretGPUParams`, which simulates GMEM/SMEM,
  TMA copies, barriers and `wgmma` on the host): outputs and gradients equal `fused.scan` to
  ~1e-5 in fp32 (tests/pallas_gru_test.py), bf16 to bf16 tolerances, with and without masks,
  under `jax.vmap` too, and interpret mode's race detector finds no races.
- On the CPU, the same kernels also *lower* for CUDA (`jax.jit(f).trace(...).lower(
  lowering_platforms=("cuda",))`): Pallas -> Mosaic GPU lowering, register layouts, `wgmma` shape
  rules and the shared-memory budget (227 KiB) are checked there, under `jax.vmap` and with
  `compiler_params` too (tests/pallas_gru_test.py).
- Why Mosaic GPU primitives and not a kernel of generic Pallas ops (`pl.pallas_call` with `jnp.dot`,
  `interpret=True`): Mosaic GPU lowers no `dot_general` (matmuls are `plgpu.wgmma` on shared
  memory), so a generic kernel could not be the GPU kernel; GPU interpret mode runs this one. The
  Triton backend (deprecated) is not used.
- Interpret mode runs a few primitives differently, in `_Ops` below: loads from global memory use
  `ref[...]` instead of `plgpu.load(..., layout=WGMMA)`, layout casts are dropped, and the B
  operand of `wgmma` is kept untransposed ([H, block_b]) because interpret mode implements neither
  `plgpu.load`, `layout_cast` nor stores through `transpose_ref`. It does not model `wgmma`'s
  asynchrony or TF32 rounding either.
- Unverified until a GPU session runs it: ptxas compilation (register pressure, spills), the
  transposed store of the carry into shared memory on the device, synchronisation on real
  hardware, TF32 accuracy against `fused.scan`, and speed (benchmarks/kernel.py).

Limits (`supported` says where the kernel applies; elsewhere use `gru_jax.fused.scan`): a Hopper
GPU (sm_90: `wgmma`), H a multiple of 64, fp32 or bf16, and 3 H^2 weights plus the operand tile in
227 KiB of shared memory: fp32 H in {64, 128}, bf16 H in {64, 128, 192}.

Sources:
- Installed jax 0.10.2: jax/_src/pallas/mosaic_gpu/{core,lowering,primitives}.py (wgmma, load,
  layout_cast, transpose_ref, copy_gmem_to_smem, kernel), jax/experimental/mosaic/gpu/wgmma.py
  (M % 64, N % 8 <= 256, K % swizzle; "Only f16 WGMMA supports transposes", i.e. tf32 needs
  K-major operands), jax/experimental/mosaic/gpu/fragmented_array.py (WGMMA <-> WGMMA_TRANSPOSED
  conversion for 16/32-bit; "Only optimized transfers to SMEM supported", hence
  `optimized=False` for global loads), jax/experimental/mosaic/gpu/core.py (the 227 KiB shared
  memory check), jax/_src/pallas/mosaic_gpu/interpret/ (GPU interpret mode).
- github.com/jax-ml/jax (HEAD 2026-08, 0.11.1.dev): docs/pallas/gpu/reference.md (memory spaces,
  transforms, wgmma shapes and dtypes, layouts), jax/experimental/pallas/ops/gpu/attention_mgpu.py
  (plgpu.kernel, run_scoped ACC, layout_cast, barriers), tests/pallas/gpu_pallas_interpret_test.py
  (interpret mode), jax/_src/pallas/mosaic_gpu/primitives.py (`load`'s index argument deprecated
  there; `_mgpu_load` handles both).
- https://docs.nvidia.com/cuda/parallel-thread-execution/#asynchronous-warpgroup-level-matrix-instructions-wgmma-mma
  (wgmma shapes and operand majorness).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

try:
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu
except ImportError as _error:  # pragma: no cover - jax builds without Pallas
  pl = plgpu = None
  _IMPORT_ERROR: Exception | None = _error
else:
  _IMPORT_ERROR = None

Array = jax.Array

# Shared memory a block may opt into on an H100/H200 (228 KiB per SM, 1 KiB reserved per block);
# Mosaic GPU checks the same number (jax/experimental/mosaic/gpu/core.py).
SMEM_BYTES = 227 * 1024
SMEM_SLACK = 1024  # the TMA barrier and alignment
DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
DEFAULT_BLOCK_B = 8
# The (batch, hidden, dtype name) points where a GPU measurement (benchmarks/results/gpu-*-kernel.md,
# from `bash benchmarks/gpu.sh kernel`) found the kernel's training step faster than
# gru_jax.fused's: there the layers' kernel="auto" runs it. None yet: the kernel has not run on a GPU.
FASTER: frozenset[tuple[int, int, str]] = frozenset()
# f32 registers per thread for one [H, block_b] tile in the WGMMA layout (H * block_b / 128). The
# reverse loop keeps about 16 such tiles live (8 streamed in for the step, 8 prefetched for the
# next), so past 12 per tile ptxas would spill (slower, not wrong): `supported` says no there, and
# `gru_scan` still runs such a block_b when asked for it.
MAX_TILE_REGISTERS = 12
M_TILE = 64  # wgmma's M (here the hidden units)
N_TILE = 8  # wgmma's N granularity (here the batch tile)


def smem_bytes(hidden: int, block_b: int, dtype) -> tuple[int, int]:
  """Shared memory (bytes) of the (forward, reverse) kernels: the 3 H x H weight blocks and the
  B operands ([block_b, H] in the forward, 3 of them in the reverse), plus a little slack."""
  size = jnp.dtype(dtype).itemsize
  weights = 3 * hidden * hidden * size
  return (weights + block_b * hidden * size + SMEM_SLACK, weights + 3 * block_b * hidden * size + SMEM_SLACK)


def _is_hopper(device) -> bool:
  capability = getattr(device, "compute_capability", None)
  if capability is not None:
    return str(capability).startswith("9")
  return bool(re.search(r"\bG?H(100|200|800|20)\b", getattr(device, "device_kind", "")))


def unsupported_reason(batch: int, hidden: int, dtype, backend: str | None = None, *, block_b: int | None = None,
                       device=None, check_registers: bool = True) -> str | None:
  """Why the kernel does not apply to this problem (None if it does). `backend` defaults to JAX's
  default backend; `device` to its first device (checked to be a Hopper GPU when it is a GPU).
  check_registers=False skips the register estimate (spills cost speed, not correctness)."""
  backend = backend or jax.default_backend()
  if _IMPORT_ERROR is not None:
    return f"Pallas Mosaic GPU is not importable: {_IMPORT_ERROR}"
  if backend not in ("gpu", "cuda"):
    return f"backend {backend!r}: the kernel is Mosaic GPU (NVIDIA Hopper) only"
  if device is None and jax.default_backend() == "gpu":
    device = jax.devices()[0]
  if device is not None and not _is_hopper(device):
    return f"device {getattr(device, 'device_kind', device)!r} is not a Hopper GPU (wgmma needs sm_90)"
  dtype = jnp.dtype(dtype)
  if dtype not in DTYPES:
    return f"dtype {dtype}: the kernel takes float32 (TF32 matmuls) or bfloat16"
  block_b = block_b or DEFAULT_BLOCK_B
  if hidden % M_TILE:
    return f"hidden={hidden} is not a multiple of {M_TILE} (wgmma's M)"
  if block_b % N_TILE or block_b > 256:
    return f"block_b={block_b} is not a multiple of {N_TILE} up to 256 (wgmma's N)"
  if check_registers and hidden * block_b // 128 > MAX_TILE_REGISTERS:
    return (f"hidden * block_b / 128 = {hidden * block_b // 128} registers per thread and tile, more than "
            f"{MAX_TILE_REGISTERS} (the reverse loop would spill)")
  need = max(smem_bytes(hidden, block_b, dtype))
  if need > SMEM_BYTES:
    return f"the {dtype} weights and operand tiles need {need} bytes of shared memory, more than {SMEM_BYTES}"
  if batch < 1:
    return f"batch={batch}"
  return None


def supported(batch: int, hidden: int, dtype, backend: str | None = None, *, block_b: int | None = None,
              device=None) -> bool:
  """Whether `gru_scan` runs compiled here: a Hopper GPU, H a multiple of 64, fp32 or bf16, the
  weights fitting in shared memory (fp32: H <= 128; bf16: H <= 192) and the tiles in registers
  (block_b 8 up to H = 192, 16 for H = 64). False on CPUs and TPUs. It says nothing about speed:
  benchmarks/kernel.py measures that."""
  return unsupported_reason(batch, hidden, dtype, backend, block_b=block_b, device=device) is None


# ---------------------------------------------------------------------------------------------
# Kernels


@dataclasses.dataclass(frozen=True)
class _Config:
  steps: int
  hidden: int
  padded_batch: int
  block_b: int
  dtype: Any  # the matmul operands' dtype (weights, the carry as fed to wgmma, the streams)
  masked: bool
  interpret: Any  # None (compiled) or an InterpretGPUParams
  compiler_params: tuple = ()  # sorted (name, value) pairs for plgpu.CompilerParams

  @property
  def tiling(self):
    return (8, 128 // jnp.dtype(self.dtype).itemsize)  # 128-byte swizzle: rows of 8 x 128 bytes


def _mgpu_load(ref, layout):
  """`plgpu.load` from global memory into `layout` (jax 0.10 takes the index separately; later
  versions deprecate it)."""
  if inspect.signature(plgpu.load).parameters["idx"].default is inspect.Parameter.empty:
    return plgpu.load(ref, (), layout=layout, optimized=False)
  return plgpu.load(ref, layout=layout, optimized=False)


class _Ops:
  """The few operations whose GPU form interpret mode does not implement (see the module doc)."""

  def __init__(self, cfg: _Config):
    self.cfg = cfg
    self.interpret = cfg.interpret is not None

  def load(self, ref, layout):
    return ref[...] if self.interpret else _mgpu_load(ref, layout)

  def tile(self, ref):
    """A [H, block_b] tile from global memory, in the WGMMA layout, as f32."""
    return self.load(ref, plgpu.Layout.WGMMA).astype(jnp.float32)

  def rows(self, ref):
    """A [H] vector broadcast over the tile's columns."""
    v = self.load(ref, plgpu.Layout.WGMMA.reduce(1)).astype(jnp.float32)
    return lax.broadcast_in_dim(v, (self.cfg.hidden, self.cfg.block_b), (0,))

  def columns(self, ref):
    """A [block_b] vector (not yet broadcast: carried through the loop as is)."""
    return self.load(ref, plgpu.Layout.WGMMA.reduce(0)).astype(jnp.float32)

  def broadcast_columns(self, v):
    return lax.broadcast_in_dim(v, (self.cfg.hidden, self.cfg.block_b), (1,))

  def zeros(self):
    z = jnp.zeros((self.cfg.hidden, self.cfg.block_b), jnp.float32)
    return z if self.interpret else plgpu.layout_cast(z, plgpu.Layout.WGMMA)

  def operand_type(self, count: int | None = None):
    """Shared memory for B operands of wgmma holding [H, block_b] tiles: K-major ([block_b, H],
    tiled and swizzled) on the GPU, plain [H, block_b] in interpret mode."""
    lead = () if count is None else (count,)
    cfg = self.cfg
    if self.interpret:
      return plgpu.SMEM(lead + (cfg.hidden, cfg.block_b), cfg.dtype)
    return plgpu.SMEM(lead + (cfg.block_b, cfg.hidden), cfg.dtype,
                      transforms=(plgpu.TilingTransform(cfg.tiling), plgpu.SwizzleTransform(128)))

  def weights_type(self):
    """The 3 weight blocks, stacked along M as [3H, H] (fewer dimensions for the TMA copy: under
    vmap the copy gains one)."""
    cfg = self.cfg
    return plgpu.SMEM((3 * cfg.hidden, cfg.hidden), cfg.dtype,
                      transforms=(plgpu.TilingTransform(cfg.tiling), plgpu.SwizzleTransform(128)))

  def put_operand(self, ref, x):
    """Writes the tile x [H, block_b] where `operand(ref)` reads it."""
    x = x.astype(self.cfg.dtype)
    if self.interpret:
      ref[...] = x
    else:
      plgpu.transpose_ref(ref, (1, 0))[...] = plgpu.layout_cast(x, plgpu.Layout.WGMMA_TRANSPOSED)

  def operand(self, ref):
    """The [H, block_b] B operand of wgmma."""
    return ref if self.interpret else plgpu.transpose_ref(ref, (1, 0))

  def weight(self, ref, g: int):
    """Block g ([H, H]) of the stacked weights."""
    return ref.at[pl.ds(g * self.cfg.hidden, self.cfg.hidden)]


def _gates(x, pre):
  """r, z, n of the reset-after GRU from the input blocks x and the blocks pre = W_g^T h (+ b_hn)."""
  r = jax.nn.sigmoid(x[0] + pre[0])
  z = jax.nn.sigmoid(x[1] + pre[1])
  n = jnp.tanh(x[2] + r * pre[2])
  return r, z, n


def _launch(cfg: _Config, body, out_type, scratch_types, *args):
  return plgpu.kernel(
    body, out_type=out_type, scratch_types=scratch_types, grid=(cfg.padded_batch // cfg.block_b,),
    grid_names=("batch",), compiler_params=plgpu.CompilerParams(**dict(cfg.compiler_params)),
    interpret=cfg.interpret,
  )(*args)


def _forward_kernel(cfg: _Config, xT, w_t, b_hn, h0T, maskT):
  """xT [T, 3, H, Bp], w_t [3H, H] (the W_g^T stacked), b_hn [H] f32, h0T [H, Bp] f32, maskT [T, Bp] f32 or
  None. Returns the carries hsT [T, H, Bp] (the carry after each step; it passes through where
  the mask is 0) in cfg.dtype."""
  ops = _Ops(cfg)
  steps, block_b = cfg.steps, cfg.block_b

  def body(*refs):
    if cfg.masked:
      x_ref, w_ref, b_ref, h0_ref, m_ref, hs_ref, w_smem, h_smem, barrier = refs
    else:
      x_ref, w_ref, b_ref, h0_ref, hs_ref, w_smem, h_smem, barrier = refs
      m_ref = None
    cols = pl.ds(lax.axis_index("batch") * block_b, block_b)
    plgpu.copy_gmem_to_smem(w_ref, w_smem, barrier)
    bias_n = ops.rows(b_ref)
    h = ops.tile(h0_ref.at[:, cols])
    plgpu.barrier_wait(barrier)
    ops.put_operand(h_smem, h)
    plgpu.commit_smem()

    def stream(t):  # what step t reads from global memory
      x = tuple(ops.tile(x_ref.at[t, g, :, cols]) for g in range(3))
      return x + ((ops.columns(m_ref.at[t, cols]),) if cfg.masked else ())

    def matmul(acc_r, acc_z, acc_n):
      h_op = ops.operand(h_smem)
      for g, acc in enumerate((acc_r, acc_z, acc_n)):
        plgpu.wgmma(acc, ops.weight(w_smem, g), h_op)
      return acc_r[...], acc_z[...], acc_n[...]

    def step(t, carry):
      h, streamed = carry
      prefetched = stream(jnp.minimum(t + 1, steps - 1))
      pre_r, pre_z, pre_n = pl.run_scoped(matmul, *(plgpu.ACC((cfg.hidden, block_b), jnp.float32),) * 3)
      r, z, n = _gates(streamed[:3], (pre_r, pre_z, pre_n + bias_n))
      new_h = (1.0 - z) * n + z * h
      if cfg.masked:
        new_h = jnp.where(ops.broadcast_columns(streamed[3]) > 0.5, new_h, h)
      hs_ref.at[t, :, cols][...] = new_h.astype(hs_ref.dtype)
      ops.put_operand(h_smem, new_h)
      plgpu.commit_smem()
      return new_h, prefetched

    lax.fori_loop(0, steps, step, (h, stream(0)))

  out_type = jax.ShapeDtypeStruct((steps, cfg.hidden, cfg.padded_batch), cfg.dtype)
  scratch = [ops.weights_type(), ops.operand_type(), plgpu.Barrier()]
  args = (xT, w_t, b_hn, h0T) + ((maskT,) if cfg.masked else ())
  return _launch(cfg, body, out_type, scratch, *args)


def _reverse_kernel(cfg: _Config, xT, preT, h_prevT, d_hsT, maskT, w_blocks):
  """The reverse loop. xT [T, 3, H, Bp] and preT [T, 3, H, Bp] (W_g^T h_{t-1}, b_hn added to the
  n block) give the gates again; h_prevT [T, H, Bp] the carries before each step; d_hsT
  [T, H, Bp] f32 the cotangents of the carries after each step; w_blocks [3H, H] the blocks W_g stacked.

  Returns (d xp^T [T, 3, H, Bp], d(h_n + b_hn)^T [T, H, Bp], d h0^T [H, Bp]), all f32. The
  gradients of the pre-activations h @ W_h + b are (d xp_r, d xp_z, d(h_n + b_hn))."""
  ops = _Ops(cfg)
  steps, block_b = cfg.steps, cfg.block_b

  def body(*refs):
    if cfg.masked:
      (x_ref, pre_ref, hp_ref, dhs_ref, m_ref, w_ref, dx_ref, dhn_ref, dh0_ref, w_smem, d_smem, barrier) = refs
    else:
      (x_ref, pre_ref, hp_ref, dhs_ref, w_ref, dx_ref, dhn_ref, dh0_ref, w_smem, d_smem, barrier) = refs
      m_ref = None
    cols = pl.ds(lax.axis_index("batch") * block_b, block_b)
    plgpu.copy_gmem_to_smem(w_ref, w_smem, barrier)

    def stream(t):
      x = tuple(ops.tile(x_ref.at[t, g, :, cols]) for g in range(3))
      pre = tuple(ops.tile(pre_ref.at[t, g, :, cols]) for g in range(3))
      rest = (ops.tile(hp_ref.at[t, :, cols]), ops.tile(dhs_ref.at[t, :, cols]))
      return x + pre + rest + ((ops.columns(m_ref.at[t, cols]),) if cfg.masked else ())

    def matmul(acc):
      for g in range(3):
        plgpu.wgmma(acc, ops.weight(w_smem, g), ops.operand(d_smem.at[g]))
      return acc[...]

    def step(i, carry):
      dh, streamed = carry
      t = steps - 1 - i
      prefetched = stream(jnp.maximum(t - 1, 0))
      x, pre, (h_prev, d_hs) = streamed[:3], streamed[3:6], streamed[6:8]
      r, z, n = _gates(x, pre)
      d_carry = dh + d_hs  # the cotangent of the carry after step t
      if cfg.masked:
        valid = ops.broadcast_columns(streamed[8]) > 0.5
        d_new = jnp.where(valid, d_carry, 0.0)
      else:
        d_new = d_carry
      d_n = d_new * (1.0 - z) * (1.0 - n * n)  # through tanh
      d_z = d_new * (h_prev - n) * z * (1.0 - z)
      d_hn = d_n * r  # d(h_n + b_hn)
      d_r = d_n * pre[2] * r * (1.0 - r)
      for g, d in enumerate((d_r, d_z, d_n)):
        dx_ref.at[t, g, :, cols][...] = d
      dhn_ref.at[t, :, cols][...] = d_hn
      for g, d in enumerate((d_r, d_z, d_hn)):
        ops.put_operand(d_smem.at[g], d)
      plgpu.commit_smem()
      d_prev = d_new * z + pl.run_scoped(matmul, plgpu.ACC((cfg.hidden, block_b), jnp.float32))
      if cfg.masked:  # a step past the length passed the carry through unchanged
        d_prev = d_prev + jnp.where(valid, 0.0, d_carry)
      return d_prev, prefetched

    first = stream(steps - 1)
    plgpu.barrier_wait(barrier)
    dh, _ = lax.fori_loop(0, steps, step, (ops.zeros(), first))
    dh0_ref.at[:, cols][...] = dh

  tile = (cfg.hidden, cfg.padded_batch)
  f32 = jnp.float32
  out_type = (jax.ShapeDtypeStruct((steps, 3) + tile, f32), jax.ShapeDtypeStruct((steps,) + tile, f32),
              jax.ShapeDtypeStruct(tile, f32))
  scratch = [ops.weights_type(), ops.operand_type(3), plgpu.Barrier()]
  args = (xT, preT, h_prevT, d_hsT) + ((maskT,) if cfg.masked else ()) + (w_blocks,)
  return _launch(cfg, body, out_type, scratch, *args)


# ---------------------------------------------------------------------------------------------
# The differentiable scan


def _weight_blocks(w_h, transpose: bool):
  """[3H, H]: the blocks W_g = w_h[:, g H:(g+1) H] (or their transposes W_g^T) stacked."""
  hidden = w_h.shape[0]
  blocks = w_h.reshape(hidden, 3, hidden)  # [in, g, out]
  blocks = blocks.transpose(1, 2, 0) if transpose else blocks.transpose(1, 0, 2)
  return blocks.reshape(3 * hidden, hidden)


def _recurrent_blocks(h_prevT, w_h, b_hn, dtype):
  """preT [T, 3, H, Bp] f32 = W_g^T h_{t-1} (+ b_hn on the n block), all steps in one matmul."""
  hidden = w_h.shape[0]
  pre = jnp.einsum("tib,igo->tgob", h_prevT.astype(dtype), w_h.reshape(hidden, 3, hidden),
                   preferred_element_type=jnp.float32)
  return pre.at[:, 2].add(b_hn[None, :, None])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _carries(cfg: _Config, xT, w_h, b_hn, h0T, maskT):
  return _forward_kernel(cfg, xT, _weight_blocks(w_h, transpose=True), b_hn, h0T, maskT)


def _carries_fwd(cfg, xT, w_h, b_hn, h0T, maskT):
  hsT = _carries(cfg, xT, w_h, b_hn, h0T, maskT)
  return hsT, (xT, w_h, b_hn, h0T, maskT, hsT)


def _carries_bwd(cfg, residuals, d_hsT):
  xT, w_h, b_hn, h0T, maskT, hsT = residuals
  h_prevT = jnp.concatenate([h0T[None], hsT[:-1].astype(jnp.float32)])
  preT = _recurrent_blocks(h_prevT, w_h, b_hn, cfg.dtype)
  d_xT, d_hnT, d_h0T = _reverse_kernel(cfg, xT, preT, h_prevT, d_hsT.astype(jnp.float32), maskT,
                                       _weight_blocks(w_h, transpose=False))
  d_preT = jnp.stack([d_xT[:, 0], d_xT[:, 1], d_hnT], axis=1)  # [T, 3, H, Bp]
  hidden = w_h.shape[0]
  # dW_h = H_prev^T dPre over all T x B rows, and db_hn = sum dPre_n: after the loop, as fused.scan.
  d_w = jnp.einsum("tib,tgob->igo", h_prevT, d_preT).reshape(hidden, 3 * hidden)
  d_b = jnp.sum(d_hnT, axis=(0, 2))
  d_mask = None if maskT is None else jnp.zeros_like(maskT)
  return d_xT.astype(xT.dtype), d_w.astype(w_h.dtype), d_b.astype(b_hn.dtype), d_h0T.astype(h0T.dtype), d_mask


_carries.defvjp(_carries_fwd, _carries_bwd)


def _interpret_params(interpret):
  """None for the compiled kernel, or the InterpretGPUParams to run it with."""
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  if interpret is False:
    return None
  try:
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams  # pylint: disable=g-import-not-at-top
  except ImportError as error:  # pragma: no cover - depends on the jax version
    raise RuntimeError(f"interpret mode needs Pallas' Mosaic GPU interpreter (jax >= 0.10): {error}") from error
  return InterpretGPUParams() if interpret is True else interpret


def gru_scan(xp, w_h: Array, b_hn: Array, h0: Array, valid: Array | None = None, *, interpret: Any = None,
             block_b: int | None = None, compiler_params: dict | None = None) -> tuple[Array, Array]:
  """The reset-after GRU over time in one persistent kernel (and one reverse kernel for gradients).

  Equal (outputs and gradients) to `gru_jax.fused.scan(cells.gru_gates, lambda h: h, w_h,
  concat([0, 0, b_hn]), h0, xp, valid)`: r = σ(x_r + h W_r), z = σ(x_z + h W_z),
  n = tanh(x_n + r ⊙ (h W_n + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h.

  Args:
    xp: the input projection's gate blocks (x_r, x_z, x_n), each [T, B, H] (biases included), or
      one [T, B, 3H] array.
    w_h: the recurrent kernel [H, 3H] (blocks r, z, n). b_hn: the recurrent bias of the n gate [H].
    h0: the initial carry [B, H].
    valid: optional booleans [T, B, 1] (or [T, B]); where False the carry passes through and the
      output is zero (`gru_jax.fused.apply_mask`).
    interpret: None: compiled on a GPU, Mosaic GPU interpret mode elsewhere (slow: for tests);
      True / False to force it; or an `InterpretGPUParams`.
    block_b: sequences per program (a multiple of 8; default 8). The batch is padded to a multiple.
    compiler_params: keyword arguments of `plgpu.CompilerParams` for the compiled kernels, e.g.
      {"approx_math": True} (fast approximate exp/tanh) or {"unsafe_no_auto_barriers": True}
      (drops the warpgroup barriers Pallas puts around every load and store; the kernels' threads
      never read shared memory that other threads write, and `commit_smem` fences and syncs
      before each wgmma, so it should be safe, but no GPU has checked it yet).

  Returns:
    (final carry [B, H], ys [T, B, H]), in the inputs' common dtype (float32 or bfloat16).

  Raises:
    ValueError naming the argument when a shape, dtype or size is outside what the kernel takes
    (`unsupported_reason` gives the reason without raising).
  """
  if _IMPORT_ERROR is not None:
    raise RuntimeError(f"gru_scan needs Pallas' Mosaic GPU backend: {_IMPORT_ERROR}")
  blocks = _split_blocks(xp)
  steps, batch, hidden = blocks[0].shape
  _check_shapes(blocks, w_h, b_hn, h0, valid)
  dtype = jnp.dtype(jnp.result_type(*blocks, w_h, b_hn, h0))
  if dtype not in DTYPES:
    raise ValueError(f"gru_scan: dtype {dtype} (of xp, w_h, b_hn, h0) is not supported: float32 (TF32 matmuls on "
                     "the tensor cores) or bfloat16; use gru_jax.fused.scan")
  if hidden % M_TILE:
    raise ValueError(f"gru_scan: hidden size H={hidden} (w_h.shape[0]) must be a multiple of {M_TILE} (wgmma's M "
                     "tile); use gru_jax.fused.scan")
  block_b = DEFAULT_BLOCK_B if block_b is None else int(block_b)
  if block_b <= 0 or block_b % N_TILE or block_b > 256:
    raise ValueError(f"gru_scan: block_b={block_b} must be a multiple of {N_TILE} up to 256 (wgmma's N)")
  params = _interpret_params(interpret)
  if params is None:  # compiled (on a GPU, or lowered for one: the backend is the caller's business)
    reason = unsupported_reason(batch, hidden, dtype, "gpu", block_b=block_b, check_registers=False)
    if reason is not None:
      raise ValueError(f"gru_scan: the compiled kernel does not apply: {reason}; use gru_jax.fused.scan")
  padded = -(-batch // block_b) * block_b
  pad = padded - batch
  cfg = _Config(steps=steps, hidden=hidden, padded_batch=padded, block_b=block_b, dtype=dtype,
                masked=valid is not None, interpret=params,
                compiler_params=tuple(sorted((compiler_params or {}).items())))

  xT = jnp.stack(blocks, axis=1).astype(dtype).transpose(0, 1, 3, 2)  # [T, 3, H, B]
  xT = jnp.pad(xT, ((0, 0), (0, 0), (0, 0), (0, pad)))
  h0T = jnp.pad(h0.astype(jnp.float32).T, ((0, 0), (0, pad)))
  maskT = None
  if valid is not None:
    valid = valid.reshape(steps, batch)
    maskT = jnp.pad(valid.astype(jnp.float32), ((0, 0), (0, pad)))
  hsT = _carries(cfg, xT, w_h.astype(dtype), b_hn.astype(jnp.float32), h0T, maskT)
  hs = hsT.transpose(0, 2, 1)[:, :batch]  # [T, B, H]
  ys = hs if valid is None else jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
  return hs[-1], ys


def _split_blocks(xp) -> tuple[Array, Array, Array]:
  if isinstance(xp, (tuple, list)):
    if len(xp) != 3:
      raise ValueError(f"gru_scan: xp must be the 3 gate blocks (x_r, x_z, x_n), got {len(xp)} arrays")
    return tuple(jnp.asarray(x) for x in xp)
  xp = jnp.asarray(xp)
  if xp.ndim != 3 or xp.shape[-1] % 3:
    raise ValueError(f"gru_scan: xp must be [T, B, 3H] or a tuple of 3 [T, B, H] blocks, got shape {xp.shape}")
  return tuple(jnp.split(xp, 3, axis=-1))


def _check_shapes(blocks, w_h, b_hn, h0, valid):
  shape = blocks[0].shape
  if len(shape) != 3 or any(x.shape != shape for x in blocks):
    raise ValueError(f"gru_scan: the xp blocks must all be [T, B, H], got shapes {[x.shape for x in blocks]}")
  steps, batch, hidden = shape
  if steps < 1 or batch < 1:
    raise ValueError(f"gru_scan: xp has T={steps}, B={batch}; both must be at least 1")
  if w_h.shape != (hidden, 3 * hidden):
    raise ValueError(f"gru_scan: w_h must be [H, 3H] = {(hidden, 3 * hidden)} for xp's H={hidden}, got {w_h.shape}")
  if b_hn.shape != (hidden,):
    raise ValueError(f"gru_scan: b_hn must be [H] = {(hidden,)}, got {b_hn.shape}")
  if h0.shape != (batch, hidden):
    raise ValueError(f"gru_scan: h0 must be [B, H] = {(batch, hidden)}, got {h0.shape}")
  if valid is not None and valid.shape not in ((steps, batch, 1), (steps, batch)):
    raise ValueError(f"gru_scan: valid must be [T, B, 1] = {(steps, batch, 1)}, got {valid.shape}")
