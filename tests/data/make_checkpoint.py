"""python tests/data/make_checkpoint.py tests/data/checkpoint-v1: a workdir of 2 training steps of
configs/gru.py on the adding task at a tiny size (its config is `config()` below), whose orbax
checkpoint (state, best params, stopped_at) and outputs.npz (the checkpointed model on fixed
inputs) tests/train_test.py holds later code to: the format of the checkpoints written before
the lab package (commit 3bd390e's train.py)."""

import os
import shutil
import sys

import jax
import numpy as np


def config():
  from configs import gru

  c = gru.get_config("adding")
  c.model.features, c.task.seq_len, c.task.eval_size = 4, 5, 8
  c.train.update(num_steps=2, batch_size=2, eval_batch_size=8, log_every=1, eval_every=2, checkpoint_every=2)
  c.opt.warmup_steps = 0
  return c


def inputs():
  return np.random.default_rng(0).normal(size=(2, 5, 2)).astype(np.float32)


def main(workdir):
  from gru_jax.lab import train

  shutil.rmtree(workdir, ignore_errors=True)
  train.train_and_evaluate(config(), workdir)
  _, model, item, step = train.restore(config(), workdir)
  params = jax.tree_util.tree_map(lambda x: x[0], item["state"].params)  # the seed axis
  outputs = model.apply({"params": params}, inputs())
  np.savez(os.path.join(workdir, "outputs.npz"), outputs=np.asarray(jax.device_get(outputs)), step=step)
  for name in ("tb",):  # only what the test reads is kept: config, checkpoint, outputs
    shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)


if __name__ == "__main__":
  main(sys.argv[1])
