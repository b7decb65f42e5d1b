"""The pipeline benchmark on a tiny corpus and model: its rows are checked
for consistency, never against a time."""
import os
import pathlib
import tempfile

_TMP = pathlib.Path(tempfile.mkdtemp(prefix="wr-pipeline-tests-"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WARMUP_RESEARCH_DATA_DIR", str(_TMP / "tfds"))

from benchmarks import pipeline  # noqa: E402

TINY = {"model.d_model": 32, "model.num_layers": 1, "model.num_heads": 2}


def test_rows_alone_and_beside_the_step_are_written(tmp_path):
  corpus = tmp_path / "c"
  corpus.mkdir()
  for i in range(40):
    (corpus / f"f{i}.txt").write_text("".join(f"line {j} of file {i}\n" for j in range(60)))
  rows = [("text", "bpe:300", 4, 16, True), ("bytes", "bytes", 4, 32, False)]
  got = pipeline.measure(rows, calls=3, overrides={**TINY, "data.corpus_dir": str(corpus)})
  assert [(r["source"], r["tokenizer"], r["batch"], r["seq"]) for r in got] == [
      ("text", "bpe:300", 4, 16), ("bytes", "bytes", 4, 32)]
  assert all(r["host"] > 0 and r["device"] > 0 for r in got)
  assert got[0]["loader"] > 0 and got[0]["step"] > 0 and got[0]["slowdown"] > -1
  assert "loader" not in got[1]
  pipeline.write_table(got, tmp_path / "pipeline.md", "pipeline (test)", 3)
  table = (tmp_path / "pipeline.md").read_text()
  assert "- command: `pipeline (test)`" in table
  lines = [l for l in table.splitlines() if l.startswith("| text |") or l.startswith("| bytes |")]
  assert len(lines) == 2 and lines[1].endswith("| - | - | - | - |")
  x = float(lines[0].split("|")[9].strip().rstrip("x"))
  assert x == round(got[0]["loader"] / got[0]["step"])
