"""The fenced ```python blocks of README.md and docs/**/*.md, with the markers that say how to
run them.

A marker is an HTML comment (invisible on GitHub and in MkDocs) on the lines right above the
fence, indented like it:

    <!-- snippet: skip REASON -->   not run (only compiled): REASON says why it cannot run here
    <!-- snippet: continue -->      runs after the previous block of the same file, with its names
    <!-- snippet: chain -->         needs the local Tempo chain (anvil)

Every other block runs on its own, as a reader would paste it.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>\s*)```python\s*$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<kind>skip|continue|chain)\b(?P<rest>.*?)-->\s*$")


@dataclass
class Snippet:
    """One fenced block: where it is (``path``, 1-based ``line`` of the fence), its code, and
    its markers."""

    path: str
    line: int
    code: str
    skip: str | None = None
    continues: bool = False
    chain: bool = False

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Group:
    """Blocks that run together: one block and the ``continue`` blocks after it."""

    snippets: list[Snippet] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.snippets[0].name

    @property
    def chain(self) -> bool:
        return any(s.chain for s in self.snippets)


def snippets_of(path: str) -> list[Snippet]:
    lines = (REPO / path).read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        snippet = Snippet(path, i + 1, textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n")
        above = i - 1
        while above >= 0 and (marker := _MARKER.match(lines[above])) is not None:
            kind, rest = marker["kind"], marker["rest"].strip()
            if kind == "skip":
                snippet.skip = rest
            elif kind == "continue":
                snippet.continues = True
            else:
                snippet.chain = True
            above -= 1
        found.append(snippet)
        i = end + 1
    return found


def all_snippets() -> list[Snippet]:
    return [s for path in DOCUMENTS for s in snippets_of(path)]


def groups() -> list[Group]:
    """Every block to run, grouped with its continuations (skipped blocks are not in any)."""
    result: list[Group] = []
    for path in DOCUMENTS:
        for snippet in snippets_of(path):
            if snippet.skip is not None:
                continue
            if snippet.continues and result and result[-1].snippets[0].path == path:
                result[-1].snippets.append(snippet)
            else:
                result.append(Group([snippet]))
    return result
