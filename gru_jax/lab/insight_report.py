"""The inspection reports of `experiments.inspect` (and `experiments.ablate --inspect`): a run, runs
compared, fresh cells compared; each a folder of PNG plots, JSON numbers and an index.md.
Experiment tooling (the `lab` extra)."""

import ast
import json
import os

import jax
import ml_collections
import numpy as np

from gru_jax.lab import config as config_lib
from gru_jax import insight
from gru_jax.lab import insight_plots, tasks, train
from gru_jax.lab.tasks import text as text_lib


def load_run(workdir: str, which: str = "best"):
  """(config, task, linen model, parameters of the first seed) of the run in `workdir`."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      config = ml_collections.ConfigDict(json.load(f))
  except FileNotFoundError as e:
    raise train.CheckpointError(f"{workdir}/config.json: no such file; is {workdir} a training run's folder?") from e
  if which == "init":
    task, model, tx, _ = train.build(config)
    params = train.create_train_state(model, tx, task, train.seed_keys(config)[0][0]).params
  else:
    task, model, ckpt, _ = train.restore(config, workdir)
    tree = ckpt["best_params"] if which == "best" else ckpt["state"].params
    params = jax.tree_util.tree_map(lambda x: x[0], tree)
  return config, task, model.clone(front_end="linen"), params


def valid_batch(task: tasks.Task, count: int) -> dict[str, np.ndarray]:
  return {k: v[:count] for k, v in task.held_out("valid").items()}


def encode_text(config, task: tasks.Task, text: str) -> tuple[dict[str, np.ndarray], list[str]]:
  """The --text as a batch of one, and its tokens as the model sees them (cut at the task's length)."""
  if task.vocab is None or task.classes is None:
    raise train.ConfigError(f"--text needs a text-classification run (sentiment, text_classify); this one trained "
                            f"task.name={config.task.name!r}")
  tokens = text_lib.tokenize(text, config.task.tokens)[: config.task.seq_len]
  if not tokens:
    raise train.ConfigError("--text has no tokens")
  ids, lengths = text_lib.encode([text], task.vocab, config.task.tokens, len(tokens))
  return {"xs": ids, "seq_lengths": lengths}, [t if t in task.vocab else f"{t}?" for t in tokens]


def inspect_run(workdir: str, out: str, *, which: str = "best", examples: int = 16, text: str | None = None) -> str:
  """Writes the plots, statistics and index.md of the run in `workdir` into `out`; returns index.md."""
  config, task, model, params = load_run(workdir, which)
  os.makedirs(out, exist_ok=True)
  batch = valid_batch(task, examples)
  loss = lambda outputs: task.loss_and_metrics(outputs, batch)[0]
  flow = insight.gradient_flow(model, params, batch["xs"], loss, seq_lengths=batch.get("seq_lengths"))
  _, records = insight.trace(model, params, batch["xs"], seq_lengths=batch.get("seq_lengths"))
  stats = {k: float(v) for k, v in insight.gate_statistics(records).items()}
  with open(os.path.join(out, "gate_statistics.json"), "w") as f:
    json.dump(stats, f, indent=2, sort_keys=True)
  name = f"{config.model.cell} on {config.task.name} ({which} parameters)"
  insight_plots.curves(flow, os.path.join(out, "gradient_flow.png"), title=f"Gradient through time: {name}",
                       xlabel="t", ylabel="mean ||dLoss/dh_t||")
  first = next(iter(records))
  jac = insight.state_jacobians(records[first])
  series = {f"sigma_{i + 1}(dh_t+1/dh_t)": jac["singular_values"][:, i] for i in range(jac["singular_values"].shape[1])}
  series["||dh_T/dh_t||"] = jac["to_end"]
  insight_plots.curves(series, os.path.join(out, "jacobians.png"), title=f"State Jacobians, {first}, example 0: {name}",
                       xlabel="t", ylabel="singular value / norm")
  sections = [
    ("Gradient through time", "![gradient flow](gradient_flow.png)\n\nMean over the first "
     f"{len(batch['xs'])} valid examples of the norm of dLoss/dh_t, one line per recurrent layer."),
    ("State Jacobians", "![jacobians](jacobians.png)\n\nLargest singular values of dh_{t+1}/dh_t and the spectral "
     f"norm of dh_T/dh_t along example 0, layer {first}."),
  ]
  if text is None:
    example = {k: v[:1] for k, v in batch.items()}
    tokens, caption = None, "valid example 0"
  else:
    example, tokens = encode_text(config, task, text)
    caption = f"the text ({len(tokens)} tokens; `?` marks tokens outside the vocabulary)"
  outputs, example_records = insight.trace(model, params, example["xs"], seq_lengths=example.get("seq_lengths"))
  gates = {k: np.asarray(v[0]) for k, v in example_records[first].gates.items()}
  if tokens is not None:
    gates = {k: v[: len(tokens)] for k, v in gates.items()}
  body = f"Gate statistics of every layer: [gate_statistics.json](gate_statistics.json) ({len(stats)} numbers)."
  if gates:
    insight_plots.gate_heatmap(gates, os.path.join(out, "gates.png"), title=f"Gates of {first} on {caption}: {name}",
                               tokens=tokens)
    body = f"![gates](gates.png)\n\nThe gates of {first} on {caption}; the bars: the mean share of the state each step " \
           "writes anew (1 - keep).\n\n" + body
  if text is not None:
    probabilities = np.asarray(jax.nn.softmax(outputs[0]))
    ranked = sorted(zip(task.classes, probabilities), key=lambda p: -p[1])
    body += "\n\nPrediction: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked) + f"\n\nText: {text}"
    with open(os.path.join(out, "prediction.json"), "w") as f:
      written = {} if "keep" not in gates else {"written": [float(w) for w in 1.0 - gates["keep"].mean(axis=-1)]}
      json.dump({"text": text, "tokens": tokens, "probabilities": dict(ranked), **written}, f, indent=2, default=float)
  sections.append(("Gates", body))
  return insight_plots.write_index(out, f"Inspection of {workdir}: {name}", sections)


def first_layer_curves(task: tasks.Task, model, params, examples: int) -> tuple[np.ndarray, np.ndarray]:
  """(the first layer's mean ||dLoss/dh_t|| on the first `examples` valid examples, its
  ||dh_T/dh_t|| along valid example 0)."""
  batch = valid_batch(task, examples)
  loss = lambda outputs: task.loss_and_metrics(outputs, batch)[0]
  flow = insight.gradient_flow(model, params, batch["xs"], loss, seq_lengths=batch.get("seq_lengths"))
  first = next(iter(flow))
  _, records = insight.trace(model, params, batch["xs"], seq_lengths=batch.get("seq_lengths"))
  return flow[first], insight.state_jacobians(records[first])["to_end"]


def compare_cells(config, cells: list[str], out: str, *, seed: int = 0, examples: int = 16) -> str:
  """Fresh models of `cells` on the config's task: their gradient flow and ||dh_T/dh_t|| (first
  layer, example 0) in one plot each, and index.md; returns its path."""
  os.makedirs(out, exist_ok=True)
  flows, to_end = {}, {}
  for entry in cells:
    cell, *options = entry.split(":")
    if config is None:
      c = config_lib.for_cell(cell, "adding")
    else:
      c = config.copy_and_resolve_references()
      c.model.cell = cell
    for option in options:  # e.g. gru:chrono_init=100
      key, sep, value = option.partition("=")
      if not sep:
        raise train.ConfigError(f"--cells: {entry!r}: options are cell:key=value, e.g. gru:chrono_init=100")
      try:
        value = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        pass  # a string
      c.model.cell_kwargs = dict(c.model.cell_kwargs or {}, **{key: value})
    c.seed = seed
    task, model, tx, _ = train.build(c)
    params = train.create_train_state(model, tx, task, train.seed_keys(c)[0][0]).params
    flows[entry], to_end[entry] = first_layer_curves(task, model, params, examples)
  task_name = config.task.name if config is not None else "adding"
  insight_plots.curves(flows, os.path.join(out, "gradient_flow.png"), xlabel="t", ylabel="mean ||dLoss/dh_t||",
                       title=f"Gradient through time at initialisation ({task_name}, first layer)")
  insight_plots.curves(to_end, os.path.join(out, "to_end.png"), xlabel="t", ylabel="||dh_T/dh_t||",
                       title=f"How much of h_t reaches h_T, at initialisation ({task_name}, example 0)")
  return _summary_index(out, f"Fresh {', '.join(cells)} on {task_name}", flows, to_end)


def compare_runs(workdirs: list[str], out: str, *, which: str = "best", examples: int = 16) -> str:
  """Trained runs side by side: each run's gradient flow and ||dh_T/dh_t|| (first layer, valid
  example 0) in one plot each, and index.md; returns its path."""
  os.makedirs(out, exist_ok=True)
  flows, to_end, labels = {}, {}, {}
  for workdir in workdirs:
    config, task, model, params = load_run(workdir, which)
    label = f"{config.model.cell} ({os.path.basename(os.path.normpath(workdir))})"
    flows[label], to_end[label] = first_layer_curves(task, model, params, examples)
    labels[label] = config.task.name
  tasks_ = ", ".join(sorted(set(labels.values())))
  insight_plots.curves(flows, os.path.join(out, "gradient_flow.png"), xlabel="t", ylabel="mean ||dLoss/dh_t||",
                       title=f"Gradient through time, trained ({which} parameters; {tasks_}, first layer)")
  insight_plots.curves(to_end, os.path.join(out, "to_end.png"), xlabel="t", ylabel="||dh_T/dh_t||",
                       title=f"How much of h_t reaches h_T, trained ({tasks_}, valid example 0)")
  return _summary_index(out, f"Trained runs: {', '.join(workdirs)}", flows, to_end)


def _summary_index(out: str, title: str, flows: dict, to_end: dict) -> str:
  summary = {label: {"grad_norm_first_step": float(flows[label][0]), "grad_norm_last_step": float(flows[label][-1]),
                     "to_end_first_step": float(to_end[label][0])} for label in flows}
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  rows = "\n".join(f"| {label} | {s['grad_norm_last_step']:.3g} | {s['grad_norm_first_step']:.3g} | "
                   f"{s['to_end_first_step']:.3g} |" for label, s in summary.items())
  table = "| model | ‖dLoss/dh_T‖ | ‖dLoss/dh_1‖ | ‖dh_T/dh_1‖ |\n|---|---|---|---|\n" + rows
  return insight_plots.write_index(out, title, [
    ("Gradient through time", "![gradient flow](gradient_flow.png)\n\n" + table),
    ("State Jacobian to the end", "![to end](to_end.png)"),
  ])
