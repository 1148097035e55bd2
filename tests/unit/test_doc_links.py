"""The documentation's relative links resolve, and the README stays short.

Pages: README.md, config/README.md and every docs/**/*.md. Every relative Markdown link (inline
`[text](target)`, image `![alt](target)` or reference definition `[label]: target`) outside code
must name an existing file or folder relative to its page; in a `page.md#anchor` link the anchor
must be a heading of that page, slugged as GitHub does. Web links (http, https), mailto: links and
pure `#anchor` links are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 160
README_MAX_LINE_LENGTH = 200

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target may be <wrapped> and followed by a "title"
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[^)]*)?\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http:, mailto:, ...


def pages() -> list[Path]:
    found = [REPO / "README.md", REPO / "config" / "README.md"]
    found += sorted((REPO / "docs").rglob("*.md"))
    return [p for p in found if p.is_file()]


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks, inline code removed."""
    fenced = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if match:
            if fenced is None:
                fenced = match.group(1)
            elif match.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            yield number, INLINE_CODE.sub("", line)


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link in the page's prose."""
    found = []
    for number, line in prose_lines(text):
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition.group(1))
        found += [(number, t[1:-1] if t.startswith("<") else t) for t in targets]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text as rendered (code marks and link targets dropped),
    lowercased, punctuation but - and _ removed, each space a -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    fenced = None
    for line in page.read_text(encoding="utf-8").splitlines():
        match = FENCE.match(line)
        if match:
            if fenced is None:
                fenced = match.group(1)
            elif match.group(1) == fenced:
                fenced = None
            continue
        heading = HEADING.match(line) if fenced is None else None
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """One line per broken link of `page`, naming it relative to `root`."""
    problems = []
    where = page.relative_to(root)
    for number, target in links(page.read_text(encoding="utf-8")):
        if not target or target.startswith("#") or EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            problems.append(f"{where}:{number}: {target}: no such file or folder")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}:{number}: {target}: no heading #{anchor} in {path}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert not broken_links(page), "\n".join(broken_links(page))


def test_the_pages_are_there():
    names = {str(p.relative_to(REPO)) for p in pages()}
    assert {"README.md", "config/README.md"} <= names
    assert any(name.startswith("docs/") for name in names)


def test_a_broken_link_is_caught(tmp_path):
    """The checker itself: a missing file and a missing anchor are both reported."""
    (tmp_path / "other.md").write_text("# A heading, with `code`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading-with-code) [ok](other.md#twice-1) [web](https://example.org)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere)\n"
        "`[in code](missing.md)`\n```\n[fenced](missing.md)\n```\n"
    )
    targets = [t for _, t in links(page.read_text())]
    assert len(targets) == 5  # neither the inline code nor the fenced block counts
    assert anchors(tmp_path / "other.md") == {"a-heading-with-code", "twice", "twice-1"}
    assert broken_links(page, tmp_path) == [
        "page.md:2: missing.md: no such file or folder",
        "page.md:2: other.md#nowhere: no heading #nowhere in other.md",
    ]


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    long = [i for i, line in enumerate(lines, start=1) if len(line) > README_MAX_LINE_LENGTH]
    assert not long, f"README.md lines over {README_MAX_LINE_LENGTH} characters: {long}"
