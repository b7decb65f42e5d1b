"""Benchmark code paths on tiny sizes: the numbers are checked for internal
consistency, never against a time."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

# Set before jax is imported, for this module and its subprocesses: JAX on
# CPU, datasets and compilation caches in a temporary directory.
_TMP = pathlib.Path(tempfile.mkdtemp(prefix="wr-bench-tests-"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WARMUP_RESEARCH_DATA_DIR", str(_TMP / "tfds"))
os.environ.setdefault("WARMUP_RESEARCH_JAX_CACHE", str(_TMP / "jax_cache"))

import pytest  # noqa: E402

from benchmarks import bench  # noqa: E402
from warmup_research import model  # noqa: E402

TINY = {"model.d_model": 32, "model.num_layers": 1, "model.num_heads": 2,
        "data.seq_len": 16, "data.batch_size": 4, "data.name": "synthetic"}


def test_matmul_rate_is_positive_and_finite():
  r = bench.matmul_gflops(n=128, reps=3)
  assert 0 < r < 1e6


def test_throughput_rows_are_consistent():
  (r,) = bench.throughput({"tiny": TINY}, steps=2, matmul_n=128)
  cfg = bench._base(TINY)
  tokens = 4 * 16
  assert r["tokens_per_step"] == tokens
  assert r["tokens_per_s"] == pytest.approx(tokens / r["step_s"])
  fpt = model.flops_per_token(model.ModelConfig.from_config(cfg), 16)
  assert r["model_gflops_per_s"] == pytest.approx(fpt * tokens / r["step_s"] / 1e9)
  assert r["matmul_ratio"] == pytest.approx(r["model_gflops_per_s"] / r["matmul_gflops"])
  # The parameter count is of ONE variant.
  d, f, layers = 32, 128, 1
  assert r["params"] == 256 * d + 16 * d + layers * (4 * d * d + 2 * d * f + 4 * d) + 2 * d


@pytest.mark.slow   # compiles several programs: with the benchmark runs, not the quick suite
def test_each_row_is_divided_by_the_faster_of_its_two_matmul_measurements(monkeypatch):
  rates = iter([100.0, 300.0, 250.0, 50.0])   # before / after row 1, before / after row 2
  monkeypatch.setattr(bench, "matmul_gflops", lambda *a, **k: next(rates))
  a, b = bench.throughput({"a": TINY, "b": TINY}, steps=2)
  assert (a["matmul_gflops"], b["matmul_gflops"]) == (300.0, 250.0)
  assert b["matmul_ratio"] == pytest.approx(b["model_gflops_per_s"] / 250.0)


@pytest.mark.slow   # compiles several programs: with the benchmark runs, not the quick suite
def test_sweep_scaling_ratios():
  rows = bench.sweep_scaling(ks=(1, 2), steps=2, run_steps=10, overrides=TINY)
  one, two = rows
  assert two["separate_step_s"] == pytest.approx(2 * one["step_s"])
  assert two["step_ratio"] == pytest.approx(two["step_s"] / (2 * one["step_s"]))
  assert one["step_ratio"] == pytest.approx(1.0)
  assert one["vs_one"] == 1.0 and two["vs_one"] == pytest.approx(two["step_s"] / one["step_s"])


def test_grid_compiles_counts_one_group_and_few_compilations():
  g = bench.grid_compiles(n_steps=3, overrides=TINY)
  assert g["n_variants"] == 24 and g["n_groups"] == 1
  # the train step once, plus init / eval / small helpers; never one per variant
  assert 1 <= g["backend_compiles"] < 24
  assert 0 < g["train_step_compile_s"] <= g["backend_compile_s"]


def _cli(*args, env=None):
  return subprocess.run([sys.executable, "-m", "benchmarks.bench", *args],
                        capture_output=True, text=True, env=env, timeout=600, cwd=bench.REPO)


@pytest.mark.slow
def test_quick_prints_one_json_line_with_the_agreed_keys():
  out = _cli("--quick", "--steps", "2")
  assert out.returncode == 0, out.stderr
  last = json.loads(out.stdout.strip().splitlines()[-1])
  for key in ("tokens_per_s", "model_gflops_per_s", "matmul_gflops_per_s"):
    assert last[key] > 0
  assert last["matmul_ratio"] == pytest.approx(
      last["model_gflops_per_s"] / last["matmul_gflops_per_s"], rel=1e-2)


def test_one_call_runs_the_same_train_program_as_the_full_run():
  from warmup_research import data, mesh
  from warmup_research.program import GroupProgram
  texts = []
  for overrides in ({**TINY, "schedule.warmup_steps": 5}, {**TINY, **bench.one_call(5)}):
    cfg = bench._base(overrides)
    prog = GroupProgram([cfg], mesh.make(1, 1))
    batches = prog.put_batches(data.Batches(cfg).train_steps(0, 5))
    texts.append(prog.steps.lower(prog.abstract_state, batches, prog.hp).as_text())
  assert bench._base(TINY).train.total_steps != 5
  assert texts[0] == texts[1]


def test_compile_table_reports_medians_over_rounds_and_each_rounds_ratio(tmp_path):
  def row(case, label, rnd, to_first, compile_s):
    return dict(case=case, label=label, round=rnd, import_s=1.0, startup_s=to_first - 1.0,
                compile_s=compile_s, to_first_step_s=to_first, steps_per_call=5,
                backend_compiles=21 if label == "cold cache" else 0,
                cache_hits=0 if label == "cold cache" else 21, process_s=to_first + 2.0)
  # (cold, warm) time to first step and compile per round, for one case
  rounds = [((12.0, 9.0), (4.0, 2.0)), ((10.0, 8.0), (5.0, 1.0)), ((15.0, 6.0), (3.0, 3.0))]
  cw = [row("one run", label, rnd, *vals)
        for rnd, pair in enumerate(rounds) for label, vals in zip(("cold cache", "warm cache"), pair)]
  parts = lambda scale: {p: scale * (i + 1) / 100 for i, p in enumerate(bench.PARTS)}
  cw += [dict(row(bench.PARTS_CASE, label, rnd, 10.0 * f, 1.0), parts=parts(f))
         for rnd in range(3) for label, f in (("cold cache", 2.0 + rnd), ("warm cache", 1.0))]
  cold, warm = bench.first_step_summary(cw)[:2]
  assert (cold["to_first_step_s"], warm["to_first_step_s"]) == (12.0, 4.0)   # medians
  assert (cold["compile_s"], warm["compile_s"]) == (8.0, 2.0)
  assert cold["cold_over_warm"]["to_first_step_s"] == [3.0, 2.0, 5.0]
  assert cold["rounds"] == 3 and warm["cache_hits"] == 21
  grid = dict(n_variants=24, n_groups=1, backend_compiles=19, backend_compile_s=16.0,
              train_step_compile_s=8.0, wall_s=28.0)
  bench.write_compile_table(grid, cw, tmp_path / "compile.md", "cmd")
  text = (tmp_path / "compile.md").read_text()
  assert "| one run | warm cache | 1.00 | 3.00 | 2.00 | 4.00 | 0 | 21 | 6.00 |" in text
  assert ("compile 4.0x (rounds: 4.5 / 8.0 / 2.0) and the time from the start of the process "
          "to the end of the first step 3.0x (rounds: 3.0 / 2.0 / 5.0)") in text
  # the parts section: medians per part (cold scale 2 / 3 / 4 -> 3), and the bound:
  # the warm imports, loads and first runs are parts 1, 4, 5, 7, 8, 10, 11 (/ 100 s)
  assert "| init: trace + lower | 0.09 | 0.03 |" in text   # part 3
  assert "| to the end of the first call | 30.00 | 10.00 |" in text
  assert "still spend 0.46 s" in text and "more than 65.2x" in text and "shipped: 3.0x" in text


def _first_step_cold_then_warm(tmp_path, *flags):
  """`bench first-step` of the tiny model twice, in fresh processes sharing
  one new cache dir (what is cached does not depend on the model's size)."""
  rows = []
  for _ in range(2):
    out = _cli("first-step", "--cache-dir", str(tmp_path / "cache"), *flags,
               *bench.config_flags(TINY))
    assert out.returncode == 0, out.stderr
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  return rows


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--single"]], ids=["grid", "single"])
def test_second_process_hits_the_persistent_cache(tmp_path, flags):
  rows = _first_step_cold_then_warm(tmp_path, *flags)
  assert rows[0]["cache_hits"] == 0 and rows[0]["backend_compiles"] >= 3  # init, step, eval
  assert rows[1]["cache_hits"] >= 3 and rows[1]["backend_compiles"] == 0   # compiles nothing
  for r in rows:
    assert 0 < r["compile_s"] < r["startup_s"] < r["to_first_step_s"]


@pytest.mark.slow
def test_first_step_parts_add_up_and_the_warm_process_only_loads(tmp_path):
  rows = _first_step_cold_then_warm(tmp_path, "--parts")
  cold, warm = rows
  assert cold["cache_hits"] == 0 and cold["backend_compiles"] >= 3   # init, eval, train
  assert warm["cache_hits"] == cold["backend_compiles"] and warm["backend_compiles"] == 0
  for r in rows:
    assert list(r["parts"]) == list(bench.PARTS) and min(r["parts"].values()) > 0
    assert sum(r["parts"].values()) == pytest.approx(r["to_first_step_s"], abs=0.05)
    assert r["compile_s"] == r["parts"]["train_compile"]


@pytest.mark.slow
@pytest.mark.parametrize("args,field", [(["--steps", "0"], "--steps"),
                                        (["sweep", "--ks", "1,x"], "--ks"),
                                        (["gpu"], "bench gpu"),
                                        (["first-step", "--single", "--config.model.d_model=x"],
                                         "config.model.d_model"),
                                        (["first-step", "--bogus"], "--bogus")])
def test_bad_bench_arguments_exit_2(args, field):
  out = _cli(*args)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1].startswith(f"error: {field}")


