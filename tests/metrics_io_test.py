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


def _outcome(curve, plateau=3.0, total=400, warmup=0, status="finished"):
  return metrics_io.outcome(status, curve, plateau, total, warmup)


def test_a_stall_is_flat_on_the_plateau_and_a_run_still_falling_is_slow():
  # initial 5.5; the plateau level is 3.0 (entropy minus the margin)
  assert _outcome([(0, 5.5), (100, 3.3), (200, 3.1), (300, 2.9), (400, 2.8)]) == "trained"
  # flat on the band over the last half of training (from step 200): stalled
  flat = [(0, 5.5), (100, 3.30), (200, 3.27), (300, 3.26), (400, 3.26)]
  assert _outcome(flat) == "stalled"
  # above the band at the end but still falling (3.27 -> 3.10 over the last half): slow,
  # the 3e-4 runs of ln_placement's first run, which one final number called stalled
  falling = [(0, 5.5), (100, 3.40), (200, 3.27), (300, 3.18), (400, 3.10)]
  assert _outcome(falling) == "slow"
  # a fall of SLOW_DROP or less is flat: noise on the plateau is not learning
  drop = metrics_io.SLOW_DROP
  assert _outcome([(0, 5.5), (200, 3.2), (400, 3.2 - drop * 0.9)]) == "stalled"
  assert _outcome([(0, 5.5), (200, 3.2), (400, 3.2 - drop * 1.5)]) == "slow"
  # the reference is never the initial eval: a run that only learned token frequencies and
  # sat there is stalled, not "slow" for having fallen from ln V
  assert _outcome([(0, 5.5), (400, 3.2)]) == "stalled"
  assert _outcome([(0, 5.5), (300, 3.2), (400, 3.2)]) == "stalled"
  # no plateau known (data without an entropy): only divergence is decided
  assert _outcome(flat, plateau=None) == "trained"


def test_a_run_diverged_when_an_eval_after_the_warmup_rises_above_the_initial_loss():
  rise = [(0, 5.5), (100, 3.2), (200, 6.0), (300, 4.0), (400, 3.5)]
  assert _outcome(rise) == "diverged"
  # the same rise inside the warmup (steps < 250) is the warmup's business, not divergence
  assert _outcome(rise, warmup=250) != "diverged"
  assert _outcome([(0, 5.5), (200, float("nan")), (400, 2.0)]) == "diverged"
  assert _outcome([(0, 5.5), (100, float("nan")), (400, 2.0)], warmup=250) == "diverged"
  # at the initial loss within RISE_TOL (a model on data it cannot learn) is not divergence
  tol = metrics_io.RISE_TOL
  assert _outcome([(0, 5.5), (400, 5.5 + tol * 0.9)], plateau=5.0) == "stalled"
  assert _outcome([(0, 5.5), (400, 5.5 + tol * 1.1)], plateau=5.0) == "diverged"
  assert _outcome([(0, 5.5), (400, 2.0)], status="diverged") == "diverged"
  # a run successive halving stopped is unknown, whatever its evals did before the rung
  assert _outcome(rise, status="pruned") == "pruned"


def test_summarize_reads_the_outcome_at_every_stall_margin():
  # entropy 3.5: plateau levels 3.4 / 3.25 / 3.0 at margins 0.1 / 0.25 / 0.5
  rows = [{"step": 0, "eval_loss": 5.5}, {"step": 100, "eval_loss": 3.3},
          {"step": 200, "eval_loss": 3.2}, {"step": 200, "loss": 3.2, "diverged": 0}]
  s = metrics_io.summarize(rows, 3.5, stall_margin=0.25, total_steps=200)
  assert s["outcomes"] == {0.1: "trained", 0.25: "trained", 0.5: "slow"}
  assert s["outcome"] == "trained"
  assert metrics_io.summarize(rows)["outcomes"] is None   # no entropy: no margins


def test_bits_per_byte_follow_the_tokenizers_tokens_per_byte():
  import math  # only here
  rows = [{"step": 0, "eval_loss": 5.0}, {"step": 1, "loss": 4.0, "diverged": 0},
          {"step": 1, "eval_loss": 2.0}, {"step": 2, "eval_loss": 3.0}]
  s = metrics_io.summarize(rows, tokens_per_byte=0.25)
  assert s["final_eval_bpb"] == 3.0 * 0.25 / math.log(2)
  assert s["best_eval_bpb"] == 2.0 * 0.25 / math.log(2)
  # bytes as tokens: the loss in bits; unknown tokens per byte (the copy task): none
  assert metrics_io.bits_per_byte(math.log(2), 1.0) == 1.0
  assert metrics_io.summarize(rows)["final_eval_bpb"] is None


def test_updates_to_target_is_the_first_eval_at_or_below_it_and_never_after_divergence():
  evals = [dict(step=0, eval_loss=5.0), dict(step=10, eval_loss=3.5), dict(step=20, eval_loss=3.0),
           dict(step=30, eval_loss=2.9)]
  train = [dict(step=s, loss=4.0, diverged=0) for s in range(30)]
  assert metrics_io.summarize(evals + train, target=3.0)["updates_to_target"] == 20
  assert metrics_io.summarize(evals + train, target=2.5)["updates_to_target"] is None
  assert metrics_io.summarize(evals + train)["updates_to_target"] is None   # no target
  # diverged at update 15: the eval at 20 shows frozen params, so it never reached 3.0
  broke = [dict(r, diverged=int(r["step"] >= 15)) for r in train]
  s = metrics_io.summarize(evals + broke, target=3.0)
  assert s["diverged_step"] == 15 and s["updates_to_target"] is None
  assert metrics_io.summarize(evals + broke, target=3.5)["updates_to_target"] == 10
