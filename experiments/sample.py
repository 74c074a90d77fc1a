"""Generate text from a trained character language model (the char_lm task).

  python -m experiments.sample --workdir=runs/gru-charlm --length=300 --temperature=0.8 --prime="The "

Rebuilds the run from workdir/config.json, restores its latest checkpoint, takes the parameters
that were best on the valid text (of the first seed, when the run trained several), and samples
one character at a time, carrying the recurrent state; temperature 0 picks the most likely character.
"""

import json
import sys

import jax
import jax.numpy as jnp
import ml_collections
from absl import app, flags, logging

from gru_jax.lab import tasks, train
from gru_jax.lab.tasks import text as text_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "The run folder of a char_lm training run.", required=True)
_LENGTH = flags.DEFINE_integer("length", 300, "Characters to generate after the prime.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 takes the most likely character.")
_PRIME = flags.DEFINE_string("prime", "\n", "Text to start from.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def sample(workdir: str, length: int, temperature: float, prime: str, seed: int) -> str:
  """The prime followed by `length` sampled characters."""
  try:
    with open(f"{workdir}/config.json") as f:
      config = ml_collections.ConfigDict(json.load(f))
  except FileNotFoundError as e:
    raise train.CheckpointError(f"{workdir}/config.json: no such file; is {workdir} a training run's folder?") from e
  if config.task.name != "char_lm":
    raise train.ConfigError(f"sampling needs a char_lm run; {workdir} trained task.name={config.task.name!r}")
  if temperature < 0 or length < 0 or not prime:
    raise train.ConfigError("--temperature and --length must be >= 0 and --prime non-empty")
  task, model, ckpt, _ = train.restore(config, workdir)
  params = jax.tree_util.tree_map(lambda x: x[0], ckpt["best_params"])  # the first seed's
  inverse = {i: c for c, i in task.vocab.items()}
  ids = jnp.asarray(text_lib.encode([prime], task.vocab, "chars", len(prime))[0])
  apply = jax.jit(lambda p, x, c: model.apply({"params": p}, x, initial_carry=c, return_carry=True))
  logits, carry = model.apply({"params": params}, ids, return_carry=True)
  logits = logits[0, -1]
  key = jax.random.key(seed)
  out = []
  for i in range(length):
    if temperature == 0:
      token = int(jnp.argmax(logits))
    else:
      token = int(jax.random.categorical(jax.random.fold_in(key, i), logits / temperature))
    out.append(inverse.get(token, "\ufffd"))
    step_logits, carry = apply(params, jnp.asarray([[token]]), carry)
    logits = step_logits[0, -1]
  return prime + "".join(out)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    print(sample(_WORKDIR.value, _LENGTH.value, _TEMPERATURE.value, _PRIME.value, _SEED.value))
  except (train.ConfigError, tasks.DataError, train.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
