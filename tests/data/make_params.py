"""python tests/data/make_params.py tests/data/params-v1.npz: writes: every registered cell's linen layer parameters (init at key 0,
D=3, H=2) and its outputs on fixed inputs, with the tree paths as keys."""
import sys
import jax, jax.numpy as jnp, numpy as np
from gru_jax import models, specs
out = {}
xs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)), jnp.float32)
for name in specs.SPECS:
  layer = models.CELLS[name](2)
  variables = layer.init(jax.random.key(0), xs)
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
    out[f"{name}/params/{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
  out[f"{name}/outputs"] = np.asarray(layer.apply(variables, xs))
out["inputs"] = np.asarray(xs)
np.savez_compressed(sys.argv[1], **out)
print(len(out), "arrays")
