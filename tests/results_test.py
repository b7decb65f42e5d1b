"""Result tables from synthetic sweep records (no training): seeds merged as
mean ± std, diverged runs counted and left out of the means, LR sensitivity
with diverged runs at the initial loss, the best row starred, and the
command / code / hardware lines."""
import json
import math
import pathlib

import pytest
from helpers import tiny_config

from warmup_research import claims, plan, results, sweep, workdir
from warmup_research import config as config_lib
from warmup_research.errors import ConfigError

SWEPT = ["optimizer.peak_lr", "seed"]


def _row(lr, seed, final, status="finished", initial=5.0):
  return {"optimizer.peak_lr": lr, "seed": seed, "status": status, "final_eval_loss": final,
          "best_eval_loss": None if final is None else final - 0.1, "initial_eval_loss": initial}


ROWS = [_row(1e-3, 0, 3.0), _row(1e-3, 1, 3.2), _row(1e-2, 0, 2.0), _row(1e-2, 1, 2.4),
        _row(1e-1, 0, 150.0, "diverged"), _row(1e-1, 1, 4.0)]   # frozen before the bound


def test_aggregate_merges_seeds_and_counts_divergence():
  agg = {a["optimizer.peak_lr"]: a for a in results.aggregate(SWEPT, ROWS)}
  assert list(agg) == [1e-3, 1e-2, 1e-1]   # grid order, seed merged away
  assert agg[1e-3]["n"] == 2 and agg[1e-3]["final_eval_mean"] == pytest.approx(3.1)
  assert agg[1e-3]["final_eval_std"] == pytest.approx(math.sqrt(0.02))
  assert agg[1e-2]["best_eval_mean"] == pytest.approx(2.1)
  # the diverged seed counts as diverged and is left out of the mean
  assert agg[1e-1]["diverged"] == 1 and agg[1e-1]["final_eval_mean"] == 4.0
  assert agg[1e-1]["final_eval_std"] == 0.0
  assert agg[1e-1]["final_eval_ci95"] is None   # one finite value: no interval
  assert agg[1e-3]["stalled"] == 0


def test_lr_sensitivity_counts_partly_diverged_lrs_by_their_finite_seeds():
  agg = results.aggregate(SWEPT, ROWS)
  (sens,) = results.lr_sensitivities(SWEPT, ROWS, agg)
  # means 3.1, 2.2, 4.0 (one of two seeds diverged: the other counts); best 2.2
  assert sens["n_lrs"] == 3
  assert sens["lr_sensitivity"] == pytest.approx((3.1 + 2.2 + 4.0) / 3 - 2.2)
  all_diverged = ROWS[:4] + [_row(1e-1, s, float("nan"), "diverged") for s in (0, 1)]
  (sens,) = results.lr_sensitivities(SWEPT, all_diverged,
                                     results.aggregate(SWEPT, all_diverged))
  assert sens["lr_sensitivity"] == pytest.approx((3.1 + 2.2 + 5.0) / 3 - 2.2)   # initial loss


def test_markdown_stars_the_best_and_names_command_code_and_hardware():
  group = dict(command="python -m warmup_research sweep experiments/x.py", code="abc1234",
               finished_at="2026-12-02 12:00:00 UTC", train_step_compiles=1,
               device=dict(platform="cpu", device_kind="cpu", n_devices=2, n_processes=1,
                           mesh={"variant": 1, "data": 2}, host="Some CPU (AVX-512)"))
  loaded = dict(record=dict(experiment="experiments/x.py"), groups=[group])
  agg = results.aggregate(SWEPT, ROWS)
  md = results.markdown(loaded, SWEPT, ROWS, agg, results.lr_sensitivities(SWEPT, ROWS, agg))
  lines = md.splitlines()
  assert "- command: `python -m warmup_research sweep experiments/x.py` at code abc1234" in lines
  assert ("- hardware: 2 x cpu (cpu) on Some CPU (AVX-512), 1 process(es), "
          "mesh {'variant': 1, 'data': 2}") in lines
  starred = [l for l in lines if l.endswith("★ |")]
  # 2.0 and 2.4: mean 2.2, t interval 2.2 ± 12.7062 * 0.2 (t with 1 degree of freedom)
  assert starred == ["| 0.01 | 2 | 0/2 | 0/2 | 2.2000 [-0.3412, 4.7412] | 2.1000 ± 0.2828 | ★ |"]
  assert "| 0.1 | 2 | 0/2 | 1/2 | 4.0000 | 3.9000 ± 0.0000 |  |" in lines
  assert "| 3 | 0.9000 |" in lines   # LRs, sensitivity: (3.1 + 2.2 + 4.0) / 3 - 2.2


