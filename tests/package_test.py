"""The package as a whole: no import cycles (module level or inside
functions), every import inside a function says why, and the installed
console script works from any directory."""
import ast
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import warmup_research
from warmup_research import cli

PACKAGE = pathlib.Path(warmup_research.__file__).parent


def imports_of(package_dir: pathlib.Path) -> dict[str, list[tuple[str, int, bool]]]:
  """module -> [(imported module of the same package, line, inside a function)]."""
  name = package_dir.name
  modules = {p.stem for p in package_dir.glob("*.py")}
  graph = {}
  for path in sorted(package_dir.glob("*.py")):
    tree = ast.parse(path.read_text())
    in_function = {id(n) for f in ast.walk(tree)
                   if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    edges = []
    for node in ast.walk(tree):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        targets = ([f"{name}.{a.name}" for a in node.names] if node.module == name
                   else [node.module])
      for t in targets:
        parts = t.split(".")
        if parts[0] == name and len(parts) > 1 and parts[1] in modules:
          edges.append((parts[1], node.lineno, id(node) in in_function))
    graph[path.stem] = edges
  return graph


def find_cycle(graph) -> list[str] | None:
  """One import cycle (a list of modules, first == last), or None."""
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for dep, _, _ in graph.get(m, []):
      if state.get(dep) == "open":
        return stack[stack.index(dep):] + [dep]
      if dep not in state and (cycle := visit(dep)):
        return cycle
    state[m] = "done"
    stack.pop()
    return None

  for m in graph:
    if m not in state and (cycle := visit(m)):
      return cycle
  return None


def test_the_package_has_no_import_cycle():
  assert find_cycle(imports_of(PACKAGE)) is None, " -> ".join(find_cycle(imports_of(PACKAGE)))


def test_the_cycle_finder_sees_a_cycle_hidden_inside_a_function(tmp_path):
  pkg = tmp_path / "pkg"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "a.py").write_text("from pkg import b\n")
  (pkg / "b.py").write_text("import os\n\ndef f():\n  from pkg.c import g\n  return g\n")
  (pkg / "c.py").write_text("def g():\n  from pkg import a\n  return a\n")
  assert find_cycle(imports_of(pkg)) == ["a", "b", "c", "a"]
  (pkg / "c.py").write_text("def g():\n  return 1\n")
  assert find_cycle(imports_of(pkg)) is None


def test_every_import_inside_a_function_says_why():
  # Any import (of this package or another) inside a function needs a reason
  # on its line: jax after the XLA flags, an optional or heavy dependency.
  missing = []
  for path in sorted(PACKAGE.glob("*.py")):
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    for f in ast.walk(tree):
      if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for n in ast.walk(f):
          if isinstance(n, (ast.Import, ast.ImportFrom)) and "#" not in lines[n.lineno - 1]:
            missing.append(f"{path.name}:{n.lineno}: {lines[n.lineno - 1].strip()}")
  assert not missing, "imports inside functions without a reason:\n" + "\n".join(missing)


def test_nothing_edits_sys_path():
  edit = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*(\+)?=|sys\.path\[")
  repo = PACKAGE.parent
  for path in [*PACKAGE.glob("*.py"), *(repo / "tests").glob("*.py"),
               *(repo / "benchmarks").glob("*.py"), *(repo / "experiments").glob("*.py")]:
    assert not edit.search(path.read_text()), path


@pytest.mark.slow
def test_the_console_script_runs_from_any_directory(tmp_path):
  script = shutil.which("warmup-research", path=str(pathlib.Path(sys.executable).parent))
  assert script, "warmup-research is not installed next to this Python (pip install -e .)"
  out = subprocess.run([script, "--help"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  # every subcommand the parser defines is listed, whatever their number
  commands = cli.parser()._subparsers._group_actions[0].choices
  assert "{" + ",".join(commands) + "}" in out.stdout and "train" in commands
  code = "import warmup_research.analysis as a; print(a.__file__)"
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == str(PACKAGE / "analysis.py"), out.stderr
