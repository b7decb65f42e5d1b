"""The dead-variants benchmark on a tiny model: its numbers are checked for
internal consistency (who froze, what was computed, survivors equal),
never against a time."""
import json
import os
import pathlib
import tempfile

_TMP = pathlib.Path(tempfile.mkdtemp(prefix="wr-dead-tests-"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WARMUP_RESEARCH_DATA_DIR", str(_TMP / "tfds"))

import pytest  # noqa: E402

from benchmarks import dead_variants  # noqa: E402

TINY = {"model.d_model": 32, "model.num_layers": 1, "model.num_heads": 2,
        "data.seq_len": 16, "data.batch_size": 4, "data.name": "synthetic",
        "train.checkpoint_every": 30}   # one checkpoint a run: the test times nothing


@pytest.mark.slow
def test_the_benchmark_skips_compacts_and_prunes_with_survivors_unchanged(tmp_path):
  steps = 30
  # 6 of the 24 variants, a third diverging, as in the full grid
  grid = dict(lrs=[1e-3, 1e-2, 3.0], shares=[0, 1 / 3])
  ways = dead_variants.measure(steps, rounds=2, **grid, **TINY)
  result = dead_variants.report(ways, steps, "test", **grid)
  dead_variants.write(result, tmp_path)
  saved = json.loads((tmp_path / "dead_variants.json").read_text())
  assert {"wall_ratio_skip", "wall_ratio_compact", "survivors_identical", "dead_fraction",
          "command"} <= set(saved)
  assert saved["dead_fraction"] >= 1 / 3
  # other programs than today's: equal within 1e-6 relative (docs/reliability.md;
  # bit-identical on AVX-512 CPUs, 1 ULP off on one without it)
  assert all(d <= 1e-6 for d in saved["survivors_max_rel_diff"].values())
  assert saved["survivors_identical"] == all(
      d == 0 for d in saved["survivors_max_rel_diff"].values())
  computed = saved["run_steps_computed"]
  assert saved["n_variants"] == 6 and saved["lrs"] == [1e-3, 1e-2, 3.0]
  assert computed["map, today"] == computed["vmap, today"] == 6 * steps
  assert computed["map, skip"] < computed["map, today"]      # frozen steps skipped
  assert computed["vmap, compact"] < computed["vmap, today"]  # ... or compacted away
  assert computed["map, skip + halving"] < computed["map, skip"]
  assert saved["compiles"]["vmap, today"] == 1 < saved["compiles"]["vmap, compact"]
  assert saved["step_ratio_skip"] > 0 and saved["step_ratio_compact"] > 0
  assert saved["rounds"] == 2 and saved["deterministic"]   # both rounds: the same rows
  assert all(len(r) == 2 for r in saved["wall_ratio_rounds"].values())
  assert saved["wall_ratio_rounds"]["map, today"] == [1.0, 1.0]
  # the program alone: today's ways and the two that drop frozen variants, call by call
  assert set(saved["program_s"]) == {"map, today", "map, skip", "vmap, today", "vmap, compact"}
  calls = dead_variants.PROGRAM_CALLS
  assert all(len(t) == calls and min(t) > 0 for t in saved["program_s"].values())
  assert saved["program_ratio_calls"]["map, today"] == [1.0] * calls
  assert saved["live_share"] == 1 - saved["dead_fraction"]
  assert "| map, skip | " in (tmp_path / "dead_variants.md").read_text().split("program alone")[1]
  pruned = [s for s in ways["map, skip + halving"]["summaries"] if s["outcome"] == "pruned"]
  assert pruned and all(s["diverged_step"] is None for s in pruned)
  assert "| map, skip |" in (tmp_path / "dead_variants.md").read_text()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["dead_variants.json", "dead_variants.md"]
