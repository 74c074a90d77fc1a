"""A run's records: metrics.jsonl (one JSON object per log or evaluation) and TensorBoard events
(experiment tooling)."""

import json
import os
from typing import Any

from gru_jax.lab import files


class MetricWriter:
  """metrics.jsonl plus TensorBoard events; `truncate_after` drops records a killed run wrote.
  With `enabled=False` (every process but the first of a multi-process run) it reads and never
  writes."""

  def __init__(self, workdir: str, enabled: bool = True):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    self.tb = SummaryWriter(os.path.join(workdir, "tb")) if enabled else None

  def records(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_after(self, step: int) -> None:
    """Drops the records after `step`, written by a run killed after its last checkpoint, and the
    evaluations at the end (those with "at"; written again when the run ends)."""
    if not self.enabled:
      return
    kept = [r for r in self.records() if r["step"] <= step and "at" not in r]
    files.atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))

  def write(self, step: int, split: str, metrics: dict[str, Any], at: str | None = None, tb: bool = True) -> None:
    """One record; `at` names the parameters a test record scored ("best_valid" or "final")."""
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": step, "split": split, **({"at": at} if at else {}), **metrics}) + "\n")
    for name, value in metrics.items() if tb else ():
      self.tb.add_scalar(f"{split}/{name}" + (f"@{at}" if at else ""), value, step)

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()
