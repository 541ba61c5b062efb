"""The README stays a front door and the docs stay true to the code: no services, plain files.

- README.md is at most 200 lines; the rest lives in docs/*.md.
- Every relative link (and its #anchor) in README.md and docs/*.md points at something that exists.
- Every environment variable the code reads is documented in docs/configuration.md, and every
  variable that page lists is read somewhere.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CONFIGURATION = REPO / "docs" / "configuration.md"
README_MAX_LINES = 200
# Where the product reads its environment: the code location, the dashboard, the local stack.
SOURCE_DIRS = ("electricity_assets", "dashboard", "devstack")
# A variable only a test reads (documented too) counts as read.
TEST_DIRS = ("electricity_assets_tests",)
# Settings modules name variables in tables and loops too: there every string constant with one
# of the project's prefixes is a variable's name (not "SASL_SSL", a value).
SETTINGS_MODULE_NAMES = ("settings.py",)
VARIABLE_PREFIXES = ("ELECTRICITY_", "DAGSTER_", "KAFKA_", "MLFLOW_", "EIA_", "DUCKDB_",
                     "SERVING_", "CHAMPION_", "DASHBOARD_")
# Calls that read a variable given by name: os.getenv, os.environ.get, settings.env, dg.EnvVar.
READ_CALLS = frozenset({"getenv", "env", "EnvVar"})

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
TABLE_VARIABLE = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]+)`", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """Markdown without code blocks, inline code and comments: where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", HTML_COMMENT.sub("", text)))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def broken_links(path: Path) -> Iterator[str]:
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            yield f"{path.relative_to(REPO)}: {target} (no such file)"
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            yield f"{path.relative_to(REPO)}: {target} (no heading #{fragment})"


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` or a bare `environ`."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _name_constant(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(
            node.value):
        return node.value
    return None


def variables_read(source: str, settings_module: bool) -> set[str]:
    """Names of the environment variables one module reads."""
    tree = ast.parse(source)
    found: set[str] = set()
    if settings_module:
        found = {name for node in ast.walk(tree)
                 if (name := _name_constant(node)) and name.startswith(VARIABLE_PREFIXES)}
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Call) and node.args:
            called = _called_name(node)
            environ_method = (isinstance(node.func, ast.Attribute)
                              and _is_environ(node.func.value) and called in ("get", "pop"))
            if called in READ_CALLS or environ_method:
                name = _name_constant(node.args[0])
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(
                node.ctx, ast.Load):
            name = _name_constant(node.slice)
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            name = _name_constant(node.left)  # "X" in os.environ
        if name:
            found.add(name)
    return found


def code_variables(dirs: tuple[str, ...]) -> dict[str, list[str]]:
    """Every variable read under `dirs`, with the files that read it."""
    readers: dict[str, list[str]] = {}
    for top in dirs:
        for path in sorted((REPO / top).rglob("*.py")):
            names = variables_read(path.read_text(), path.name in SETTINGS_MODULE_NAMES)
            for name in names:
                readers.setdefault(name, []).append(str(path.relative_to(REPO)))
    return readers


def documented_variables() -> set[str]:
    """Variables docs/configuration.md names in the first column of its tables."""
    return set(TABLE_VARIABLE.findall(HTML_COMMENT.sub("", CONFIGURATION.read_text())))


def test_readme_is_a_front_door() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move the detail into "
        "docs/*.md and link it")


def test_relative_links_point_at_files_and_headings_that_exist() -> None:
    broken = [b for path in markdown_files() for b in broken_links(path)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_variable_the_code_reads_is_documented() -> None:
    read = code_variables(SOURCE_DIRS)
    # The scan itself must still see the variables everyone knows are read, or it proves nothing.
    assert {"ELECTRICITY_HOME", "EIA_API_KEY", "KAFKA_BROKER_ADDRESS", "DUCKDB_PATH"} <= set(read)
    missing = {name: files for name, files in read.items() if name not in documented_variables()}
    assert not missing, (
        "read by the code but not in docs/configuration.md: "
        + "; ".join(f"{name} ({', '.join(files)})" for name, files in sorted(missing.items())))


def test_every_documented_variable_is_read_by_the_code() -> None:
    read = code_variables(SOURCE_DIRS + TEST_DIRS)
    stale = sorted(documented_variables() - set(read))
    assert not stale, f"docs/configuration.md lists variables nothing reads: {stale}"


@pytest.mark.parametrize(("source", "expected"), [
    ('import os\nos.environ.get("ELECTRICITY_X", "1")', {"ELECTRICITY_X"}),
    ('import os\nos.getenv("ELECTRICITY_X")', {"ELECTRICITY_X"}),
    ('import os\nos.environ["ELECTRICITY_X"]', {"ELECTRICITY_X"}),
    ('import os\nos.environ["ELECTRICITY_X"] = "1"', set()),  # a write, not a read
    ('import os\n"ELECTRICITY_X" in os.environ', {"ELECTRICITY_X"}),
    ('settings.env("ELECTRICITY_X")', {"ELECTRICITY_X"}),
    ('dg.EnvVar("ELECTRICITY_X")', {"ELECTRICITY_X"}),
    ('row.get("region")', set()),
])
def test_the_scan_finds_reads(source: str, expected: set[str]) -> None:
    assert variables_read(source, settings_module=False) == expected


def test_a_settings_module_names_variables_in_tables() -> None:
    source = ('TOPICS = {"demand": "KAFKA_DEMAND_TOPIC"}\n'
              'PROTOCOLS = ("SASL_SSL", "SASL_PLAINTEXT")\n'
              'def home():\n    return env("ELECTRICITY_HOME")\n')
    assert variables_read(source, settings_module=True) == {"KAFKA_DEMAND_TOPIC",
                                                            "ELECTRICITY_HOME"}
    assert variables_read(source, settings_module=False) == {"ELECTRICITY_HOME"}
