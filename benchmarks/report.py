"""Where a benchmark's results go: <out>.json (environment and rows) and <out>.md (the table)."""

import json
import os
import re
from typing import Any, Callable


def write(out: str, env: dict, results: list, table: str) -> None:
  """Writes <out>.json ({"environment", "results"}) and <out>.md (creating the folder) and prints
  the table."""
  write_result(out, {"environment": env, "results": results}, table)


def write_result(out: str, result: dict, table: str) -> None:
  """Writes the whole `result` to <out>.json and `table` to <out>.md (creating the folder), and
  prints the table."""
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(result, f, indent=2)
  with open(out + ".md", "w") as f:
    f.write(table)
  print(table)


def launched_kernels(run_step: Callable[[], Any], cuda: bool) -> list[str]:
  """The kernels (CUDA) or operators (CPU) that one call of a torch `run_step` launches, by name,
  each once, in launch order (torch.profiler)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.profiler import ProfilerActivity, profile  # pylint: disable=g-import-not-at-top

  activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU
  with profile(activities=[activity]) as prof:
    run_step()
  wanted = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
  names = []
  for event in prof.events():
    if event.device_type == wanted and event.name not in names:
      names.append(event.name)
  return names


def cudnn_rnn_algorithm(kernels: list[str]) -> str | None:
  """A label for the cuDNN RNN algorithm from its kernels' names: "persistent" when a name says
  so (cuDNN's persistent kernels are named *persist*), "standard" for other cuDNN RNN kernels,
  None without any (e.g. on the CPU). The full list is kept next to it in the results."""
  rnn = [k for k in kernels if re.search(r"rnn|gru|lstm|persist", k, flags=re.I) and not k.startswith("aten::")]
  if not rnn:
    return None
  return "persistent" if any(re.search("persist", k, flags=re.I) for k in rnn) else "standard"
