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
from collections.abc import Iterable, Mapping, Sequence
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


def _defines(stmt: ast.stmt, name: str) -> bool:
    """Whether `stmt` defines `name`: a def or class, or an assignment to `name` or `self.name`."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name == name
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return any(
        (isinstance(t, ast.Name) and t.id == name)
        or (isinstance(t, ast.Attribute) and t.attr == name and isinstance(t.value, ast.Name) and t.value.id == "self")
        for t in targets
    )


def _remove(tree: ast.Module, qualname: str) -> None:
    """Delete the definitions `qualname` names (`f`, `Class.attr`, `Class.method`,
    `Class.__init__.attr` for a `self.attr = ...` in it) and, at module level, its `__all__` entry.
    Raises ValueError when there is no such definition, so a removal cannot be claimed by mistake."""
    *scopes, name = qualname.split(".")
    node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef = tree
    for part in scopes:
        inner = [
            n
            for n in node.body
            if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == part
        ]
        if not inner:
            raise ValueError(f"{qualname}: no scope {part!r}")
        node = inner[0]
    kept = [s for s in node.body if not _defines(s, name)]
    if len(kept) == len(node.body):
        raise ValueError(f"{qualname}: no such definition")
    node.body = kept
    if not scopes:
        for s in kept:
            if not (isinstance(s, ast.Assign) and isinstance(s.value, (ast.List, ast.Tuple))):
                continue
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in s.targets):
                s.value.elts = [e for e in s.value.elts if not (isinstance(e, ast.Constant) and e.value == name)]


def normalised(source: str, removed: Sequence[str] = ()) -> str:
    """`source` as a syntax tree without imports and docstrings (line numbers left out); with
    `removed`, as if those definitions (see `_remove`) had been deleted from it."""
    tree = ast.parse(textwrap.dedent(source))
    for qualname in removed:
        _remove(tree, qualname)
    return ast.dump(_strip(tree), annotate_fields=False, include_attributes=False)


def sources_fingerprint(files: Iterable[Path], removed: Mapping[Path, Sequence[str]] | None = None) -> str:
    """sha256 (16 hex digits) over the normalised text of `files`, independent of their paths.
    `removed` maps a file to definitions to leave out of it (`benchmarks.rekey --removed`)."""
    removed = removed or {}
    digests = sorted(
        hashlib.sha256(normalised(Path(f).read_text(), removed.get(Path(f), ())).encode()).hexdigest() for f in files
    )
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