def test_csv_writes_missing_values_as_empty_cells():
  text = results.to_csv(["run_id", "diverged_step"], [{"run_id": "a", "diverged_step": None},
                                                      {"run_id": "b", "diverged_step": 7}])
  assert text == "run_id,diverged_step\na,\nb,7\n"


def test_a_half_finished_sweep_never_stars_or_averages_an_unfinished_run():
  rows = [_row(1e-3, 0, 3.0), _row(1e-3, 1, 3.2), _row(1e-2, 0, 1.5, "unfinished"),
          _row(1e-2, 1, 1.6, "unfinished"), _row(1e-1, 0, 2.9), _row(1e-1, 1, 3.1)]
  agg = results.aggregate(SWEPT, rows)
  by_lr = {a["optimizer.peak_lr"]: a for a in agg}
  assert by_lr[1e-2]["final_eval_mean"] is None and by_lr[1e-2]["unfinished"] == 2
  group = dict(command="c", code="x", finished_at="2026-12-02 12:00:00 UTC",
               train_step_compiles=1, device={})
  loaded = dict(record=dict(experiment="e.py"), groups=[group])
  sens = results.lr_sensitivities(SWEPT, rows, agg)
  md = results.markdown(loaded, SWEPT, rows, agg, sens).splitlines()
  assert [l for l in md if l.endswith("★ |")] == [
      "| 0.1 | 2 | 0/2 | 0/2 | 3.0000 [1.7294, 4.2706] | 2.9000 ± 0.1414 | ★ |"]
  assert any(l.startswith("- finished: not yet: 2 of 6 runs unfinished") for l in md)
  assert sens[0]["lr_sensitivity"] is None and "| 3 | n/a |" in md   # no data at 1e-2


def test_a_setting_where_every_lr_diverged_is_the_least_robust_not_the_most():
  swept = ["model.norm", "optimizer.peak_lr", "seed"]
  rows = [dict(_row(lr, 0, loss, status), **{"model.norm": norm})
          for norm, cells in (("pre", ((1e-3, 3.0, "finished"), (1e-2, 2.0, "finished"))),
                              ("post", ((1e-3, float("nan"), "diverged"),
                                        (1e-2, float("nan"), "diverged"))))
          for lr, loss, status in cells]
  sens = {s["model.norm"]: s["lr_sensitivity"]
          for s in results.lr_sensitivities(swept, rows, results.aggregate(swept, rows))}
  assert sens["pre"] == pytest.approx((3.0 + 2.0) / 2 - 2.0)
  assert sens["post"] == pytest.approx(5.0 - 2.0)   # initial loss minus the grid's best


def test_summary_json_is_strict_json_and_tokens_count_applied_updates():
  text = workdir.strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}})
  assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": 2}}
  assert "NaN" not in text and "Infinity" not in text
  assert results.applied_updates({"diverged_step": 7, "steps": 20}) == 7
  assert results.applied_updates({"diverged_step": None, "steps": 20}) == 20


