"""The sweep's one progress display: run-steps over every group, corrected
for resumes and early ends; the loss shown is the live variants' range."""
import math

from warmup_research.progress import Progress


def test_one_display_for_the_sweep_with_the_live_loss_range(capsys):
  p = Progress([("g000", 2, 20), ("g001", 3, 30)], enabled=True)
  assert p.bar.total == 50
  p.start("g000", 20)
  assert p.bar.desc.startswith("group 1/2 (g000, 2 runs)")
  p.advance(10, losses=[3.25, 2.5], diverged=[0, 0])
  assert "live train loss 2.5000..3.2500 (2 live)" in p.bar.postfix
  p.advance(10, losses=[math.nan, 2.0], diverged=[1, 0])   # the diverged one is left out
  assert "2.0000..2.0000 (1 live)" in p.bar.postfix
  p.finish()
  p.start("g001", 15)   # resumed half-way: the total follows
  assert p.bar.total == 35 and p.bar.desc.startswith("group 2/2 (g001, 3 runs)")
  p.advance(6)
  p.finish()            # every variant diverged after 6 run-steps: the rest leave the total
  assert p.bar.n == p.bar.total == 26
  p.close()
  assert "run-step" in capsys.readouterr().err
