"""The README and docs/ name only what exists: make targets, CLI commands, stack outputs, linked files."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import typer
from aws_cdk.assertions import Template

from contextual_targeting.cli.main import app
from tests.helpers import REPO

DOCS = (
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "docs" / "diagrams" / "README.md",
    REPO / "bench" / "README.md",
)
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# A command starts a line of a code block, follows `&&`, `;`, `|` or `$(`, or starts an inline code span.
MAKE = re.compile(r"(?:^|[;&|(])[ \t]*make ([a-z][\w-]*)(?!=)", re.MULTILINE)
COMMAND = re.compile(r"(?:^|[;&|(])[ \t]*contextual-targeting ([a-z][\w-]*)", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)
# A stack output is named in code as `output <Name>` / `OutputKey=='<Name>'`, in prose as a backticked name
# in a sentence that says "output(s)", or in the first column of a table headed "Output".
OUTPUT_IN_CODE = re.compile(r"(?:\boutput |OutputKey==')([A-Z]\w+)")
OUTPUT_WORD = re.compile(r"\boutputs?\b")
OUTPUT_LIKE = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z0-9]*)*(?:Arn|Name|Id|Url)$")
SENTENCE_END = re.compile(r"(?<=[.;:])\s+|\n\n")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code(text: str) -> str:
    """Fenced blocks and inline code: where commands are written."""
    return "\n".join([m.group(0) for m in FENCE.finditer(text)] + INLINE_CODE.findall(FENCE.sub("", text)))


def _prose(text: str) -> str:
    """The text without fenced blocks (links and headings in code are not links and headings)."""
    return FENCE.sub("", text)


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


@cache
def _make_targets() -> frozenset[str]:
    makefile = _text(REPO / "Makefile")
    return frozenset(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, re.MULTILINE))


def _cli_commands() -> frozenset[str]:
    group = typer.main.get_command(app)
    return frozenset(getattr(group, "commands", {}))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(_prose(_text(path)))}


def _output_mentions(text: str) -> set[str]:
    found = set(OUTPUT_IN_CODE.findall(_code(text)))
    prose = _prose(text)
    for sentence in SENTENCE_END.split(prose):
        if OUTPUT_WORD.search(sentence):
            found |= {name for name in INLINE_CODE.findall(sentence) if OUTPUT_LIKE.match(name)}
    in_output_table = False
    for line in prose.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            in_output_table = False
        elif cells[0] == "Output":
            in_output_table = True
        elif in_output_table:
            found |= {name for name in INLINE_CODE.findall(cells[0]) if OUTPUT_LIKE.match(name)}
    return found


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_every_make_target_exists(path: Path) -> None:
    named = set(MAKE.findall(_code(_text(path))))
    assert named - _make_targets() == set(), f"{_name(path)} names make targets the Makefile lacks"


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_every_cli_command_exists(path: Path) -> None:
    named = set(COMMAND.findall(_code(_text(path))))
    assert named - _cli_commands() == set(), f"{_name(path)} names contextual-targeting commands that lack"


def test_the_readme_shows_the_user_commands() -> None:
    readme = _code(_text(REPO / "README.md"))
    assert {"demo", "bootstrap", "deploy", "destroy", "synth", "test"} <= set(MAKE.findall(readme))
    assert {"upload", "watch", "segments", "cleanup"} <= set(COMMAND.findall(readme))


def test_every_stack_output_named_exists(template: Template, full_template: Template) -> None:
    declared = set(template.to_json()["Outputs"]) | set(full_template.to_json()["Outputs"])
    named = {path: _output_mentions(_text(path)) for path in DOCS}
    unknown = {_name(path): sorted(names - declared) for path, names in named.items() if names - declared}
    assert unknown == {}
    # The check sees the outputs the docs name: every declared output is documented somewhere.
    assert declared - set().union(*named.values()) == set()


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(_text(path))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        missing_anchor = bool(anchor) and linked.suffix == ".md" and anchor not in _anchors(linked)
        if not linked.exists() or missing_anchor:
            broken.append(target)
    assert broken == [], f"{_name(path)}: links to missing files or headings"


def test_slug_follows_github() -> None:
    assert slug("4. Deploy") == "4-deploy"
    assert slug("The `Segment Ready` event (public interface)") == "the-segment-ready-event-public-interface"
    assert slug("No event is lost: dead letters and redrive") == "no-event-is-lost-dead-letters-and-redrive"
