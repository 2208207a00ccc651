"""What a stored benchmark cell's key depends on: the *behaviour* of the engine's code, not where it
lives or how it is written.

Each source is reduced to its syntax tree without import statements and docstrings (`ast.dump`),
so moving a module, renaming its imports, reformatting it or editing a docstring keeps every stored
cell, while any change to what the code does retires the cells that depend on it. Only the
standard library is used, so `benchmarks/rekey.py` can apply the same reduction to an old
checkout of the repository.
"""

from __future__ import annotations

import ast
import hashlib
import textwrap
from collections.abc import Iterable
from pathlib import Path


def _strip(tree: ast.AST) -> ast.AST:
    """Remove imports and docstrings from `tree` (in place) and return it."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept: list[ast.stmt] = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and kept
            and isinstance(kept[0], ast.Expr)
            and isinstance(kept[0].value, ast.Constant)
            and isinstance(kept[0].value.value, str)
        ):
            kept = kept[1:]
        setattr(node, "body", kept or [ast.Pass()])  # noqa: B010 - every node with a list body
    return tree


def normalised(source: str) -> str:
    """`source` as a syntax tree without imports and docstrings (line numbers left out)."""
    return ast.dump(_strip(ast.parse(textwrap.dedent(source))), annotate_fields=False, include_attributes=False)


def sources_fingerprint(files: Iterable[Path]) -> str:
    """sha256 (16 hex digits) over the normalised text of `files`, independent of their paths."""
    digests = sorted(hashlib.sha256(normalised(Path(f).read_text()).encode()).hexdigest() for f in files)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
