"""Mesh shapes: picked to waste the fewest padded variants, checked against
the devices and the batch (and its microbatches)."""
import pytest

from warmup_research import mesh
from warmup_research.errors import ConfigError


@pytest.mark.parametrize("n,k,batch,expect", [
    (1, 5, 4, (1, 1)), (2, 6, 32, (2, 1)), (2, 1, 32, (1, 2)), (8, 4, 4, (4, 2)),
    (8, 6, 32, (2, 4)), (8, 24, 32, (8, 1)), (8, 3, 1, (8, 1)), (8, 1, 8, (1, 8)),
])
def test_choose_shape_picks(n, k, batch, expect):
  assert mesh.choose_shape(n, k, batch) == expect


@pytest.mark.parametrize("n,k,batch,expect", [
    (2, 2, 32, (1, 2)), (2, 16, 32, (1, 2)), (8, 6, 32, (1, 8)), (8, 6, 4, (2, 4)),
    (2, 3, 1, (2, 1)),
])
def test_choose_shape_prefers_data_when_variants_are_mapped(n, k, batch, expect):
  assert mesh.choose_shape(n, k, batch, prefer_data=True) == expect


def test_choose_shape_given_and_bad():
  assert mesh.choose_shape(8, 3, 32, variant=8) == (8, 1)
  assert mesh.choose_shape(8, 3, 32, data=2) == (4, 2)
  with pytest.raises(ConfigError, match=r"config.mesh: variant x data = 3 x 3 = 9 does not fit the 8 devices"):
    mesh.choose_shape(8, 3, 32, variant=3, data=3)
  with pytest.raises(ConfigError, match="config.mesh: variant=3 does not divide the 8 devices; allowed: 1, 2, 4, 8"):
    mesh.choose_shape(8, 3, 32, variant=3)
  with pytest.raises(ConfigError, match=r"config.mesh.data: data axis 8 must divide data.batch_size \(4\)"):
    mesh.choose_shape(8, 3, 4, data=8)


def test_each_data_shard_splits_into_the_microbatches():
  # picked: the data axis leaves each shard rows for every microbatch
  assert mesh.choose_shape(8, 6, 8, prefer_data=True, grad_accum=2) == (2, 4)
  assert mesh.choose_shape(8, 1, 8, grad_accum=8) == (8, 1)
  assert mesh.choose_shape(2, 1, 8, data=2, grad_accum=4) == (1, 2)
  with pytest.raises(ConfigError, match=r"config.train.grad_accum: must divide each data shard's "
                     r"rows \(data.batch_size 8 / mesh data axis 8 = 1\) into equal microbatches, "
                     r"got 2; allowed: 1 \(or a smaller data axis\)$"):
    mesh.choose_shape(8, 3, 8, data=8, grad_accum=2)
  with pytest.raises(ConfigError, match="config.train.grad_accum: .* = 6.* got 4; allowed: 1, 2, "
                     "3, 6 "):
    mesh.check_batch_split(12, 2, 4)
