"""The benchmark suite runs on a tiny grid and writes its files (no timing is asserted)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_speed_suite_runs_on_a_tiny_grid(tmp_path):
  out = tmp_path / "speed"
  models = "gru_jax.GRU,gru_jax.GRU[autodiff],flax.RNN(GRUCell),torch.nn.GRU,gru_jax.GRU[zoneout]"
  result = subprocess.run(
    [sys.executable, "-m", "benchmarks.speed", "--points=2x5x3x4", f"--models={models}", "--repeats=1", "--warmup=0",
     f"--out={out}"], cwd=ROOT, capture_output=True, text=True,
  )
  assert result.returncode == 0, result.stderr
  data = json.loads((tmp_path / "speed.json").read_text())
  assert [r["model"] for r in data["rows"]] == models.split(",")
  ours = data["rows"][0]
  assert set(ours["train_speedup_vs"]) == {"flax.RNN(GRUCell)", "torch.nn.GRU", "gru_jax.GRU[autodiff]"}
  assert "gru_jax.GRU" in data["rows"][-1]["train_speedup_vs"]  # an option against the plain GRU
  assert ours["xla_memory_mb"] > 0 and ours["compile_s"] > 0
  assert {"jax", "flax", "torch", "date", "matmul_peak_gflops"} <= set(data["environment"])
  assert "| 2 | 5 | 3 | 4 | gru_jax.GRU |" in (tmp_path / "speed.md").read_text()
  torch_row = data["rows"][3]  # what the peer ran: on the CPU, torch's operators (no cuDNN)
  assert "aten::gru" in torch_row["torch_kernels"] and torch_row["cudnn_rnn"] is None


def test_the_cudnn_algorithm_is_read_from_the_kernel_names():
  from benchmarks import report

  persistent = ["ampere_sgemm_32x32_sliced1x4_tn", "void RNN_blockPersist_fp_GRU<float, float, float>(...)"]
  standard = ["void elemWiseRNNcell<float, float, float, (cudnnRNNMode_t)3>(...)", "sm90_xmma_gemm_f32f32"]
  assert report.cudnn_rnn_algorithm(persistent) == "persistent"
  assert report.cudnn_rnn_algorithm(standard) == "standard"
  assert report.cudnn_rnn_algorithm(["aten::gru", "aten::linear"]) is None


def test_speed_suite_rejects_bad_points(tmp_path):
  result = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--points=2x5x3", f"--out={tmp_path / 's'}"],
                          cwd=ROOT, capture_output=True, text=True)
  assert result.returncode != 0 and "is not BxTxDxH" in result.stderr


@pytest.mark.slow
def test_seeds_benchmark_runs_both_ways_and_agrees(tmp_path):
  out = tmp_path / "seeds"
  result = subprocess.run([sys.executable, "-m", "benchmarks.seeds", "--quick", "--num_seeds=2", "--cases=gru:adding",
                           f"--out={out}"], cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  data = json.loads((tmp_path / "seeds.json").read_text())
  row = data["results"][0]
  assert row["case"] == "gru:adding" and row["num_seeds"] == 2 and row["vmapped_s"] > 0 and row["separate_s"] > 0
  for a, b in zip(row["test_vmapped"], row["test_separate"]):
    assert abs(a - b) <= 1e-5 * abs(b)
  assert "| gru:adding |" in (tmp_path / "seeds.md").read_text()


@pytest.mark.slow
def test_scaling_benchmark_runs_on_simulated_devices_and_agrees(tmp_path):
  out = tmp_path / "scaling"
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4")
  result = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--quick", "--device_counts=1,4", f"--out={out}"],
                          cwd=ROOT, capture_output=True, text=True, env=env)
  assert result.returncode == 0, result.stderr
  rows = json.loads((tmp_path / "scaling.json").read_text())["results"]
  assert [r["devices"] for r in rows] == [1, 4] and all(r["examples_per_s"] > 0 for r in rows)
  assert abs(rows[0]["final_loss"] - rows[1]["final_loss"]) <= 1e-5 * abs(rows[0]["final_loss"])
  assert "| 4 | 8 | 3 |" in (tmp_path / "scaling.md").read_text()


@pytest.mark.slow
def test_scan_benchmark_runs_tiny(tmp_path):
  """benchmarks.scans on a tiny point: every scan, and its accuracy table. (benchmarks.kernel, a
  GPU script, runs anywhere with --interpret; it is left out here for the suite's time: its kernel
  is tests/pallas_gru_test.py's.)"""
  scans = subprocess.run(
    [sys.executable, "-m", "benchmarks.scans", "--T=24", "--batch=2", "--hidden=8", "--accuracy_T=40", "--repeats=1",
     "--warmup=0", f"--out={tmp_path / 'scans'}"], cwd=ROOT, capture_output=True, text=True,
  )
  assert scans.returncode == 0, scans.stderr
  data = json.loads((tmp_path / "scans.json").read_text())
  assert {"sequential", "linear", "log_space", "chunked[16]"} <= {r["scan"] for r in data["rows"]}
  assert all(row["finite"] and row["h_error"] < 1e-3 for row in data["accuracy"])
