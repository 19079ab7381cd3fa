"""The layering of the package, read from its imports: no import points up.

``cli`` → ``study`` → ``spec``/``resolve`` → ``report``/``store`` →
``recipes``/``checks``/``audit``/``select`` → ``models`` → ``data`` →
``_options`` → ``errors``/``_io``/``evidence``/``stats``. ``stats`` and
``evidence`` import nothing of assay; checks and recipes never import each
other; nothing imports ``cli`` but ``__main__``. Imports inside functions
count too: a late import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "assay"

RANK = {
    "errors": 0, "_io": 0, "evidence": 0, "stats": 0, "__version__": 0,
    "_options": 1,
    "data": 2,
    "models": 3,
    "checks": 4, "recipes": 4, "audit": 4, "select": 4, "policy": 3,
    "report": 5, "store": 5,
    "spec": 6, "resolve": 7, "compress": 6,
    "study": 8, "explain_input": 8, "bring_your_own": 9,
    "cli": 9, "__main__": 10,
}
SELF_CONTAINED = {"stats", "evidence"}  # import nothing of assay
SIBLINGS_APART = {("checks", "recipes"), ("recipes", "checks")}


def _imports() -> list[tuple[str, str, str]]:
    """``(importing unit, imported unit, file:line)`` for every import of assay inside assay."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = list(parts[:-1]) if parts[-1] == "__init__" else list(parts)
        package = module if parts[-1] == "__init__" else module[:-1]
        unit = module[1] if len(module) > 1 else "assay"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                pieces = target.split(".")
                if pieces[0] == "assay" and len(pieces) > 1 and pieces[1] != unit:
                    found.append((unit, pieces[1], f"{path.relative_to(PACKAGE)}:{node.lineno}"))
    return found


def test_every_unit_has_a_rank():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem != "__init__"}
    assert units <= set(RANK), f"give these a place in the layering: {sorted(units - set(RANK))}"


def test_no_import_points_up():
    imports = _imports()
    assert imports, "the import reader found nothing"
    wrong = [f"{where}: {a} imports {b}" for a, b, where in imports if RANK.get(b, 99) >= RANK.get(a, -1)]
    assert not wrong, "\n".join(wrong)


def test_stats_and_evidence_import_nothing_of_assay():
    wrong = [f"{where}: {a} imports {b}" for a, b, where in _imports() if a in SELF_CONTAINED]
    assert not wrong, "\n".join(wrong)


def test_checks_and_recipes_stay_apart_and_nothing_imports_cli():
    wrong = [f"{where}: {a} imports {b}" for a, b, where in _imports() if (a, b) in SIBLINGS_APART or (b == "cli" and a != "__main__")]
    assert not wrong, "\n".join(wrong)


def test_the_reader_sees_an_upward_import(tmp_path, monkeypatch):
    """Negative control: a module of ``data`` importing ``study`` is caught."""
    import shutil
    import sys

    fake = tmp_path / "assay"
    shutil.copytree(PACKAGE, fake, ignore=shutil.ignore_patterns("__pycache__"))
    (fake / "data" / "upward.py").write_text("def f():\n    from ..study import Study\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert any(a == "data" and b == "study" for a, b, _ in _imports())
