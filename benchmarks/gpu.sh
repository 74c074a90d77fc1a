#!/usr/bin/env bash
# A GPU session's measurements (the GPU results under benchmarks/results/ come from this script):
#
#   OUT=benchmarks/results bash benchmarks/gpu.sh STAGE...
#
# Stages:
#   tests     the library's test files on the GPU, with full-precision matmuls so that the 1e-5
#             parity tolerances apply (JAX's default fp32 matmul on a GPU may use TF32)
#   default   the speed suite's default set: the GPU target point, the CPU targets, the remat points
#   variants  our GRU at the GPU target point with unroll 1, 4, 16 (the default there) and remat
#   cmdbuf    the same, with XLA command buffers (CUDA graphs) extended to loops and conditionals
#   parallel  the parallel-scan cells (minGRU, minLSTM, SRU) against our sequential GRU, T to 4096
#   grid      the issue's grid, B {1,8,32,128} x T {64,256,1024} x H {128,256,512}: ours, Flax, cuDNN
#   kernel    the persistent Pallas GRU kernel (gru_jax/kernels/pallas_gru.py, Hopper only): its tests
#             compiled on the device (TF32 tolerances; ptxas register and spill report), then
#             benchmarks.kernel --quick (B=8, T=512, H=128, fp32 and bf16) against fused.scan and cuDNN;
#             where it wins, list the points in pallas_gru.FASTER (the layers' kernel="auto" then
#             runs it there) and rerun `grid`
#   scans     the linear-recurrence scans alone (benchmarks.scans): sequential, associative,
#             log-space, chunked, at B=16, H=256, T to 4096
#   chung2014 the chung2014 study at its full protocol on all four music sets (search, then final),
#             into $OUT/chung2014-<set>[-search]; publish as docs/results/ablations/run.sh says. It needs
#             the lab extra, which that machine lacks: WHEELS=<folder> installs it offline from wheels
#             made here (pip download --dest <folder> ml-collections tensorboardX tqdm matplotlib scipy),
#             carried along. Not yet run on a GPU.
#
# Runs with the machine's own jax/flax/optax/torch (CUDA builds); gru_jax comes from this checkout.
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
day=$(date -u +%F)
log="$OUT/gpu-$day-$(IFS=-; echo "$*").log"
variants="gru_jax.GRU,gru_jax.GRU[unroll=1],gru_jax.GRU[unroll=4],gru_jax.GRU[remat],flax.RNN(GRUCell),torch.nn.GRU"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import jax, flax, optax, torch; print(jax.devices(), 'jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__)"
  for stage in "$@"; do
    echo "== $stage"
    case $stage in
      tests)
        # train/config/task tests need ml-collections, orbax and the data packages, absent there.
        JAX_DEFAULT_MATMUL_PRECISION=highest timeout 400 python3 -m pytest -q -p no:cacheprovider -k "not from_its_config" \
          tests/cells_test.py tests/scan_test.py tests/fused_test.py tests/layers_test.py tests/pytorch_test.py \
          tests/parallel_test.py tests/variants_test.py 2>&1 | tail -15 ;;
      default) python3 -m benchmarks.speed --out="$OUT/gpu-$day" ;;
      variants) python3 -m benchmarks.speed --points=64x512x512x512 --models="$variants" --out="$OUT/gpu-$day-variants" ;;
      cmdbuf)
        XLA_FLAGS="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL --xla_gpu_graph_min_graph_size=1" \
          python3 -m benchmarks.speed --points=64x512x512x512 --models="$variants" --out="$OUT/gpu-$day-cmdbuf" ;;
      parallel) python3 -m benchmarks.speed --parallel_cells --out="$OUT/gpu-$day-parallel" ;;
      grid)
        python3 -m benchmarks.speed --grid --repeats=5 --warmup=1 --models="gru_jax.GRU,flax.RNN(GRUCell),torch.nn.GRU" \
          --out="$OUT/gpu-$day-grid" ;;
      kernel)
        JAX_DEFAULT_MATMUL_PRECISION=highest MOSAIC_GPU_DUMP_PTXAS=1 timeout 200 python3 -m pytest -q -p no:cacheprovider \
          tests/pallas_gru_test.py 2>&1 | grep -E "spill|Used|passed|failed|Error" | tail -30
        timeout 330 python3 -m benchmarks.kernel --quick --out="$OUT/gpu-$day-kernel" ;;
      scans) python3 -m benchmarks.scans --out="$OUT/gpu-$day-scans" ;;
      chung2014)
        if [ -n "${WHEELS:-}" ]; then
          python3 -m pip install --quiet --no-index --find-links "$WHEELS" ml-collections tensorboardX tqdm matplotlib scipy
        fi
        # several small programs share the one GPU: no process takes most of its memory up front
        export XLA_PYTHON_CLIENT_PREALLOCATE=false
        for set in jsb_chorales nottingham musedata piano_midi; do
          python3 -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=$set \
            --workdir="$OUT/chung2014-$set-search" --jobs=8
          python3 -m experiments.ablate --config=configs/ablations/chung2014.py --config.tasks=$set --config.phase=final \
            --config.search_dir="$OUT/chung2014-$set-search" --workdir="$OUT/chung2014-$set" --jobs=3
        done ;;
      *) echo "unknown stage $stage"; exit 2 ;;
    esac
  done
  date -u
} 2>&1 | tee "$log"
