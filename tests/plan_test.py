"""plan: seeds needed from a pilot's paired sd, against a published power
table; rederive: committed tables re-read under today's claims."""
import json

from warmup_research import claims, metrics_io, plan, results, stats, workdir

EXPERIMENT = '''
from warmup_research import config as config_lib
from warmup_research.claims import claim, equivalent


def get_config(arg=None):
  return config_lib.default_config()


def get_claims(arg=None):
  a, b = {"schedule.warmup_steps": 0}, {"schedule.warmup_steps": 10}
  return [claim("warmup lowers the loss", paper="P", a=a, b=b, metric="final_eval_loss",
                direction="lower", effect=0.1),
          equivalent("warmup changes nothing", paper="P", a=a, b=b, metric="final_eval_loss",
                     margin=0.05),
          claim("warmup reaches 2.0 sooner", paper="P", a=a, b=b, metric="steps_to:2.0",
                direction="lower"),
          claim("warmup stalls less", paper="P", a=a, b=b, metric="stalled", direction="lower",
                effect=0.5)]
'''
COLUMNS = ["run_id", "schedule.warmup_steps", "seed", "status", "outcome", "final_eval_loss",
           "best_eval_loss", "initial_eval_loss"]


def _pilot(tmp_path, diffs):
  rows = []
  for s, d in enumerate(diffs):
    for w, loss in ((0, 3.0 + 0.01 * s), (10, 3.0 + 0.01 * s + d)):
      rows.append({"run_id": f"w{w}-s{s}", "schedule.warmup_steps": w, "seed": s,
                   "status": "finished", "outcome": "trained", "final_eval_loss": loss,
                   "best_eval_loss": loss, "initial_eval_loss": 5.0})
  pilot = tmp_path / "pilot"
  pilot.mkdir()
  (pilot / "runs.csv").write_text(results.to_csv(COLUMNS, rows))
  spec = tmp_path / "exp.py"
  spec.write_text(EXPERIMENT)
  return spec, pilot


def test_runs_csv_reads_back_with_its_types(tmp_path):
  _, pilot = _pilot(tmp_path, [0.0])
  swept, rows = plan.read_runs(pilot)
  assert swept == ["schedule.warmup_steps", "seed"]
  assert rows[1]["schedule.warmup_steps"] == 10 and rows[1]["final_eval_loss"] == 3.0
  assert rows[0]["outcome"] == "trained" and isinstance(rows[0]["seed"], int)


def test_the_outcomes_at_each_stall_margin_read_back_as_outcomes_not_axes(tmp_path):
  _, pilot = _pilot(tmp_path, [0.0])
  with open(pilot / "runs.csv") as f:
    lines = f.read().splitlines()
  margins = ",".join(f"outcome@{m}" for m in metrics_io.STALL_MARGINS)
  lines = [f"{lines[0]},{margins}"] + [f"{row},trained,slow,stalled" for row in lines[1:]]
  (pilot / "runs.csv").write_text("\n".join(lines) + "\n")
  swept, rows = plan.read_runs(pilot)
  assert swept == ["schedule.warmup_steps", "seed"]
  assert [rows[0][f"outcome@{m}"] for m in metrics_io.STALL_MARGINS] == [
      "trained", "slow", "stalled"]


def test_every_run_column_reads_back_as_a_result_not_an_axis():
  # a column runs.csv gained (the bits per byte) read as an axis would split every claim
  # into levels by loss value
  assert set(results.RUN_COLUMNS) <= set(plan.NUMBERS) | set(plan.TEXT)


def _power(n, d, alpha):
  """The paired t's power by hand: P(|T'| > t crit), T' noncentral t (df n - 1,
  noncentrality d sqrt(n))."""
  df, nc = n - 1, d * n ** 0.5
  crit = stats.sps.t.ppf(1 - alpha / 2, df)
  return stats.sps.nct.sf(crit, df, nc) + stats.sps.nct.cdf(-crit, df, nc)


def _line(text, start):
  return next(l for l in text.splitlines() if l.startswith(f"| {start}")).split(" | ")


