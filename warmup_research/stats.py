"""Statistics over a grid's runs.

`lr_sensitivity` is Wortsman et al. 2023's measure of how much a setting's
final loss depends on the peak LR.
"""
from __future__ import annotations

import numpy as np


def lr_sensitivity(lrs, final_losses, initial_loss: float) -> float:
  """Wortsman et al. 2023: E over the swept LRs of min(loss(lr), loss at init)
  minus the best loss. Diverged or missing runs (NaN/inf) count as the
  initial loss. The LRs are the grid's (log-spaced grids weigh each equally)."""
  losses = np.asarray(final_losses, np.float64)
  losses = np.where(np.isfinite(losses), losses, initial_loss)
  del lrs
  capped = np.minimum(losses, initial_loss)
  return float(np.mean(capped) - np.min(capped))
