import subprocess
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[3] / "migrations_app" / "domain"


def test_domain__imported_alone__loads_no_django():
    modules = sorted(f"migrations_app.domain.{p.stem}" for p in DOMAIN.glob("*.py") if p.stem != "__init__")
    script = "import sys\n" + "".join(f"import {m}\n" for m in modules) + (
        "leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=DOMAIN.parents[1])
    assert result.returncode == 0, result.stderr
    assert len(modules) >= 4
