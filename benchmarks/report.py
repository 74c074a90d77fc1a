"""Where a benchmark's results go: <out>.json (environment and rows) and <out>.md (the table)."""

import json
import os


def write(out: str, env: dict, results: list, table: str) -> None:
  """Writes <out>.json and <out>.md (creating the folder) and prints the table."""
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump({"environment": env, "results": results}, f, indent=2)
  with open(out + ".md", "w") as f:
    f.write(table)
  print(table)
