"""The grad-accumulation benchmark on a tiny model: its rows are checked for
consistency, never against a time."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from benchmarks import grad_accum  # noqa: E402

TINY = {"model.d_model": 32, "model.num_layers": 1, "model.num_heads": 2,
        "data.seq_len": 64, "data.batch_size": 8, "data.name": "synthetic"}


def test_memory_rows_for_each_accumulation_and_their_table(tmp_path):
  rows = grad_accum.measure({"tiny": TINY}, accums=(1, 4), steps=2)
  assert [(r["size"], r["grad_accum"], r["batch"]) for r in rows] == [("tiny", 1, 8),
                                                                      ("tiny", 4, 8)]
  for r in rows:
    assert r["temp"] > 0 and r["args"] > 0 and r["total"] >= r["temp"] + r["args"]
    assert r["step_ms"] > 0
  # the same state goes in whatever the accumulation; the working memory holds a
  # microbatch's activations, not the batch's (a grad_accum the program ignored fails here)
  assert rows[0]["args"] == rows[1]["args"] and rows[1]["temp"] < rows[0]["temp"]
  grad_accum.write_table(rows, tmp_path / "grad_accum.md", "grad_accum (test)", 2)
  lines = [l.split(" | ") for l in (tmp_path / "grad_accum.md").read_text().splitlines()
           if l.startswith("| tiny |")]
  assert [l[2] for l in lines] == ["1", "4"] and lines[0][5] == "1.00x"
  assert lines[1][5] == f"{rows[1]['temp'] / rows[0]['temp']:.2f}x"
