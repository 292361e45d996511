"""The documented examples stay true.

Every ```python block of docs/*.md and the README runs **alone**, as a reader
who pastes just that block would run it: in a fresh namespace and a fresh
working folder. Module docstring examples run as doctests.

Printed outputs are compared with the comments that promise them. A comment
``# -> EXPECTED`` (optionally ``# -> EXPECTED -- a note``) states what the
top-level statement on its line prints (statements joined by ``;`` on one line
count together; a compound statement such as ``try``/``for`` is compared with
all the ``# ->`` comments inside it, in order). The comparison is doctest-like:

* whitespace is ignored (numpy spacing and line wrapping do not matter);
* ``...`` matches any output, including none;
* a number is equal within one unit of its last written digit: ``3.0844``
  matches 3.08442, ``0.1`` matches 0.05..0.15, ``1e-7`` matches 0..2e-7; a
  number written without a point or exponent must be exact (``16`` does not
  match 16.5), and numpy's ``2.`` means 2 to print precision (1e-8 relative).

Other comments are prose and are not compared; in docs/*.md a comment on a
``print`` line that starts like a value (a bracket, a digit, ``True``/``False``)
must use ``# ->`` so that a promised output is never left unchecked.
"""
from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import io
import pkgutil
import re
import tokenize
from pathlib import Path

import pytest

import neurolns

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)
PAGES = sorted(DOCS.glob("*.md")) + [DOCS.parent / "README.md"]

ARROW = re.compile(r"#\s*->\s?(.*)$")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_LOOKS_LIKE_VALUE = re.compile(r"#\s*(?:[\[({'\"]|[-+]?\d|True\b|False\b|tensor\()")
_ELLIPSIS = object()


def _blocks(page: Path) -> list[tuple[int, str]]:
    """``(line of the block's first code line in the page, code)`` for each python block."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


CASES = [(page, i) for page in PAGES for i in range(len(_blocks(page)))]


# --- output comparison -----------------------------------------------------------------------------------------


def _tokens(text: str, *, expected: bool) -> list:
    """Numbers as ``(value, tolerance)``, ``...`` (in the expected text) as a wildcard, other characters one by one."""
    out, pos = [], 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif expected and text.startswith("...", pos):
            out.append(_ELLIPSIS)
            pos += 3
        elif m := NUMBER.match(text, pos):
            s = m.group()
            mant, _, exp = s.lower().partition("e")
            decimals = len(mant.partition(".")[2])
            if not exp and (decimals == 0):  # "16" or numpy's "2.": the value itself (to print precision)
                tol = 0.0 if "." not in mant else 1e-8 * max(1.0, abs(float(s)))
            else:
                tol = 10.0 ** ((int(exp) if exp else 0) - decimals)
            out.append((float(s), tol))
            pos = m.end()
        else:
            out.append(ch)
            pos += 1
    return out


def _token_eq(e, a) -> bool:
    if isinstance(e, tuple):
        return isinstance(a, tuple) and abs(a[0] - e[0]) <= e[1] * (1 + 1e-9) + 1e-300
    return e == a


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` printed output matches the ``expected`` text (rules in the module docstring).

    Examples
    --------
    >>> output_matches("[ 3.0844  0.0964]", "[3.084422 0.096388]")
    True
    >>> output_matches("10.954...", "10.954451150103322"), output_matches("16", "16.5")
    (True, False)
    """
    e, a = _tokens(expected, expected=True), _tokens(actual, expected=False)
    # match[i][j]: e[i:] matches a[j:]
    match = [[False] * (len(a) + 1) for _ in range(len(e) + 1)]
    match[len(e)][len(a)] = True
    for i in range(len(e) - 1, -1, -1):
        for j in range(len(a), -1, -1):
            if e[i] is _ELLIPSIS:
                match[i][j] = match[i + 1][j] or (j < len(a) and match[i][j + 1])
            else:
                match[i][j] = j < len(a) and _token_eq(e[i], a[j]) and match[i + 1][j + 1]
    return match[0][0]


