"""Data: the real TFDS builder on real text; batches are pure functions of
(seed, step); catalog datasets through tfds.data_source; clear errors."""
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import tiny_config
from warmup_research import data
from warmup_research.errors import ConfigError


@pytest.fixture
def bytes_cfg(corpus_dir, tmp_path_factory):
  return lambda **kw: tiny_config(**{"data.name": "bytes", "data.corpus_dir": str(corpus_dir),
                                     **kw})


def test_byte_corpus_builds_with_tfds_and_splits_by_file(bytes_cfg, corpus_dir):
  b = data.Batches(bytes_cfg())
  train, val = b.sources[data.TRAIN_STREAM], b.sources[data.EVAL_STREAM]
  assert len(train) > 10 * len(val) > 0
  rec = train[0]["bytes"]
  assert rec.shape == (data.RECORD_LEN,) and rec.dtype == np.uint8
  files = data.corpus_files(corpus_dir)
  is_val = [data._is_validation(f.rel) for f in files]
  assert 0 < sum(is_val) < len(files)
  # The train split's records are the consecutive windows of its files'
  # text, in path order, each file ended by a NUL (TFDS stores them shuffled).
  stream = b"".join(pathlib.Path(f.path).read_bytes().replace(b"\0", b" ") + b"\0"
                    for f, v in zip(files, is_val) if not v)
  r = data.RECORD_LEN
  windows = sorted(stream[i * r:(i + 1) * r] for i in range(len(stream) // r))
  assert sorted(bytes(train[i]["bytes"]) for i in range(len(train))) == windows


def test_corpus_files_skips_packages_hidden_and_non_text(tmp_path):
  for rel in ["b.py", "a/z.txt", "a/y.md", "a/x.rst", "a/w.bin", "site-packages/p.py",
              "a/__pycache__/c.py", ".git/h.py", "a/.hidden.py", "dist-packages/q/r.txt"]:
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text("x")
  (tmp_path / "dir.py").mkdir()  # a directory with a text suffix is not a file
  (tmp_path / "b.py").write_text("xyz")
  got = [(f.rel, f.size) for f in data.corpus_files(tmp_path)]
  assert got == [("a/x.rst", 1), ("a/y.md", 1), ("a/z.txt", 1), ("b.py", 3)]


def test_an_edited_corpus_is_rebuilt(tiny_cfg, tmp_path):
  corpus = tmp_path / "c"
  corpus.mkdir()
  for i in range(40):
    (corpus / f"f{i}.txt").write_text(f"file {i} " * 300)
  cfg = tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(corpus)})
  first = data.Batches(cfg)
  n = len(first.sources[data.TRAIN_STREAM])
  (corpus / "more.txt").write_text("new text " * 5000)
  second = data.Batches(cfg)
  assert len(second.sources[data.TRAIN_STREAM]) > n


def test_batches_are_a_pure_function_of_seed_and_step(bytes_cfg):
  cfg = bytes_cfg()
  a, b = data.Batches(cfg), data.Batches(cfg)  # two readers, no shared state
  assert a.train(3).shape == (4, 33) and a.train(3).dtype == np.int32
  np.testing.assert_array_equal(a.train(3), b.train(3))
  np.testing.assert_array_equal(a.train(7), a.train(7))   # any order, re-readable
  assert not np.array_equal(a.train(3), a.train(4))
  assert not np.array_equal(a.train(3), a.eval(3))
  other = data.Batches(bytes_cfg(**{"data.seed": 1}))
  assert not np.array_equal(a.train(3), other.train(3))


def test_synthetic_copy_task(tiny_cfg):
  b = data.Batches(tiny_cfg(**{"data.seq_len": 9}))
  x = b.train(0)
  assert x.shape == (4, 10) and x.min() >= 1 and x.max() < 256
  np.testing.assert_array_equal(x[:, :5], x[:, 5:])


def test_catalog_dataset_through_data_source(tiny_cfg):
  texts = [f"sentence number {i}".encode() for i in range(50)]
  with tfds.testing.mock_data(num_examples=50,
                              as_data_source_fn=lambda self, **kw: [{"text": t} for t in texts]):
    b = data.Batches(tiny_cfg(**{"data.name": "lm1b"}))
    x = b.train(0)
  assert x.shape == (4, 33)
  row = bytes(x[0].astype(np.uint8))
  assert b"sentence number" in row and b"\0" in row   # packed, NUL-separated


def test_bad_data_inputs_name_the_field(tiny_cfg, tmp_path):
  with pytest.raises(ConfigError, match="config.data.name: unknown dataset 'no_such_set'"):
    data.Batches(tiny_cfg(**{"data.name": "no_such_set"}))
  with pytest.raises(ConfigError, match="config.data.corpus_dir: not a directory"):
    data.Batches(tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(tmp_path / "nope")}))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match="config.data.corpus_dir: no text files"):
    data.Batches(tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(tmp_path / "empty")}))
  (tmp_path / "tiny").mkdir()
  (tmp_path / "tiny" / "a.txt").write_text("too short")
  with pytest.raises(ConfigError, match="config.data.corpus_dir: .* too little text"):
    data.Batches(tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(tmp_path / "tiny")}))