@pytest.mark.slow
def test_gpu_tables_on_cpu_with_tiny_sizes(tmp_path, capsys):
  # What `bench gpu` runs, shrunk: bf16 model and matmul, the cuDNN row
  # (which fails without a GPU and is left out), the sweep with its vs-K=1
  # column, and cold/warm first-step processes of a tiny config given as
  # --config flags (one run, and one part by part).
  tiny = bench.config_flags(TINY)
  bench.gpu(tmp_path, "bench gpu (test)", steps=2, ks=(1, 2), sweep_overrides=TINY,
            sizes={"tiny bf16": {**TINY, "model.dtype": "bfloat16"}}, matmul_n=128,
            first_step_cases={"tiny one run": ["--single", *tiny],
                              "tiny parts": ["--parts", *tiny]})
  mfu = (tmp_path / "gpu_mfu.md").read_text()
  assert "| tiny bf16 |" in mfu and "bfloat16 128x128 matmul" in mfu
  assert "cudnn" not in mfu
  assert "model.attention=cudnn failed: ConfigError" in capsys.readouterr().out
  rows = [l for l in (tmp_path / "gpu_sweep.md").read_text().splitlines()
          if l.startswith("| 1 |") or l.startswith("| 2 |")]
  assert len(rows) == 2 and rows[0].split("|")[5].strip() == "1.00x"
  text = (tmp_path / "gpu_compile.md").read_text()
  assert text.startswith("# GPU: time to the first step") and "24-variant grid" not in text
  cells = {(c[1], c[2]): c for l in text.splitlines()
           if (c := [x.strip() for x in l.split("|")])[1:2] in (["tiny one run"], ["tiny parts"])}
  assert set(cells) == {(case, label) for case in ("tiny one run", "tiny parts")
                        for label in ("cold cache", "warm cache")}
  for case in ("tiny one run", "tiny parts"):   # XLA compilations, cache hits
    assert cells[case, "cold cache"][8] == "0" and int(cells[case, "cold cache"][7]) >= 3
    assert cells[case, "warm cache"][7] == "0" and int(cells[case, "warm cache"][8]) >= 3
  assert "## Where the warm start goes: tiny parts" in text
  assert "Where the warm start goes: tiny one run" not in text


@pytest.mark.slow
def test_first_step_takes_config_overrides(tmp_path):
  # The overrides reach the model: a tiny config's parameter count, not the quickstart's.
  out = _cli("first-step", "--single", *bench.config_flags(TINY))
  assert out.returncode == 0, out.stderr
  row = json.loads(out.stdout.strip().splitlines()[-1])
  assert row["params"] == 256 * 32 + 16 * 32 + (4 * 32 * 32 + 2 * 32 * 128 + 4 * 32) + 2 * 32
