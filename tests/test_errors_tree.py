"""The error tree drawn in kpisync/errors.py's docstring is the tree of the classes, no more, no less.

The classes are found by reading the product's source (every class whose base is in the tree,
wherever it is defined), so a new error class anywhere fails this test until it is drawn. A
class drawn "not raised today" must be built nowhere in the product, and every other drawn class
must be built somewhere: the drawing says which errors a caller can actually meet.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kpisync.errors

ROOT = Path(__file__).resolve().parents[1]
NOT_PRODUCT = {"tests", "benchmarks", "docs", "fixtures", "build", "dist"}
UNRAISED = "not raised today"
# A drawn line: tree drawing, then the class name, then its description.
DRAWN = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+)\s")


def product_sources() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*.py")
        if not {part for part in path.relative_to(ROOT).parts[:-1]} & NOT_PRODUCT
        and not any(
            part.startswith(".") or part.endswith(".egg-info")
            for part in path.relative_to(ROOT).parts
        )
    ]


def drawn_tree() -> tuple[dict[str, str | None], set[str]]:
    """Class -> drawn parent (None for the root), and the classes drawn as never raised."""
    doc = kpisync.errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    unraised: set[str] = set()
    stack: list[tuple[int, str]] = []  # (column of the name, name) from the root down
    for line in doc.splitlines():
        match = DRAWN.match(line.strip("\n")) if line.startswith("    ") else None
        if not match or not (match["lead"].strip() or not stack):
            continue
        column = len(match["lead"])
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((column, match["name"]))
        if UNRAISED in line:
            unraised.add(match["name"])
    return parents, unraised


def source_tree() -> tuple[dict[str, str | None], set[str]]:
    """Class -> base for every class under KpisyncError, and the names built anywhere."""
    bases: dict[str, str] = {}
    built: set[str] = set()
    for path in product_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.bases:
                base = node.bases[0]
                name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                bases[node.name] = name
            elif isinstance(node, ast.Call):
                func = node.func
                built.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
                if getattr(func, "id", "") == "Rule" and node.args:  # a connector's error table
                    built.add(getattr(node.args[0], "id", ""))
    tree: dict[str, str | None] = {"KpisyncError": None}
    grown = True
    while grown:
        grown = False
        for child, parent in bases.items():
            if parent in tree and child not in tree:
                tree[child] = parent
                grown = True
    return tree, built


def test_the_drawn_tree_is_the_tree_of_the_classes() -> None:
    drawn, _ = drawn_tree()
    classes, _ = source_tree()
    assert len(drawn) > 10, "the tree in kpisync/errors.py's docstring could not be read"
    missing = sorted(set(classes) - set(drawn))
    extra = sorted(set(drawn) - set(classes))
    assert not missing, f"draw these error classes in kpisync/errors.py's docstring: {missing}"
    assert not extra, f"drawn in kpisync/errors.py but no such class: {extra}"
    moved = {name: (drawn[name], classes[name]) for name in classes if drawn[name] != classes[name]}
    assert not moved, f"drawn under the wrong parent (drawn, real): {moved}"


def test_the_drawing_says_which_errors_are_raised() -> None:
    drawn, unraised = drawn_tree()
    _, built = source_tree()
    wrongly_unraised = sorted(unraised & built)
    never_built = sorted(set(drawn) - unraised - built)
    assert not wrongly_unraised, (
        f"raised now: drop '{UNRAISED}' from these in kpisync/errors.py: {wrongly_unraised}"
    )
    assert not never_built, (
        f"nothing raises these: mark them '{UNRAISED}' in kpisync/errors.py or remove them: "
        f"{never_built}"
    )


def test_the_drawn_classes_are_the_importable_ones() -> None:
    drawn, _ = drawn_tree()
    for name, parent in drawn.items():
        if hasattr(kpisync.errors, name) and parent:
            assert issubclass(getattr(kpisync.errors, name), getattr(kpisync.errors, parent))
