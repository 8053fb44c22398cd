"""The complete examples of docs/testing.md run as written.

A code block whose first line is ``# <file name>`` is written to that file; the blocks of one
``## `` section make one project, run with pytest.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"```(?:python|ini)\n# (?P<name>[\w.]+)\n(?P<body>.*?)```", re.DOTALL)


def projects() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for section in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0].strip()
        files = {m["name"]: m["body"] for m in BLOCK.finditer(section)}
        if any(name.startswith("test_") for name in files):
            found[title] = files
    return found


def test_the_guide_has_both_complete_examples() -> None:
    assert {"A FastAPI app", "A Flask app"} <= set(projects())


@pytest.mark.parametrize("title", sorted(projects()))
def test_example_passes(pytester: pytest.Pytester, title: str) -> None:
    if "FastAPI" in title:
        pytest.importorskip("fastapi")
    if "Flask" in title:
        pytest.importorskip("flask")
    for name, body in projects()[title].items():
        pytester.path.joinpath(name).write_text(body, encoding="utf-8")
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) == sum(
        body.count("\ndef test_") + body.count("\nasync def test_")
        for name, body in projects()[title].items() if name.startswith("test_")
    ), result.stdout.str()