@pytest.mark.parametrize("expected, actual, ok", [
    ("[-1  1  1  1]", "[-1  1  1  1]\n", True),
    ("(4, 10)", "(4, 10)", True),
    ("[ 0.49502492 -0.5050251   0. ]", "[ 0.49502492 -0.5050251   0.        ]", True),
    ("3.0844, 0.0964, -1.0, 0.0", "3.0844, 0.0964, -1.0, 0.0", True),
    ("0.4", "0.45", True),            # one unit of the last digit
    ("0.4", "0.51", False),
    ("1e-7", "1.5e-07", True),
    ("1e-7", "3e-07", False),
    ("16", "16.0", True),
    ("16", "17", False),              # integers are exact
    ("[0. 2.]", "[-0.  2.]", True),
    ("[0. 2.]", "[0.  2.4]", False),  # numpy's "2." is 2, not 2 +- 1
    ("True", "False", False),
    ("ValueError: x=... is out of range", "ValueError: x=-2 is out of range", True),
    ("[1 2 ... 9]", "[1 2 3 4 5 6 7 8 9]", True),
    ("[1 2]", "[1 2 3]", False),
    ("10.954...", "10.954451150103322", True),
    ("(2.0, 0.693...)", "(2.0, 0.6931471805599453)", True),
    ("{'bg': (28, 10, 10)}", "{'bg': (28, 10, 10)}", True),
    ("2^-9", "2^-9", True),
])
def test_output_matches(expected, actual, ok):
    """The comparison rules the pages rely on (module docstring): whitespace, ``...``, number tolerances."""
    assert output_matches(expected, actual) is ok


# --- running the blocks ----------------------------------------------------------------------------------------


def _comments(code: str) -> dict[int, str]:
    """Line (1-based, within the block) → comment text, for real comments only (not ``#`` inside strings)."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def _groups(tree: ast.Module) -> list[list[ast.stmt]]:
    """Top-level statements, those sharing a line (``a; b``) grouped together."""
    groups: list[list[ast.stmt]] = []
    for node in tree.body:
        if groups and node.lineno <= groups[-1][-1].end_lineno:
            groups[-1].append(node)
        else:
            groups.append([node])
    return groups


def _expected(comment: str) -> str:
    return ARROW.search(comment).group(1).split(" -- ", 1)[0].strip()


def _check_unmarked_values(page: Path, first: int, code: str, comments: dict[int, str]) -> None:
    lines = code.splitlines()
    for ln, c in comments.items():
        if "print(" in lines[ln - 1] and not ARROW.search(c) and _LOOKS_LIKE_VALUE.match(c):
            raise AssertionError(f"{page.name}:{first + ln - 1}: the comment {c!r} reads as a printed value; "
                                 "write it as '# -> VALUE' so that it is checked, or as prose")


@pytest.mark.parametrize("page, index", CASES, ids=[f"{p.name}-{i}" for p, i in CASES])
def test_doc_example(page, index, tmp_path, monkeypatch):
    """The block runs alone (fresh namespace and folder) and prints what its ``# ->`` comments say."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    first, code = _blocks(page)[index]
    where = f"{page.name}[block {index}, line {first}]"
    comments = _comments(code)
    if page.parent == DOCS:  # the README keeps its own comment style
        _check_unmarked_values(page, first, code, comments)
    namespace = {"__name__": f"docs_{page.stem}_{index}"}
    for group in _groups(ast.parse(code)):
        lo, hi = group[0].lineno, group[-1].end_lineno
        promised = [(ln, _expected(c)) for ln, c in sorted(comments.items()) if lo <= ln <= hi and ARROW.search(c)]
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(ast.Module(body=group, type_ignores=[]), where, "exec"), namespace)
        except Exception as exc:  # name the block and line that broke
            raise AssertionError(f"{where} failed at line {first + lo - 1}: {exc!r}\n---\n{code}") from exc
        if promised:
            expected = " ".join(e for _, e in promised)
            assert output_matches(expected, buf.getvalue()), (
                f"{page.name}:{first + promised[0][0] - 1} promises {expected!r} but prints {buf.getvalue()!r}")


# --- docstrings ------------------------------------------------------------------------------------------------


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

