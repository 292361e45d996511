"""Every ```python block in docs/*.md and the README runs (each page in one namespace, in order),
so the documented examples stay true; module docstring examples run as doctests."""
import doctest
import importlib
import os
import pkgutil
import re
from pathlib import Path

import pytest

import neurolns

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)
PAGES = sorted(DOCS.glob("*.md")) + [DOCS.parent / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_doc_page_examples_run(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(BLOCK.findall(page.read_text())):
        try:
            exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"{page.name} block {i} failed: {exc!r}\n---\n{block}") from exc


def _modules_with_examples():
    root = Path(neurolns.__file__).parent
    for info in pkgutil.walk_packages([str(root)], prefix="neurolns."):
        path = root.joinpath(*info.name.split(".")[1:])
        src = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
        if src.exists() and ">>> " in src.read_text():
            yield info.name


@pytest.mark.parametrize("name", ["neurolns.formats", *sorted(set(_modules_with_examples()) - {"neurolns.formats"})])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
