"""The docs' relative links resolve: every `[text](path)` and `[text](path#anchor)` in README.md, CHANGELOG.md,
RELIABILITY.md and docs/*.md names a file that exists, and every `#anchor` a heading of its target (GitHub's
slugs). A page moved or a heading renamed is a failing test, not a dead link a reader finds."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# a markdown link or image, `[text](target)` or `[text](target "title")`, and a reference definition `[id]: target`
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
FENCE = re.compile(r"^\s{0,3}(```|~~~).*?^\s{0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def documents() -> list[Path]:
    return [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "RELIABILITY.md", *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text without code blocks and code spans, whose brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file: its headings' slugs (repeats numbered -1, -2, ...) and explicit anchors."""
    text = path.read_text()
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """Every relative link of `path` that names no existing file, or an anchor its target does not have (each
    named with `path` relative to `root`)."""
    text = prose(path.read_text())
    broken = []
    for target in [*INLINE_LINK.findall(text), *REFERENCE.findall(text)]:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # https:, mailto:, ...: not ours to check
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{path.relative_to(root)}: {target} (no heading #{anchor} in {resolved.name})")
    return broken


def test_every_relative_link_in_the_docs_names_an_existing_file_and_heading():
    assert documents(), "no documents found"
    assert [problem for doc in documents() for problem in broken_links(doc)] == []


def test_a_broken_path_and_a_missing_anchor_are_both_caught(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The read copy (DuckDB)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Same page's heading\n\n"
        "[fine](other.md) [fine](other.md#the-read-copy-duckdb) [fine](#same-pages-heading) [web](https://x.org/a#b)\n"
        "[gone](missing.md) [wrong anchor](other.md#the-read-copy) [wrong here](#nowhere)\n"
        "`[in code](ignored.md)`\n\n```\n[in a block](ignored.md)\n```\n"
    )
    problems = broken_links(page, tmp_path)
    assert problems == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#the-read-copy (no heading #the-read-copy in other.md)",
        "page.md: #nowhere (no heading #nowhere in page.md)",
    ]


def test_slugs_follow_github_for_code_punctuation_and_repeats(tmp_path):
    assert slug("`SYNC_WAREHOUSE_URL` and `<PREFIX>*`") == "sync_warehouse_url-and-prefix"
    assert slug("Analysts' role") == "analysts-role"
    assert slug("Scaling out: PostgreSQL") == "scaling-out-postgresql"
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n```\n# not a heading\n```\n")
    assert anchors(page) == {"notes", "notes-1"}