def test_plan_gives_the_seeds_a_power_computation_gives_at_alpha_over_m(tmp_path):
  # paired differences with sd exactly 0.1 (sum of squares 0.04 over 4 degrees of freedom);
  # the declared effect 0.1 is Cohen's d = 1. Alone, at two-sided 5%, the paired t needs 10
  # pairs (G*Power: 10, power 0.803); over the experiment's 4 claims, at 0.05 / 4, 15
  spec, pilot = _pilot(tmp_path, [0.1, -0.1, 0.1, -0.1, 0.0])
  assert stats.seeds_needed(0.1, 0.1) == 10
  assert _power(14, 1.0, 0.0125) < 0.8 <= _power(15, 1.0, 0.0125)
  text = plan.plan(str(spec), pilot)
  assert "m = 4 (this experiment's claims" in text
  assert _line(text, "warmup lowers the loss")[2:7] == ["5", "0.1", "0.1", "0.0125", "15"]
  eq = _line(text, "warmup changes nothing")
  assert "margin 0.05" in eq and int(eq[6]) > 15
  assert "n/a (no effect declared)" in text
  # the rate claim is a sign test: the exact floor 2 x 2^-n < 0.0125 needs 8 seeds, which
  # its min_seeds (3) cannot reach; the pilot never stalled (sd 0), so every seed agrees
  rate = _line(text, "warmup stalls less")
  assert rate[6] == "8" and "min_seeds 3 cannot reach significance (the floor needs 8)" in (
      rate[7])


def test_a_group_sequential_claim_is_planned_at_its_last_looks_alpha(tmp_path):
  spec, pilot = _pilot(tmp_path, [0.1, -0.1, 0.1, -0.1, 0.0])
  spec.write_text(spec.read_text().replace(
      'direction="lower", effect=0.1)', 'direction="lower", effect=0.1, looks=[3, 6])'))
  text = plan.plan(str(spec), pilot)
  alpha = stats.look_alphas([3, 6])[-1] / 4   # what look 1 left of 0.05, over 4 claims
  assert _line(text, "warmup lowers the loss")[5] == f"{alpha:.3g}"
  assert _line(text, "warmup changes nothing")[5] == "0.0125"   # no plan: 0.05 / 4


def test_rederive_reads_committed_runs_under_todays_claims(tmp_path):
  spec, pilot = _pilot(tmp_path, [0.01, -0.01, 0.005, 0.0, -0.004])
  exp = tmp_path / "results" / "exp"
  (tmp_path / "experiments").mkdir()
  (tmp_path / "experiments" / "exp.py").write_text(spec.read_text())
  exp.mkdir(parents=True)
  (exp / "runs.csv").write_text((pilot / "runs.csv").read_text())
  old = [dict(claim="warmup lowers the loss", paper="P", a={"schedule.warmup_steps": 0},
              b={"schedule.warmup_steps": 10}, where={}, metric="final_eval_loss",
              direction="lower", at_best=None, method="paired t", comment="", effect=-0.001,
              n_pairs=5, verdict="inconclusive"),
         dict(claim="warmup reaches 2.0 sooner", paper="P", a={"schedule.warmup_steps": 0},
              b={"schedule.warmup_steps": 10}, where={}, metric="steps_to:2.0",
              direction="lower", at_best=None, method="paired t", comment="",
              verdict="reproduced")]
  (exp / "summary.json").write_text(json.dumps(dict(experiment="experiments/exp.py",
                                                    claims=old)))
  (exp / "summary.md").write_text("# table\n\nrows\n\nClaims (old):\n\n| old |\n")
  assert plan.rederive(tmp_path / "results", tmp_path / "experiments") == ["exp"]
  new = json.loads((exp / "summary.json").read_text())["claims"]
  assert [c["claim"] for c in new] == ["warmup lowers the loss", "warmup changes nothing",
                                       "warmup reaches 2.0 sooner", "warmup stalls less"]
  assert new[0]["n_seeds"] == 5 and "relabelled after the run" in new[0]["flags"]  # effect=
  assert new[1]["verdict"] == "equivalent" and "relabelled after the run" in new[1]["flags"]
  # steps_to needs eval curves, which are not committed: the old verdict stays, marked, and
  # its old count (which may be cells) is not shown as a number of seeds
  assert new[2]["verdict"] == "reproduced"
  assert new[2]["flags"] == ["old rule (its data is not committed)"]
  assert new[2]["n_seeds"] is None and claims.seeds(new[2]) == "n/a (old rule)"
  md = (exp / "summary.md").read_text()
  assert md.startswith("# table\n\nrows\n\nClaims (fixed") and "| old |" not in md