def test_every_committed_result_matches_its_experiments_grid():
  # A fresh clone has results/NAME/.warmup_research.json but no sweep.json; re-running
  # the experiment is refused unless the marker's record hash equals today's grid.
  # A config field added with a default that changes the hash breaks every result.

  repo = pathlib.Path(__file__).resolve().parents[1]
  checked = 0
  for marker in sorted((repo / "results").glob("*/.warmup_research.json")):
    name = marker.parent.name
    spec = repo / "experiments" / f"{name}.py"
    if not spec.exists():
      continue
    variants = sweep.expand(config_lib.load(str(spec)), config_lib.load_sweep(str(spec)))
    found = claims.validate(config_lib.load_claims(str(spec)), sweep.swept_fields(variants))
    maps = results.validate_heatmaps(config_lib.load_heatmaps(str(spec)),
                                     sweep.swept_values(variants))
    record = sweep.sweep_record(f"experiments/{name}.py", variants, found, heatmaps=maps)
    assert json.loads(marker.read_text())["record_sha256"] == workdir.record_hash(record), name
    checked += 1
  assert checked >= 6


def test_heatmap_cells_fractions_and_the_best_lr_per_warmup():
  rows = []
  for w in (0, 10):
    for s in (0, 1, 2):
      rows += [dict(_row(1e-3, s, 3.0), **{"schedule.warmup_steps": w}, outcome="trained"),
               dict(_row(1e-2, s, 2.0 if w else 3.5 - 0.1 * s), outcome="stalled" if not w
                    else "trained", **{"schedule.warmup_steps": w}),
               dict(_row(1e-1, s, 2.5 if w else 150.0, "finished" if w else "diverged"),
                    outcome="trained" if w else "diverged", **{"schedule.warmup_steps": w})]
  swept = ["schedule.warmup_steps", *SWEPT]
  (m,) = results.heatmap(swept, rows, "schedule.warmup_steps", "optimizer.peak_lr")
  assert m["xs"] == [0, 10] and m["ys"] == [1e-3, 1e-2, 1e-1] and m["facet"] == {}
  assert m["loss_YxX"][1] == [pytest.approx(3.4), 2.0] and m["loss_YxX"][2] == [None, 2.5]
  assert m["stalled_YxX"][1] == [1.0, 0.0] and m["diverged_YxX"][2] == [1.0, 0.0]
  assert m["n_YxX"] == [[3, 3]] * 3
  best = {b["x"]: b for b in m["best"]}
  assert (best[0]["best"], best[0]["lo"], best[0]["hi"]) == (1e-3, 1e-3, 1e-3)
  assert (best[10]["best"], best[10]["n"], best[10]["loss"]) == (1e-2, 3, 2.0)
  md = "\n".join(results.heatmap_markdown([m]))
  assert "| 10 | 0.01 | [0.01, 0.01] | 3 | 2.0000 |" in md


