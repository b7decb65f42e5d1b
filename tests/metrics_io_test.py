"""Metrics files: written atomically, summarized, cut back to a step."""
from warmup_research import metrics_io


def test_truncate_and_summarize(tmp_path):
  p = tmp_path / "m.jsonl"
  rows = [{"step": 0, "eval_loss": 5.0}] + [
      {"step": s, "loss": 5.0 - s / 10, "diverged": 0} for s in range(10)] + [
      {"step": 10, "eval_loss": 4.0}, {"step": 10, "loss": 4.0, "diverged": 1}]
  metrics_io.write(p, rows)
  s = metrics_io.summarize(metrics_io.read(p))
  assert s["status"] == "diverged" and s["diverged_step"] == 10
  assert s["initial_eval_loss"] == 5.0 and s["best_eval_loss"] == 4.0
  metrics_io.truncate(p, 5)
  kept = metrics_io.read(p)
  assert [r["step"] for r in kept] == [0, 0, 1, 2, 3, 4]
