"""Shared test helpers: tiny random inputs and parameters."""

import numpy as np
import pytest


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
