"""Text: the prose extractor, directory corpora (jsonl, parquet), corpus
hashes, and tokenizers (bytes, a deterministic BPE, users' files), each bad
input one ConfigError naming its field."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warmup_research import text
from warmup_research.errors import ConfigError

SOURCE = '''"""The module's docstring."""
import os  # why os: to list files

# A comment block
# of two lines.


class A:
  """A class."""

  def f(self):
    """A method."""
    return "# not a comment"
'''


def test_prose_of_source_keeps_docstrings_and_comments_in_source_order():
  assert text.prose_of_source(SOURCE) == (
      "The module's docstring.\n\nwhy os: to list files\n\nA comment block of two lines.\n\n"
      "A class.\n\nA method.")
  assert text.prose_of_source("def broken(:\n  '''doc'''") == ""   # unparsable: no prose
  assert text.prose_of_source("#!/usr/bin/env python\n#\nx = 1\n") == ""


def test_prose_docs_read_the_stdlib_and_pydoc_topics(tmp_path, monkeypatch):
  (tmp_path / "pkg").mkdir()
  (tmp_path / "pkg" / "m.py").write_text(SOURCE)
  (tmp_path / "quiet.py").write_text("x = 1\n")   # no prose: no document
  monkeypatch.setattr(text, "stdlib_dir", lambda: tmp_path)
  docs = text.prose_docs()
  assert docs[0] == text.Doc("pkg/m.py", text.prose_of_source(SOURCE))
  assert all(d.rel.startswith("pydoc_data/topics.py#") for d in docs[1:]) and len(docs) > 50
  info = text.corpus_info(docs)
  assert info["files"] == 2 and info["documents"] == len(docs)
  assert info == text.corpus_info(text.prose_docs())   # deterministic
  key = text.prose_key()
  (tmp_path / "quiet.py").write_text("x = 12\n")
  assert text.prose_key() != key   # a changed file changes the key the dataset is stored by


def test_dir_docs_read_text_jsonl_and_parquet_records(tmp_path):
  (tmp_path / "a.txt").write_text("plain text")
  (tmp_path / "b.jsonl").write_text('{"text": "one", "id": 1}\n\n{"text": "two"}\n')
  pq.write_table(pa.table({"text": ["x", None], "n": [1, 2]}), tmp_path / "c.parquet")
  (tmp_path / "d.bin").write_bytes(b"\1\2")
  docs = text.dir_docs(tmp_path, "text")
  assert docs == [text.Doc("a.txt", "plain text"), text.Doc("b.jsonl#0", "one"),
                  text.Doc("b.jsonl#1", "two"), text.Doc("c.parquet#0", "x"),
                  text.Doc("c.parquet#1", "")]
  assert text.corpus_info(docs)["files"] == 3
  assert text.corpus_info(docs) != text.corpus_info(docs[:-1])


def test_records_without_the_text_field_name_data_text_key(tmp_path):
  pq.write_table(pa.table({"body": ["x"]}), tmp_path / "c.parquet")
  with pytest.raises(ConfigError, match=r"config.data.text_key: .*c.parquet has no column "
                     r"'text'; allowed: 'body'"):
    text.dir_docs(tmp_path, "text")
  (tmp_path / "c.parquet").unlink()
  (tmp_path / "b.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
  with pytest.raises(ConfigError, match=r"config.data.text_key: .*b.jsonl:1 has no field 'text'; "
                     r"allowed: 'body'"):
    text.dir_docs(tmp_path, "text")
  (tmp_path / "b.jsonl").write_text("not json\n")
  with pytest.raises(ConfigError, match=r"config.data.corpus_dir: .*b.jsonl:1 is not a JSON"):
    text.dir_docs(tmp_path, "text")


TEXTS = [f"The quick brown fox {i} jumps over the lazy dog, again and again." for i in range(60)]


def test_bpe_training_is_deterministic_and_cached(tmp_path):
  a = text.train_bpe(TEXTS, 300, tmp_path / "a" / "bpe.json")
  b = text.train_bpe(TEXTS, 300, tmp_path / "b" / "bpe.json")
  assert (tmp_path / "a" / "bpe.json").read_text() == (tmp_path / "b" / "bpe.json").read_text()
  assert a.sha256 == b.sha256 and a.vocab_size == 300 and a.eos == 0
  ids = a.encode_batch(TEXTS[:2])
  assert 0 < len(ids[0]) < len(TEXTS[0]) and max(max(i) for i in ids) < 300
  # the cache is read, not retrained (its name holds the train text's hash: data.py)
  assert text.train_bpe(["other"], 300, tmp_path / "a" / "bpe.json").sha256 == a.sha256


def test_bytes_tokenizer_is_utf8():
  assert text.bytes_tokenizer().encode_batch(["aé"]) == [[97, 195, 169]]


def test_user_tokenizers_load_and_bad_files_name_data_tokenizer(tmp_path):
  text.train_bpe(TEXTS, 280, tmp_path / "tokenizer.json")
  hf = text.load_tokenizer(str(tmp_path / "tokenizer.json"))
  assert hf.vocab_size == 280 and hf.eos == 0 and len(hf.sha256) == 64
  import sentencepiece as spm  # the test's own SentencePiece model
  spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS * 5), vocab_size=50,
                                 model_prefix=str(tmp_path / "sp"), minloglevel=2)
  sp = text.load_tokenizer(str(tmp_path / "sp.model"))
  assert sp.vocab_size == 50 and sp.eos is not None
  assert max(sp.encode_batch(TEXTS[:1])[0]) < 50
  with pytest.raises(ConfigError, match=r"config.data.tokenizer: no such file: .*nope.json; "
                     r"allowed: 'bytes', 'bpe:N'"):
    text.load_tokenizer(str(tmp_path / "nope.json"))
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(ConfigError, match=r"config.data.tokenizer: .*bad.json does not parse as "
                     r"a HF tokenizer.json"):
    text.load_tokenizer(str(tmp_path / "bad.json"))
  (tmp_path / "bad.model").write_bytes(b"\xff\x00garbage")
  with pytest.raises(ConfigError, match=r"config.data.tokenizer: .*bad.model does not parse as "
                     r"a SentencePiece .model"):
    text.load_tokenizer(str(tmp_path / "bad.model"))


def test_a_nul_inside_a_document_is_not_its_end():
  assert text.bytes_tokenizer().encode_batch(["a\0b"]) == [[97, 32, 98]]
