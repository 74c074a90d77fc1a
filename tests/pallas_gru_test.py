"""The persistent Pallas GRU kernels (gru_jax.kernels.pallas_gru) against gru_jax.fused.scan.

On the CPU the kernels run in Mosaic GPU interpret mode (which simulates shared memory, TMA, barriers
and wgmma) and are also lowered for CUDA (Pallas -> Mosaic GPU, layouts, wgmma shapes, the shared
memory budget); on a Hopper GPU they run compiled, where fp32 matmuls are TF32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import cells, fused
from gru_jax.kernels import pallas_gru as pg

BACKEND = jax.default_backend()
COMPILED = BACKEND == "gpu"
if COMPILED and not pg.supported(8, 64, jnp.float32):
  pytest.skip(f"not a Hopper GPU: {pg.unsupported_reason(8, 64, jnp.float32)}", allow_module_level=True)
if BACKEND not in ("cpu", "gpu"):
  pytest.skip(f"interpret mode is tested on the CPU, the kernel on a GPU, not on {BACKEND}", allow_module_level=True)

T, H = 5, 64
# fp32: exact in interpret mode; TF32 tensor-core matmuls on the GPU (against an fp32 reference when
# the GPU stage sets JAX_DEFAULT_MATMUL_PRECISION=highest). bf16: against the bf16 fused scan.
TOL = {jnp.float32: 1e-2 if COMPILED else 2e-5, jnp.bfloat16: 6e-2}


@pytest.fixture(autouse=True)
def _fresh_interpreter():
  """GPU interpret mode keeps global state that an exception inside a kernel leaves dirty."""
  if not COMPILED:
    from jax._src.pallas.mosaic_gpu.interpret import interpret_pallas_call  # pylint: disable=g-import-not-at-top

    interpret_pallas_call.reset_gpu_interpret_mode_state()
  yield


def inputs(rng, batch, dtype=jnp.float32, lengths=None):
  cast = lambda a: jnp.asarray(a, jnp.float32).astype(dtype)
  xp = tuple(cast(rng.normal(size=(T, batch, H))) for _ in range(3))
  w_h = cast(rng.normal(size=(H, 3 * H)) * 0.15)
  b_hn = cast(rng.normal(size=(H,)) * 0.5)
  h0 = cast(rng.normal(size=(batch, H)))
  valid = None if lengths is None else (jnp.arange(T)[:, None] < jnp.asarray(lengths)[None, :])[..., None]
  return xp, w_h, b_hn, h0, valid


def reference(xp, w_h, b_hn, h0, valid):
  b = jnp.concatenate([jnp.zeros(2 * H, b_hn.dtype), b_hn])
  return fused.scan(cells.gru_gates, lambda h: h, w_h, b, h0, xp, valid)


def loss_of(scan, valid):
  def loss(xp, w_h, b_hn, h0):
    final, ys = scan(xp, w_h, b_hn, h0, valid)
    ys, final = ys.astype(jnp.float32), final.astype(jnp.float32)
    return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(final**2)

  return loss


def values_and_gradients(scan, args):
  xp, w_h, b_hn, h0, valid = args
  out = scan(xp, w_h, b_hn, h0, valid)
  grads = jax.grad(loss_of(scan, valid), argnums=(0, 1, 2, 3))(xp, w_h, b_hn, h0)
  return [np.asarray(a, np.float32) for a in jax.tree_util.tree_leaves((out, grads))]


NAMES = ["final", "ys", "d x_r", "d x_z", "d x_n", "d w_h", "d b_hn", "d h0"]


def assert_close(got, want, tol):
  for name, g, w in zip(NAMES, got, want):
    scale = max(1.0, float(np.abs(w).max()))
    np.testing.assert_allclose(g, w, atol=tol * scale, rtol=tol, err_msg=name)


@pytest.mark.parametrize(
  "batch, lengths",
  [(8, None), (13, (5, 0, 2, 3, 5, 1, 4, 5, 2, 5, 3, 5, 1))],  # one program; padding, two programs, masks
  ids=["one_tile", "two_tiles_masked"],
)
def test_fp32_outputs_and_gradients_equal_the_fused_scan(rng, batch, lengths):
  args = inputs(rng, batch, lengths=lengths)
  got = values_and_gradients(jax.jit(pg.gru_scan), args)
  want = values_and_gradients(reference, args)
  assert_close(got, want, TOL[jnp.float32])
  if lengths is not None:  # past each length: zero outputs, the carry of the last valid step
    ys, final = got[1], got[0]
    lengths = np.asarray(lengths)
    assert np.all(ys[np.arange(T)[:, None] >= lengths[None, :]] == 0)
    np.testing.assert_array_equal(final[lengths == 0], np.asarray(args[3])[lengths == 0])


def test_bf16_and_a_wider_tile_equal_the_fused_scan(rng):
  lengths = (5, 3, 0, 5, 4, 5, 1, 5, 2, 5, 5, 5, 3, 4, 5, 5, 2, 1)
  args = inputs(rng, 18, jnp.bfloat16, lengths=lengths)
  scan = jax.jit(lambda *a: pg.gru_scan(*a, block_b=16))
  got = values_and_gradients(scan, args)
  assert jax.eval_shape(scan, *args)[1].dtype == jnp.bfloat16
  assert_close(got, values_and_gradients(reference, args), TOL[jnp.bfloat16])


def test_concatenated_xp_and_a_2d_mask_are_accepted(rng):
  xp, w_h, b_hn, h0, valid = inputs(rng, 8, lengths=(5, 4, 3, 2, 1, 0, 5, 5))
  final, ys = pg.gru_scan(jnp.concatenate(xp, axis=-1), w_h, b_hn, h0, valid[..., 0])
  want_final, want_ys = reference(xp, w_h, b_hn, h0, valid)
  np.testing.assert_allclose(ys, want_ys, atol=TOL[jnp.float32])
  np.testing.assert_allclose(final, want_final, atol=TOL[jnp.float32])


def test_vmap_over_a_leading_axis_equals_a_loop(rng):
  """As the layers' multi-seed training uses it (and lowered for CUDA below)."""
  args = [inputs(rng, 8, lengths=(5, 2, 0, 5, 3, 5, 1, 4)) for _ in range(2)]
  stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *args)
  final, ys = jax.vmap(pg.gru_scan)(*stacked)
  for i, one in enumerate(args):
    want_final, want_ys = reference(*one)
    np.testing.assert_allclose(ys[i], want_ys, atol=TOL[jnp.float32])
    np.testing.assert_allclose(final[i], want_final, atol=TOL[jnp.float32])