def test_runs_made_before_trajectories_get_their_stall_margins_from_final_losses(tmp_path):
  rows = [dict(run_id="a", outcome="trained", final_eval_loss=3.0),
          dict(run_id="b", outcome="diverged", final_eval_loss=9.0),
          dict(run_id="c", outcome="stalled", final_eval_loss=3.1)]
  summary = dict(groups=[dict(run_ids=["a", "b", "c"], unigram_entropy=3.25)])
  assert plan._margins_on_final_losses(rows, summary)
  # plateau levels 3.15 / 3.0 / 2.75: c, stalled by the rule of its run, trains at 0.1
  assert [[r[f"outcome@{m}"] for m in metrics_io.STALL_MARGINS] for r in rows] == [
      ["trained", "trained", "stalled"], ["diverged"] * 3, ["trained", "stalled", "stalled"]]
  # unknown entropy (a group record without it): nothing is made up
  bare = [dict(run_id="a", outcome="trained", final_eval_loss=3.0)]
  assert not plan._margins_on_final_losses(bare, dict(groups=[dict(run_ids=["a"])]))
  assert "outcome@0.1" not in bare[0]
  # a rederived rate claim then says what its margins were read on
  spec, pilot = _pilot(tmp_path, [0.0] * 5)
  (tmp_path / "experiments").mkdir()
  (tmp_path / "experiments" / "exp.py").write_text(spec.read_text())
  exp = tmp_path / "results" / "exp"
  exp.mkdir(parents=True)
  (exp / "runs.csv").write_text((pilot / "runs.csv").read_text())
  ids = [line.split(",")[0].strip('"') for line in (pilot / "runs.csv").read_text().split()[1:]]
  (exp / "summary.json").write_text(json.dumps(dict(
      experiment="experiments/exp.py", groups=[dict(run_ids=ids, unigram_entropy=3.3)],
      claims=[dict(claim="warmup stalls less", paper="P", a={"schedule.warmup_steps": 0},
                   b={"schedule.warmup_steps": 10}, where={}, metric="stalled",
                   direction="lower", at_best=None, method="paired t", comment="",
                   effect=0.5, verdict="inconclusive")])))
  plan.rederive(tmp_path / "results", tmp_path / "experiments")
  new = {c["claim"]: c for c in json.loads((exp / "summary.json").read_text())["claims"]}
  assert "stable on final losses" in new["warmup stalls less"]["flags"]
  assert "verdict_by_margin" not in new["warmup lowers the loss"]


def test_a_relabelled_marker_keeps_its_record_through_a_rerun_and_the_report_flags_it(
    tmp_path):
  # rederive moved the hash and recorded the old one; re-running the committed sweep
  # rewrites the marker through prepare, which used to drop relabelled_from
  record = json.dumps({"experiment": "x", "runs": [], "claims": []})
  wd = tmp_path / "w"
  workdir.prepare(wd, record, kind="sweep")
  marker = workdir.read_marker(wd)
  (wd / workdir.MARKER).write_text(json.dumps(dict(
      marker, relabelled_from="0" * 64, relabelled_claims=["warmup lowers the loss"])))
  workdir.prepare(wd, record, kind="sweep")   # the re-run
  again = workdir.read_marker(wd)
  assert again["relabelled_from"] == "0" * 64
  assert again["relabelled_claims"] == ["warmup lowers the loss"]
  # a different grid is not the relabelled one: its marker carries no such record
  assert workdir.relabelled(again, "1" * 64) == {}
  verdicts = claims.flag_relabelled([dict(claim="warmup lowers the loss", flags=[]),
                                     dict(claim="other", flags=[])],
                                    again["relabelled_claims"])
  assert [v["flags"] for v in verdicts] == [["relabelled after the run"], []]


def test_a_claim_on_another_experiments_runs_is_not_independent(tmp_path):
  _, pilot = _pilot(tmp_path, [0.1, -0.1, 0.1, -0.1, 0.05])
  _, rows = plan.read_runs(pilot)
  a, b = {"schedule.warmup_steps": 0}, {"schedule.warmup_steps": 10}
  c = dict(claim="x", a=a, b=b, where={})
  other = [dict(r, run_id="o" + r["run_id"]) for r in rows]
  verdict, flag = plan.independence(c, rows, {"other": plan._losses(other)})
  assert verdict == "not independent (reuses other's runs: a 5/5, b 5/5)" and flag is None
  half = [r for r in other if r["schedule.warmup_steps"] == 0]   # one side reused
  verdict, flag = plan.independence(c, rows, {"other": plan._losses(half)})
  assert verdict is None and flag == "reuses other's runs (a 5/5, b 0/5)"
  fresh = [dict(r, final_eval_loss=r["final_eval_loss"] + 1e-9) for r in other]
  assert plan.independence(c, rows, {"other": plan._losses(fresh)}) == (None, None)


def test_a_trend_is_one_test_of_its_slope_a_t_even_over_boundaries():
  v = {"kind": "trend", "method": "paired t of per-seed slopes (b - a per decade of x)",
       "per_level": [{"p": 0.1}, {"p": 0.2}, {"p": 0.3}]}
  assert plan._tested_levels(v) == 1 and plan._tested_levels(dict(v, kind="superiority")) == 3
  c = claims.trend("t", paper="P", a={"w": 0}, b={"w": 1}, metric="max_trained_lr",
                   x="non_embedding_params", direction="higher")
  assert not plan._exact_claim(c, v)
  assert plan._exact_claim(dict(c, kind="superiority"), v)   # a boundary claim's own test
