"""Every relative link in README.md and docs/**/*.md points to a file or folder of the repository,
and every #section it names is a heading of the target Markdown file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(doc: Path) -> list[str]:
    """Link targets of a Markdown file, outside fenced code blocks."""
    return LINK.findall(FENCE.sub("", doc.read_text()))


def anchors(doc: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.*)$", FENCE.sub("", doc.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_docs_have_links():
    assert len(DOCS) > 5 and sum(len(links(d)) for d in DOCS) > 20


def test_anchor_rule():
    doc = ROOT / "docs" / "results.md"
    assert "speed-aims-met-and-missed" in anchors(doc) and "timing-gate" in anchors(doc)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    broken = []
    for target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor}")
    assert broken == [], f"{doc.relative_to(ROOT)}: " + "; ".join(broken)