@pytest.mark.skipif(COMPILED, reason="interpret mode's race detector")
def test_interpret_mode_finds_no_races(rng):
  from jax._src.pallas.mosaic_gpu.interpret import interpret_pallas_call  # pylint: disable=g-import-not-at-top
  from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams  # pylint: disable=g-import-not-at-top

  xp, w_h, b_hn, h0, valid = inputs(rng, 16, lengths=(5,) * 8 + (2,) * 8)
  params = InterpretGPUParams(detect_races=True)
  scan = lambda *a: pg.gru_scan(*a, interpret=params)
  jax.block_until_ready(jax.grad(loss_of(scan, valid), argnums=(0, 1, 2, 3))(xp, w_h, b_hn, h0))
  assert not interpret_pallas_call.get_races().races_found


@pytest.mark.parametrize(
  "dtype, hidden, options",
  [(jnp.float32, 128, {}), (jnp.bfloat16, 192, {}), (jnp.float32, 64, {"vmap": True, "block_b": 16}),
   (jnp.bfloat16, 128, {"compiler_params": {"approx_math": True, "unsafe_no_auto_barriers": True}})],
  ids=["fp32", "bf16", "fp32_vmap_block16", "bf16_compiler_params"],
)
def test_kernels_lower_for_cuda(dtype, hidden, options):
  """Pallas -> Mosaic GPU lowering of both kernels (layouts, wgmma shapes, shared memory), on any
  host, at the largest sizes that fit."""
  batch = 16
  options = dict(options)
  vmap = options.pop("vmap", False)
  xp = tuple(jnp.zeros((T, batch, hidden), dtype) for _ in range(3))
  args = (xp, jnp.zeros((hidden, 3 * hidden), dtype), jnp.zeros((hidden,), dtype), jnp.zeros((batch, hidden), dtype),
          jnp.ones((T, batch, 1), bool))

  def grads(xp, w_h, b_hn, h0, valid):
    scan = lambda *a: pg.gru_scan(*a, interpret=False, **options)
    return jax.grad(loss_of(scan, valid), argnums=(0, 1, 2, 3))(xp, w_h, b_hn, h0)

  if vmap:
    grads, args = jax.vmap(grads), jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), args)
  text = jax.jit(grads).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
  assert text.count("custom_call @mosaic_gpu") == 2  # the forward and the reverse kernel


def test_shapes_outside_the_kernel_are_one_line_errors(rng):
  xp, w_h, b_hn, h0, _ = inputs(rng, 8)
  with pytest.raises(ValueError, match=r"hidden size H=48 \(w_h.shape\[0\]\) must be a multiple of 64"):
    pg.gru_scan(tuple(x[..., :48] for x in xp), w_h[:48, :144], b_hn[:48], h0[:, :48])
  with pytest.raises(ValueError, match="dtype float16"):
    half = lambda a: a.astype(jnp.float16)
    pg.gru_scan(tuple(map(half, xp)), half(w_h), half(b_hn), half(h0))
  with pytest.raises(ValueError, match=r"w_h must be \[H, 3H\]"):
    pg.gru_scan(xp, w_h.T, b_hn, h0)
  with pytest.raises(ValueError, match=r"h0 must be \[B, H\]"):
    pg.gru_scan(xp, w_h, b_hn, h0[:4])
  with pytest.raises(ValueError, match=r"valid must be \[T, B, 1\]"):
    pg.gru_scan(xp, w_h, b_hn, h0, jnp.ones((T, 4, 1), bool))
  with pytest.raises(ValueError, match="block_b=12 must be a multiple of 8"):
    pg.gru_scan(xp, w_h, b_hn, h0, block_b=12)
  with pytest.raises(ValueError, match="xp must be the 3 gate blocks"):
    pg.gru_scan(xp[:2], w_h, b_hn, h0)
  with pytest.raises(ValueError, match="shared memory"):  # fp32 H=192: 432 KiB of weights
    x = jnp.zeros((T, 8, 192))
    pg.gru_scan((x, x, x), jnp.zeros((192, 576)), jnp.zeros(192), jnp.zeros((8, 192)), interpret=False)


