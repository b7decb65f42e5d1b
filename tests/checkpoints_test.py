"""Checkpoints: round trip, damaged newest step falls back, load for analysis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from warmup_research import checkpoints


def _state(x):
  return {"params": {"w": jnp.full((3, 4), x), "b": jnp.arange(4.0) + x},
          "step": jnp.int32(int(x))}


def _save_steps(directory, steps=(1, 2, 3)):
  ckpt = checkpoints.Checkpointer(directory, keep=5)
  for s in steps:
    ckpt.save(s, _state(float(s)), {"step": s, "note": "hello"})
  ckpt.close()


def test_round_trip_keeps_n(tmp_path):
  ckpt = checkpoints.Checkpointer(tmp_path / "c", keep=2)
  for s in (1, 2, 3):
    ckpt.save(s, _state(float(s)), {"step": s})
  ckpt.wait()
  assert ckpt.steps() == [2, 3]
  abstract = jax.eval_shape(lambda: _state(0.0))
  step, state, meta = ckpt.restore_latest(abstract)
  assert step == 3 and meta == {"step": 3}
  np.testing.assert_array_equal(state["params"]["w"], np.full((3, 4), 3.0))


def test_preserved_steps_outlive_the_newest_n(tmp_path):
  ckpt = checkpoints.Checkpointer(tmp_path / "c", keep=2, preserve={1, 3})
  for s in range(1, 7):
    ckpt.save(s, _state(float(s)), {"step": s})
  ckpt.wait()
  assert ckpt.steps() == [1, 3, 5, 6]
  ckpt.close()


# A failed restore's pending tensorstore reads may finish after orbax closed
# their event loop ("Event loop is closed", unraisable; see restore_latest).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_damaged_newest_step_is_skipped_with_a_warning(tmp_path):
  _save_steps(tmp_path / "c")
  damaged = 0
  for f in (tmp_path / "c" / "3" / "state").rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(b"garbage" * 10)
      damaged += 1
  assert damaged > 0
  ckpt = checkpoints.Checkpointer(tmp_path / "c", keep=5)
  abstract = jax.eval_shape(lambda: _state(0.0))
  with pytest.warns(UserWarning, match="checkpoint step 3 .* could not be restored"):
    step, state, _ = ckpt.restore_latest(abstract)
  assert step == 2
  np.testing.assert_array_equal(state["params"]["b"], np.arange(4.0) + 2)


def test_load_for_analysis_needs_no_target(tmp_path):
  _save_steps(tmp_path / "c")
  step, state, meta = checkpoints.load(tmp_path / "c")
  assert step == 3 and meta["note"] == "hello"
  np.testing.assert_array_equal(state["params"]["w"], np.full((3, 4), 3.0))
  step, state, _ = checkpoints.load(tmp_path / "c", step=1)
  assert step == 1 and int(state["step"]) == 1
  with pytest.raises(FileNotFoundError,
                     match=r"no checkpoint at step 7 in .*; saved steps: 1, 2, 3"):
    checkpoints.load(tmp_path / "c", step=7)
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no checkpoints in"):
    checkpoints.load(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
    checkpoints.load(tmp_path / "typo")
  assert not (tmp_path / "typo").exists()   # a wrong path is not created


def _stacked(x, k=6):
  return {"params": {"w": jnp.arange(k * 12.0).reshape(k, 3, 4) + x, "b": jnp.arange(k * 1.0)},
          "step": jnp.full((k,), int(x), jnp.int32)}


def test_one_row_of_a_stacked_checkpoint_reads_alone_and_equals_the_whole(tmp_path):
  ckpt = checkpoints.Checkpointer(tmp_path / "c", keep=5)
  for s in (1, 2):
    ckpt.save(s, _stacked(float(s)), {"step": s})
  ckpt.close()
  target = lambda n: jax.eval_shape(lambda: _stacked(0.0, n))
  step, row = checkpoints.load_row(tmp_path / "c", 4, target=target)
  _, whole, _ = checkpoints.load(tmp_path / "c")
  assert step == 2
  for a, b in zip(jax.tree.leaves(row), jax.tree.leaves(whole)):
    np.testing.assert_array_equal(a, np.asarray(b)[4])
  # one chunk per row: the row's chunk files are all a read touches
  import tensorstore as ts
  kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{tmp_path}/c/2/state"}).result()
  assert {k for k in kv.list().result() if k.startswith(b"params.w/")} == {
      b"params.w/.zarray", *(f"params.w/{i}.0.0".encode() for i in range(6))}
  assert checkpoints.load_row(tmp_path / "c", 1, step=1, target=target)[1]["step"] == 1


def test_an_unreadable_row_falls_back_to_the_whole_checkpoint(tmp_path, monkeypatch):
  ckpt = checkpoints.Checkpointer(tmp_path / "c", keep=5)
  ckpt.save(1, _stacked(1.0), {"step": 1})
  ckpt.close()
  target = lambda n: jax.eval_shape(lambda: _stacked(0.0, n))

  def broken(*args):
    raise OSError("a chunk is missing")
  monkeypatch.setattr(checkpoints, "load_slice", broken)
  with pytest.warns(UserWarning, match="could not be read alone .*a chunk is missing"):
    step, row = checkpoints.load_row(tmp_path / "c", 2, target=target)
  assert step == 1
  np.testing.assert_array_equal(row["params"]["w"], np.asarray(_stacked(1.0)["params"]["w"])[2])
