"""Text before it becomes a token stream: corpora of documents, and tokenizers.

A corpus is a list of `Doc(rel, text)` in a fixed order (data.py splits it
into train / validation by a hash of `rel` and tokenizes it once):

* `prose_docs()`: English prose that every Python install has, the
  docstrings and comments of the standard library's `*.py` sources
  (extracted with `ast` and `tokenize`, in source order) plus the help
  topics of `pydoc_data.topics`. It depends only on the Python version; its
  size, file count and hash go into the prepared dataset's metadata
  (`corpus_info`).
* `dir_docs(path, text_key)`: the files of a directory: `.txt`, `.md`,
  `.rst`, `.py` (one document per file), `.jsonl` (one per line: the field
  `text_key` of a JSON object) and `.parquet` (one per row of the column
  `text_key`).

Tokenizers (`data.tokenizer`), each `encode_batch(texts) -> [[id, ...]]`:

* `'bytes'`: UTF-8 bytes, vocab 256.
* `'bpe:N'`: a byte-level BPE of vocab N, trained with HF `tokenizers` on
  the train split (`train_bpe`); id 0 is `EOS`.
* a path: a user's HF `tokenizer.json` or SentencePiece `.model`.

Documents are joined with `eos` (NUL for bytes, `EOS` for the BPE, the
tokenizer's end-of-text token if it has one).
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import pathlib
import stat
import sysconfig
import tokenize
from typing import NamedTuple

from warmup_research.errors import ConfigError

TEXT_SUFFIXES = (".py", ".txt", ".md", ".rst")
RECORD_SUFFIXES = (".jsonl", ".parquet")   # one document per line / row, not per file
SKIP_DIRS = ("site-packages", "dist-packages", "__pycache__")
PROSE_VERSION = 1          # of prose_of_source: a change rebuilds the prepared corpora
EOS = "<|endoftext|>"
EOS_NAMES = (EOS, "</s>", "<eos>", "<|end_of_text|>", "[SEP]")   # a user tokenizer's separator
MIN_BPE_VOCAB = 257        # the 256 bytes of the byte-level alphabet and EOS
TOKENIZER_HELP = ("allowed: 'bytes', 'bpe:N' (a byte-level BPE of N >= 257 tokens trained on "
                  "the train split), or the path of a HF tokenizer.json or SentencePiece .model")


class Doc(NamedTuple):
  rel: str    # where it comes from ('/'-separated path, '#i' for a record of a file)
  text: str


class CorpusFile(NamedTuple):
  rel: str    # path relative to the corpus directory, '/'-separated
  path: str
  size: int   # bytes, when scanned


def corpus_files(corpus_dir: str | os.PathLike,
                 suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> list[CorpusFile]:
  """The text files of a corpus directory, sorted by relative path.

  Every process that opens the dataset pays this scan, so skipped and hidden
  directories are pruned before descending and each file is stat-ed once
  (benchmarks/NOTES.md, attempt 40).
  """
  corpus_dir = os.fspath(corpus_dir)
  files = []
  for root, dirs, names in os.walk(corpus_dir):
    dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
    rel_root = os.path.relpath(root, corpus_dir).replace(os.sep, "/")
    for name in names:
      if name.startswith(".") or os.path.splitext(name)[1] not in suffixes:
        continue
      path = os.path.join(root, name)
      try:
        st = os.stat(path)
      except OSError:   # a dangling link
        continue
      if stat.S_ISREG(st.st_mode):
        files.append(CorpusFile(name if rel_root == "." else f"{rel_root}/{name}", path,
                                st.st_size))
  return sorted(files)


def stdlib_dir() -> pathlib.Path:
  return pathlib.Path(sysconfig.get_paths()["stdlib"])


# ---------------------------------------------------------------------- corpora


def prose_of_source(source: str) -> str:
  """The docstrings and comments of Python source, in source order, one
  paragraph each ('' when it does not parse: a few stdlib test files are
  deliberately broken)."""
  try:
    tree = ast.parse(source)
  except (SyntaxError, ValueError):
    return ""
  parts = []
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      doc = ast.get_docstring(node, clean=True)
      if doc and node.body:
        parts.append((node.body[0].lineno, doc))
  try:
    block, first, last = [], 0, 0   # a run of comment lines, one under the other, is a paragraph
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
      if tok.type in (tokenize.NL, tokenize.NEWLINE):
        continue
      row = tok.start[0]
      if block and (tok.type != tokenize.COMMENT or row != last + 1):
        parts.append((first, " ".join(block)))
        block = []
      line = tok.string.lstrip("#").strip()
      if tok.type == tokenize.COMMENT and line and not line.startswith("!"):  # not '#!', '#'
        block, first = block + [line], first if block else row
      last = row
    if block:
      parts.append((first, " ".join(block)))
  except (tokenize.TokenError, SyntaxError):
    pass
  return "\n\n".join(text for _, text in sorted(parts, key=lambda p: p[0]))


def prose_docs() -> list[Doc]:
  """The standard library's prose: a document per source file that has
  some, then one per `pydoc_data.topics` topic."""
  docs = []
  for f in corpus_files(stdlib_dir(), (".py",)):
    try:
      source = pathlib.Path(f.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
      continue
    prose = prose_of_source(source)
    if prose:
      docs.append(Doc(f.rel, prose))
  from pydoc_data import topics  # only for this corpus: a 1 MB module
  docs += [Doc(f"pydoc_data/topics.py#{k}", topics.topics[k]) for k in sorted(topics.topics)]
  return docs


def prose_key() -> str:
  """What `prose_docs()` depends on, read without reading the files: the
  standard library's location and its `.py` files' names and sizes."""
  h = hashlib.sha1(f"{PROSE_VERSION}:{stdlib_dir().resolve()}".encode())
  for f in corpus_files(stdlib_dir(), (".py",)):
    h.update(f"{f.rel}:{f.size}\n".encode())
  return h.hexdigest()[:12]


def dir_files(corpus_dir: pathlib.Path) -> list[CorpusFile]:
  return corpus_files(corpus_dir, TEXT_SUFFIXES + RECORD_SUFFIXES)


def dir_docs(corpus_dir: str | os.PathLike, text_key: str) -> list[Doc]:
  """The documents of a directory's text files (see the module docstring);
  a record without the text field is a ConfigError naming data.text_key."""
  docs = []
  for f in dir_files(pathlib.Path(corpus_dir)):
    ext = os.path.splitext(f.rel)[1]
    if ext == ".parquet":
      docs += [Doc(f"{f.rel}#{i}", t) for i, t in enumerate(_parquet_texts(f.path, text_key))]
    elif ext == ".jsonl":
      docs += [Doc(f"{f.rel}#{i}", t) for i, t in enumerate(_jsonl_texts(f.path, text_key))]
    else:
      docs.append(Doc(f.rel, pathlib.Path(f.path).read_text(encoding="utf-8", errors="replace")))
  return docs


def check_parquet(path: str, text_key: str) -> None:
  """Refuses a parquet file without the text column, from its schema alone."""
  import pyarrow.parquet as pq  # only for parquet corpora
  try:
    names = pq.read_schema(path).names
  except Exception as e:
    raise ConfigError("config.data.corpus_dir", f"{path} is not a readable parquet file "
                      f"({e}); fix or remove it") from e
  if text_key not in names:
    raise ConfigError("config.data.text_key", f"{path} has no column {text_key!r}; allowed: "
                      f"{', '.join(map(repr, names))} (set data.text_key to its text column)")


def _parquet_texts(path: str, text_key: str) -> list[str]:
  import pyarrow.parquet as pq  # only for parquet corpora
  check_parquet(path, text_key)
  column = pq.read_table(path, columns=[text_key]).column(text_key).to_pylist()
  return [t if isinstance(t, str) else "" if t is None else str(t) for t in column]


def _jsonl_texts(path: str, text_key: str) -> list[str]:
  texts = []
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except ValueError as e:
        raise ConfigError("config.data.corpus_dir", f"{path}:{number} is not a JSON object "
                          f"({e}); each line of a .jsonl file must be one") from e
      if not isinstance(record, dict) or text_key not in record:
        fields = ", ".join(map(repr, record)) if isinstance(record, dict) else "none"
        raise ConfigError("config.data.text_key", f"{path}:{number} has no field {text_key!r}; "
                          f"allowed: {fields} (set data.text_key to its text field)")
      value = record[text_key]
      texts.append(value if isinstance(value, str) else json.dumps(value))
  return texts


def corpus_info(docs: list[Doc]) -> dict:
  """Size (UTF-8 bytes and MB), file and document counts, and a SHA-256 of
  the documents (paths and texts, in order): what a prepared dataset says
  about its text."""
  files = len({d.rel.partition("#")[0] for d in docs})
  h, n = hashlib.sha256(), 0
  for d in docs:
    b = d.text.encode("utf-8", errors="replace")
    n += len(b)
    h.update(d.rel.encode() + b"\0" + b + b"\0")
  return dict(bytes=n, mb=round(n / 1e6, 3), files=files, documents=len(docs),
              sha256=h.hexdigest())


# ------------------------------------------------------------------- tokenizers


class Tokenizer:
  """`encode_batch(texts)`, `vocab_size`, `eos` (the id between documents,
  or None), `spec` (as configured) and `sha256` (of its file: what a
  prepared token stream depends on)."""

  def __init__(self, spec: str, vocab_size: int, eos: int | None, sha256: str, encode_batch):
    self.spec, self.vocab_size, self.eos, self.sha256 = spec, vocab_size, eos, sha256
    self.encode_batch = encode_batch
    self.file = None   # a trained BPE's (cache path, JSON), until saved


def bytes_tokenizer() -> Tokenizer:
  # NUL separates documents, so a NUL inside one becomes a space (as in data.ByteCorpus)
  return Tokenizer("bytes", 256, 0, "bytes", lambda texts: [
      list(t.replace("\0", " ").encode("utf-8", errors="replace")) for t in texts])


def bpe_vocab(spec: str) -> int | None:
  """N of 'bpe:N', or None if `spec` is not of that form."""
  head, _, n = spec.partition(":")
  return int(n) if head == "bpe" and n.isdigit() else None


def _hf(spec: str, tok, sha256: str) -> Tokenizer:
  eos = next((tok.token_to_id(t) for t in EOS_NAMES if tok.token_to_id(t) is not None), None)
  return Tokenizer(spec, tok.get_vocab_size(), eos, sha256,
                   lambda texts: [e.ids for e in tok.encode_batch(texts,
                                                                  add_special_tokens=False)])


def load_tokenizer(spec: str) -> Tokenizer:
  """The user's tokenizer at path `spec` (HF tokenizer.json or SentencePiece
  .model); a missing or unparsable file is a ConfigError naming
  data.tokenizer."""
  path = pathlib.Path(spec).expanduser()
  if not path.is_file():
    raise ConfigError("config.data.tokenizer", f"no such file: {spec}; {TOKENIZER_HELP}")
  raw = path.read_bytes()
  sha = hashlib.sha256(raw).hexdigest()
  try:
    if path.suffix == ".model":
      import sentencepiece  # only for SentencePiece tokenizers
      sp = sentencepiece.SentencePieceProcessor(model_proto=raw)
      eos = sp.eos_id() if sp.eos_id() >= 0 else None
      return Tokenizer(spec, sp.get_piece_size(), eos, sha,
                       lambda texts: sp.encode(list(texts), out_type=int))
    import tokenizers  # only for HF tokenizers
    return _hf(spec, tokenizers.Tokenizer.from_str(raw.decode("utf-8")), sha)
  except Exception as e:
    kind = "SentencePiece .model" if path.suffix == ".model" else "HF tokenizer.json"
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ConfigError("config.data.tokenizer", f"{spec} does not parse as a {kind} "
                      f"({first}); {TOKENIZER_HELP}") from e


def train_bpe(texts: list[str], vocab_size: int, cache: pathlib.Path,
              save: bool = True) -> Tokenizer:
  """A byte-level BPE of `vocab_size` tokens trained on `texts`, read from
  `cache` when there, else saved to it (`save`; or later by `save_bpe`, once
  the corpus it tokenizes has passed its checks). Training is deterministic:
  the same texts give the same merges."""
  import tokenizers  # only for BPE tokenizers
  from tokenizers import decoders, models, pre_tokenizers, trainers  # as above
  if cache.exists():
    raw = cache.read_text()
  else:
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    raw = tok.to_str()
  out = _hf(f"bpe:{vocab_size}", tokenizers.Tokenizer.from_str(raw),
            hashlib.sha256(raw.encode()).hexdigest())
  out.file = (cache, raw)
  if save:
    save_bpe(out)
  return out


def save_bpe(tok: Tokenizer) -> None:
  """Writes a trained BPE to its cache file (atomically), if not there yet."""
  cache, raw = tok.file
  if not cache.exists():
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(raw)
    os.replace(tmp, cache)
