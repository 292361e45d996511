"""Every package of the source tree is listed in pyproject.toml, so that a regular
(non-editable) install ships it."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "neurolns").rglob("__init__.py")}
    assert found - listed == set()
    assert {"neurolns.models", "neurolns.scenarios"} <= listed
    assert cfg["package-dir"]["neurolns.models"] == "models"