class FakeDevice:
  def __init__(self, kind, capability):
    self.device_kind, self.compute_capability = kind, capability


def test_supported_says_where_the_kernel_applies():
  hopper = FakeDevice("NVIDIA H100 80GB HBM3", "9.0")
  ok = lambda b, h, dt, **kw: pg.supported(b, h, dt, "gpu", device=kw.pop("device", hopper), **kw)
  assert ok(8, 128, jnp.float32) and ok(1, 64, jnp.float32) and ok(4096, 128, jnp.bfloat16)
  assert ok(8, 192, jnp.bfloat16) and ok(64, 64, jnp.float32, block_b=16)
  assert not ok(8, 192, jnp.float32)  # fp32 weights beyond shared memory
  assert not ok(8, 256, jnp.bfloat16)
  assert not ok(8, 96, jnp.float32)  # not a multiple of 64
  assert not ok(8, 128, jnp.float16)
  assert not ok(8, 128, jnp.float32, block_b=16)  # too many registers per tile (gru_scan still runs it)
  assert pg.unsupported_reason(8, 128, jnp.float32, "gpu", device=hopper, block_b=16, check_registers=False) is None
  assert not ok(8, 128, jnp.float32, device=FakeDevice("NVIDIA A100-SXM4-80GB", "8.0"))
  assert not ok(8, 128, jnp.float32, device=FakeDevice("NVIDIA B200", "10.0"))  # no wgmma on Blackwell
  assert not pg.supported(8, 128, jnp.float32, "cpu") and not pg.supported(8, 128, jnp.float32, "tpu")
  assert "backend 'cpu'" in pg.unsupported_reason(8, 128, jnp.float32, "cpu")
  fwd, bwd = pg.smem_bytes(128, 8, jnp.float32)
  assert fwd < bwd <= pg.SMEM_BYTES and 3 * 128 * 128 * 4 < fwd


def test_the_layers_run_the_kernel_when_asked_and_refuse_it_by_name(rng):
  """`gj.GRU(kernel="pallas_interpret")` runs its time loop in the kernel (interpret mode here) and
  equals the fused path, outputs and gradients, with lengths and reverse; "pallas" needs a Hopper
  GPU and the plain GRU, and says so."""
  import gru_jax as gj  # pylint: disable=g-import-not-at-top
  from gru_jax import recurrent, specs  # pylint: disable=g-import-not-at-top

  xs = jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32)
  lengths = jnp.array([4, 2])
  layer = gj.GRU(64, kernel="pallas_interpret")
  variables = layer.init(jax.random.key(0), xs)
  loss = lambda layer: lambda v: jnp.sum(jnp.sin(layer.apply(v, xs, seq_lengths=lengths, reverse=True)))
  jaxpr = str(jax.make_jaxpr(lambda v: layer.apply(v, xs))(variables))
  plain = str(jax.make_jaxpr(lambda v: gj.GRU(64).apply(v, xs))(variables))
  assert "wgmma" in jaxpr and "wgmma" not in plain  # the kernel, as interpret mode traces it
  np.testing.assert_allclose(loss(layer)(variables), loss(gj.GRU(64))(variables), rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(layer))(variables)),
                  jax.tree_util.tree_leaves(jax.grad(loss(gj.GRU(64)))(variables))):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
  if not COMPILED:  # on a Hopper GPU "pallas" runs (the equality above covers it there)
    with pytest.raises(ValueError, match=f"GRU: kernel='pallas' cannot run here: backend '{BACKEND}'"):
      gj.GRU(64, kernel="pallas").apply(variables, xs)
  with pytest.raises(ValueError, match="LSTM: kernel='pallas' needs the plain reset-after GRU"):
    recurrent.run(specs.LSTMSpec(features=64), gj.LSTM(64).init(jax.random.key(0), xs)["params"], xs,
                  recurrent.LayerOptions(kernel="pallas"), owner="LSTM")  # the pure function refuses too
  with pytest.raises(ValueError, match=r"LSTM: kernel='pallas' needs the plain reset-after GRU"):
    gj.LSTM(64, kernel="pallas")
  with pytest.raises(ValueError, match=r"GRU: kernel='pallas_interpret' needs custom_vjp=True and no recurrent_dropout"):
    gj.GRU(64, kernel="pallas_interpret", recurrent_dropout=0.1)
  with pytest.raises(ValueError, match=r"GRU: kernel must be one of \['auto', 'xla', 'pallas', 'pallas_interpret'\]"):
    gj.GRU(64, kernel="triton")
