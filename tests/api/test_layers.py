"""Dependencies point down only (DESIGN.md section 2): resources never import serving, serving
never imports jobs, and the domain packages under both import neither; imports inside functions
count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "omniwatch"
FORBIDDEN = {
    "resources": ("omniwatch.serving", "omniwatch.jobs"),
    "serving": ("omniwatch.jobs",),
    "tasks": ("omniwatch.serving", "omniwatch.jobs"),
    "trading": ("omniwatch.serving", "omniwatch.jobs", "omniwatch.tasks"),
    "ml": ("omniwatch.serving", "omniwatch.jobs", "omniwatch.tasks", "omniwatch.trading"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_imported_modules_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from omniwatch import serving\n    import omniwatch.jobs.x\n")
    assert {"omniwatch.serving", "omniwatch.jobs.x"} <= imported_modules(source)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_imports(layer):
    upward = [f"{path.relative_to(PACKAGE.parent)}: {name}"
              for path in sorted((PACKAGE / layer).rglob("*.py"))
              for name in sorted(imported_modules(path))
              if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN[layer])]
    assert upward == []
