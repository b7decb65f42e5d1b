"""plan: seeds needed from a pilot's paired sd, against a published power
table; rederive: committed tables re-read under today's claims."""
import json

from warmup_research import plan, results

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
                direction="lower")]
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


def test_plan_gives_the_seeds_a_published_power_table_gives(tmp_path):
  # paired differences with sd exactly 0.1 (sum of squares 0.04 over 4 degrees of freedom);
  # the declared effect 0.1 is Cohen's d = 1, for which the paired t at two-sided 5% needs
  # 10 pairs for 80% power (G*Power: 10, power 0.803)
  spec, pilot = _pilot(tmp_path, [0.1, -0.1, 0.1, -0.1, 0.0])
  text = plan.plan(str(spec), pilot)
  line = next(l for l in text.splitlines() if l.startswith("| warmup lowers the loss"))
  assert line.split(" | ")[2:] == ["5", "0.1", "0.1", "1", "10 |"]
  eq = next(l for l in text.splitlines() if l.startswith("| warmup changes nothing"))
  assert "margin 0.05" in eq and int(eq.split(" | ")[-1].rstrip(" |")) > 10
  assert "n/a (no effect declared)" in text


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
                                       "warmup reaches 2.0 sooner"]
  assert new[0]["n_seeds"] == 5 and "relabelled after the run" in new[0]["flags"]  # effect=
  assert new[1]["verdict"] == "equivalent" and "relabelled after the run" in new[1]["flags"]
  # steps_to needs eval curves, which are not committed: the old verdict stays, marked
  assert new[2]["verdict"] == "reproduced"
  assert new[2]["flags"] == ["old rule (its data is not committed)"]
  md = (exp / "summary.md").read_text()
  assert md.startswith("# table\n\nrows\n\nClaims (fixed") and "| old |" not in md