def test_heatmap_axes_must_be_swept_numbers():
  values = {"optimizer.peak_lr": [1e-3, 1e-2], "model.norm": ["pre", "post"], "seed": [0, 0]}
  assert results.validate_heatmaps([], values) == []
  for pair, message in [(("model.norm", "optimizer.peak_lr"), "'model.norm' is not a swept"),
                        (("seed", "optimizer.peak_lr"), "allowed: optimizer.peak_lr"),
                        (("optimizer.peak_lr",), "must be an (x, y) pair")]:
    with pytest.raises(results.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
      results.validate_heatmaps([pair], values)


def test_pruned_runs_are_counted_never_averaged_and_leave_lr_sensitivity_unknown():
  group = dict(command="c", code="abc", finished_at="now", train_step_compiles=1, device={})
  loaded = dict(record=dict(experiment="experiments/x.py"), groups=[group])
  rows = ROWS[:4] + [dict(_row(1e-1, s, 3.5, "pruned"), outcome="pruned") for s in (0, 1)]
  agg = {a["optimizer.peak_lr"]: a for a in results.aggregate(SWEPT, rows)}
  assert agg[1e-1]["pruned"] == 2 and agg[1e-1]["final_eval_mean"] is None
  assert agg[1e-1]["diverged"] == 0 and agg[1e-1]["stalled"] == 0
  (sens,) = results.lr_sensitivities(SWEPT, rows, list(agg.values()))
  assert sens["lr_sensitivity"] is None   # not the diverged value: the pruned LR is unknown
  md = results.markdown(loaded, SWEPT, rows, list(agg.values()))
  assert "| peak_lr | n | stalled | diverged | pruned |" in md
  assert "| 0.1 | 2 | 0/2 | 0/2 | 2/2 | — | — |  |" in md
  assert "pruned: stopped by successive halving" in md


def fake_workdir(path, points, finals, overrides=(), diverged=()):
  """A finished sweep workdir without training: sweep.json of the grid
  `points` on a tiny config (`overrides`: base fields set), one group, and
  per run a metrics file whose final eval loss is `finals[i]` (run i in
  `diverged`: flagged diverged from update 10 on). Train rows carry every
  logged column, as the loop writes them."""
  variants = sweep.expand(tiny_config(**dict(overrides)), points)
  wd = pathlib.Path(path)
  for sub in ("groups", "metrics"):
    (wd / sub).mkdir(parents=True, exist_ok=True)
  (wd / "sweep.json").write_text(sweep.sweep_record("experiments/fake.py", variants))
  (wd / "groups" / "g000.json").write_text(json.dumps(dict(
      group="g000", run_ids=[v.run_id for v in variants], train_step_compiles=1, device={},
      command="c", finished_at="now", step_seconds=None, compile_seconds=None)))
  for i, (v, final) in enumerate(zip(variants, finals)):
    total = v.cfg.train.total_steps
    rows = [dict(step=s, loss=2.5 + 2.9 * 0.7 ** s + 0.05 * (-1) ** s + 0.01 * i, z_loss=0.0,
                 lr=v.cfg.optimizer.peak_lr * min(1, (s + 1) / 5), grad_norm=1.0 + 0.1 * s + i,
                 update_norm=0.01 * (s + 1), param_norm=10.0 + 0.01 * s,
                 diverged=int(i in diverged and s >= 10),
                 **{f"{m}/{b}": k * (i + 1) / (s + 1) for m, k in (("angle", 1e-3),
                                                                   ("update_ratio", 2e-3))
                    for b in ("blocks.0", "embed_VxD")}) for s in range(total)]
    rows += [dict(step=0, eval_loss=5.5), dict(step=total, eval_loss=final)]
    (wd / "metrics" / f"{v.run_id}.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                              for r in rows))
  return wd


def test_compare_pairs_seeds_and_names_the_config_fields_that_differ(tmp_path):
  grid = [{"optimizer.peak_lr": lr, "seed": s} for lr in (1e-3, 1e-2) for s in (0, 1)]
  a = fake_workdir(tmp_path / "a", grid, [3.0, 3.2, 2.0, 2.4])
  # B trains 10 more updates. At 1e-3 seed 0 loses 0.1 and seed 1 0.3: paired, 0.2 with
  # the t interval 0.2 +- 12.7062 * 0.1 (1 degree of freedom). At 1e-2 B has a third seed,
  # so the seeds do not pair: the difference of the means, 2.3 - 2.2. 0.1 is in B only.
  b = fake_workdir(tmp_path / "b", [*grid, {"optimizer.peak_lr": 1e-2, "seed": 2},
                                    {"optimizer.peak_lr": 1e-1, "seed": 0}],
                   [3.1, 3.5, 2.1, 2.2, 2.6, 4.0], overrides={"train.total_steps": 30})
  lines = results.compare(a, b).splitlines()
  assert "| train.total_steps | 20 | 30 |" in lines
  assert "| seed (swept) | 0, 1 | 0, 1, 2 |" in lines
  assert "| optimizer.peak_lr (swept) | 0.001, 0.01 | 0.001, 0.01, 0.1 |" in lines
  assert len([l for l in lines if l.startswith("| ")]) == 1 + 3 + 1 + 3   # headers, no other field
  rows = [l for l in lines if l.startswith("| 0.")]
  assert rows == [
      "| 0.001 | 3.1000 [1.8294, 4.3706] (2) | 3.3000 [0.7588, 5.8412] (2) | paired, n = 2 "
      "| [-1.0706, 1.4706] | +0.2000 |",
      "| 0.01 | 2.2000 [-0.3412, 4.7412] (2) | 2.3000 [1.6428, 2.9572] (3) | unpaired: "
      "seeds differ (A: 0, 1; B: 0, 1, 2) | — | +0.1000 |",
      "| 0.1 | — | 4.0000 (1) | — | — | — |"]
  # a diverged run drops its pair (it has no final loss to pair), and with it the interval
  c = fake_workdir(tmp_path / "c", grid, [3.1, 3.5, 2.1, 2.2], diverged=(1,))
  assert "| 3.1000 (2) | paired, n = 1 | n/a (1 pair) | +0.1000 |" in results.compare(a, c)
  # a workdir against itself: every row pairs, with no difference and no spread
  same = [l for l in results.compare(a, a).splitlines() if l.startswith("| 0.")]
  assert all("| paired, n = 2 |" in l and l.endswith("| +0.0000 |") for l in same), same
  assert "No config field differs." in results.compare(a, a)


def test_a_group_resumed_on_another_device_count_is_flagged():
  groups = [dict(group="g000", device_counts=[1]), dict(group="g001", device_counts=[1, 8]),
            dict(group="g002")]   # a record made before device counts were kept
  (line,) = results.resumed_elsewhere(groups)
  assert "resumed on another device count" in line and "g001 (1 and 8 devices)" in line
  assert "g000" not in line and results.resumed_elsewhere(groups[:1]) == []


def test_against_puts_a_remade_grid_beside_the_committed_table(tmp_path):
  def summary(d, host, losses):
    d.mkdir()
    (d / "summary.json").write_text(json.dumps(dict(device=dict(host=host), runs=[
        dict(run_id=r, final_eval_loss=x) for r, x in losses.items()])))
    return d
  old = summary(tmp_path / "old", "CPU A", {"a": 2.5, "b": 3.0})
  new = summary(tmp_path / "new", "CPU B", {"a": 2.525, "b": 3.0, "c": 1.0})
  text = results.against(new, old)
  assert "made on CPU A; this run: CPU B" in text
  assert "| a | 2.5000 | 2.5250 | +0.0250 |" in text and "| c | — | 1.0000 | — |" in text
  assert "largest difference: 0.0250 nats" in text
  with pytest.raises(results.ConfigError, match="summary.json: is not a readable"):
    results.against(new, tmp_path / "nothing")


def test_bits_per_byte_are_averaged_and_shown_beside_the_loss():
  rows = [dict(_row(1e-3, s, 3.0 + s), final_eval_bpb=1.0 + s) for s in (0, 1)]
  (agg,) = results.aggregate(SWEPT, rows)
  assert agg["final_eval_bpb_mean"] == 1.5
  loaded = dict(record=dict(experiment="x"), groups=[])
  md = results.markdown(loaded, SWEPT, rows, [agg])
  assert "| final eval loss | best eval loss | final eval bpb |" in md and "| 1.5000 |" in md
  assert "final eval bpb" not in results.markdown(loaded, SWEPT, ROWS,
                                                  results.aggregate(SWEPT, ROWS))
  assert results.RUN_COLUMNS[-2:] == ("final_eval_bpb", "best_eval_bpb")


def test_groups_recorded_before_tokens_per_byte_read_bytes_as_one(tmp_path):
  grid = [{"optimizer.peak_lr": 1e-3}]
  synthetic = results.run_rows(results.load(fake_workdir(tmp_path / "s", grid, [3.0])))[1]
  assert synthetic[0]["final_eval_bpb"] is None   # the copy task has no bytes
  wd = fake_workdir(tmp_path / "b", grid, [3.0], overrides={"data.name": "bytes"})
  (row,) = results.run_rows(results.load(wd))[1]
  assert row["final_eval_bpb"] == pytest.approx(3.0 / math.log(2))


COMMITTED = sorted(d for d in (pathlib.Path(__file__).resolve().parents[1] / "results").iterdir()
                   if d.is_dir() and d.name != "benchmarks")


def test_every_committed_table_re_makes_byte_for_byte(tmp_path):
  # A checkout holds a sweep's tables, not its record, group records or curves
  # (.gitignore), so its tables are re-made the way `report --claims --rederive`
  # re-makes them: the claims re-evaluated from runs.csv (plots left out: slow).
  names = ("runs.csv", "summary.md", "summary.json", "analysis.csv", workdir.MARKER)
  for d in COMMITTED:
    (tmp_path / d.name).mkdir()
    for name in names:
      if (d / name).is_file():
        (tmp_path / d.name / name).write_bytes((d / name).read_bytes())
  experiments = COMMITTED[0].parents[1] / "experiments"
  done = plan.rederive(tmp_path, experiments)
  with_claims = [d.name for d in COMMITTED if json.loads((d / "summary.json").read_text()).get(
      "claims") and (experiments / f"{d.name}.py").exists()]
  assert done == with_claims and done, done   # every table with claims was re-made
  changed = [f"{d.name}/{name}" for d in COMMITTED for name in names if (d / name).is_file()
             and (tmp_path / d.name / name).read_bytes() != (d / name).read_bytes()]
  assert not changed, f"re-made tables differ from the committed ones: {changed}"


def test_time_to_target_in_runs_csv_and_as_a_claim_metric_never_reached_counted(tmp_path):
  grid = [{"schedule.warmup_steps": w, "seed": s} for w in (0, 5) for s in (0, 1, 2)]
  # warmup reaches 3.0 at the last eval (update 20) on every seed; no warmup on seed 0 only
  wd = fake_workdir(tmp_path / "w", grid, [2.9, 3.2, 3.3, 2.8, 2.9, 2.95],
                    overrides={"train.target_eval_loss": 3.0})
  g = wd / "groups" / "g000.json"
  g.write_text(json.dumps(dict(json.loads(g.read_text()), step_seconds=0.5)))
  results.write(wd, plots=False, tensorboard=False)
  swept, rows = plan.read_runs(wd)
  got = [(r["updates_to_target"], r["seconds_to_target"], r["updates_budget"]) for r in rows]
  # seconds: 20 updates x 0.5 s per update of the group, shared over its 6 runs
  share = 20 * (0.5 / 6)
  assert got == [(20, share, 20), (None, None, 20), (None, None, 20)] + [(20, share, 20)] * 3
  c = dict(paper="p", a={"schedule.warmup_steps": 0}, b={"schedule.warmup_steps": 5},
           metric="updates_to_target", direction="lower")
  dropped = claims.evaluate(claims.claim("x", **c), swept, rows)
  # two of three seeds never reached it: fewer than min_seeds pairs, counted, not dropped
  assert dropped["verdict"].startswith("premise failed") and dropped["failed"]["a"] == [2, 3]
  capped = claims.evaluate(claims.claim("x", failures="cap", **c), swept, rows)
  assert capped["n_seeds"] == 3 and capped["effect"] == 0.0   # a lower bound: 20 vs 20
  assert capped["failed"]["a"] == [2, 3]
  secs = claims.evaluate(claims.claim("x", failures="cap", **dict(
      c, metric="seconds_to_target")), swept, rows)
  assert secs["n_seeds"] == 3 and secs["effect"] == 0.0
  # a pruned run stopped early: its time is unknown, never its budget
  assert claims._time_or_budget("updates_to_target", dict(rows[1], outcome="pruned")) is None
  with pytest.raises(ConfigError, match="failures must be"):
    claims.validate([claims.claim("x", failures="cap", **dict(c, metric="stalled"))], swept)
  # a grid without a target keeps runs.csv's columns as they were
  plain = fake_workdir(tmp_path / "p", grid[:1], [2.9])
  results.write(plain, plots=False, tensorboard=False)
  assert "updates_to_target" not in (plain / "runs.csv").read_text().splitlines()[0]
