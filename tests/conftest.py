"""Shared test helpers: tiny random inputs and parameters; XLA's quick compile for the suite."""

import os

import numpy as np
import pytest

# The suite compiles hundreds of tiny programs and runs each for moments, so compiling dominates:
# XLA's CPU backend without its expensive LLVM passes compiles them faster (an informal check on
# train_test's every-config runs, with other work on the cores, not a committed benchmark). The
# programs are the same, less optimised; speed is measured in benchmarks/, never in tests. Set before jax starts
# (pytest reads this file first); subprocesses inherit it.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE).strip()


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def random_params(rng, in_features, features, num_gates, *, gru_bias_n=False, scale=0.5, dtype=np.float32):
  """Random params in the layout of gru_jax.cells."""
  p = {
    "input_kernel": rng.normal(size=(in_features, num_gates * features)) * scale,
    "recurrent_kernel": rng.normal(size=(features, num_gates * features)) * scale,
    "bias": rng.normal(size=(num_gates * features,)) * scale,
  }
  if gru_bias_n:
    p["recurrent_bias_n"] = rng.normal(size=(features,)) * scale
  return {k: v.astype(dtype) for k, v in p.items()}
