"""`cutover` is the SDK side: it must import and run without Django."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CUTOVER = Path(__file__).resolve().parents[3] / "cutover"
ROOT = CUTOVER.parent


def test_no_module_under_cutover__imports_django_or_the_control_plane():
    offenders = []
    for path in sorted(CUTOVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"django", "rest_framework", "migrations_app", "controlplane", "celery"}:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []


def test_importing_every_cutover_module__does_not_load_django():
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in CUTOVER.rglob("*.py")
    )
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
