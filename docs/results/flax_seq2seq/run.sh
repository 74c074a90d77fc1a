#!/bin/bash
# Flax's own examples/seq2seq (the addition task), run as Flax ships it and with only the cell's
# class name changed to ours (plus `import gru_jax as gj`): nn.LSTMCell -> gj.LSTMCell, and, for
# the GRU pair, nn.GRUCell against gj.GRUCell. Issue 17's "done when".
#
#   [FLAX_COMMIT=...] bash docs/results/flax_seq2seq/run.sh PATH/TO/flax/examples/seq2seq [steps]
#
# The example's own code is not copied into this repository; give the path to a checkout of
# https://github.com/google/flax. clu is not installed here, so a stand-in for its metric writer
# prints the scalars the example logs (train-batch loss and sequence accuracy; every batch is a
# fresh random draw of additions). Writes <variant>.log and the diffs next to this script.
set -euo pipefail
src=$(cd "$1" && pwd)
steps=${2:-2000}
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
# Where the example came from (FLAX_COMMIT when the path is not a git checkout) and what ran it.
commit=${FLAX_COMMIT:-$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)}
python "$out/summarize.py" --source "$src" "$commit" "$steps" > "$out/source.txt"
for variant in flax_lstm ours_lstm flax_gru ours_gru; do
  dir=$work/$variant
  mkdir -p "$dir/clu"
  cp "$src"/*.py "$dir"/
  touch "$dir/clu/__init__.py"
  cat > "$dir/clu/metric_writers.py" <<'PY'
class _Writer:
  def write_scalars(self, step, scalars):
    print("STEP", step, " ".join(f"{k}={float(v):.4f}" for k, v in sorted(scalars.items())), flush=True)
def create_default_writer(workdir):
  return _Writer()
PY
  case $variant in
    ours_lstm) sed -i 's/^from flax import linen as nn$/&\nimport gru_jax as gj/; s/nn\.LSTMCell(/gj.LSTMCell(/g' "$dir/models.py" ;;
    flax_gru) sed -i 's/nn\.LSTMCell(/nn.GRUCell(/g' "$dir/models.py" ;;
    ours_gru) sed -i 's/^from flax import linen as nn$/&\nimport gru_jax as gj/; s/nn\.LSTMCell(/gj.GRUCell(/g' "$dir/models.py" ;;
  esac
  diff "$src/models.py" "$dir/models.py" > "$out/$variant.diff" || true
  start=$(date +%s)
  (cd "$dir" && python train.py --workdir="$dir/w" --num_train_steps="$steps" --decode_frequency=100 2>/dev/null) \
    | grep '^STEP' > "$out/$variant.log"
  echo "wall_s $(( $(date +%s) - start ))" >> "$out/$variant.log"  # on a shared machine: not a speed comparison
done
python "$out/summarize.py" "$out"
