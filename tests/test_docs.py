"""The docs are tests: every shell command and Python snippet of README.md, docs/*.md and
docs/lessons/*.md runs as written, in a fresh folder per page (see docs_runner.py).

A block that deliberately cannot run here carries `<!-- docs-test: skip (reason) -->` in
the page; it is reported as skipped with that reason, never dropped silently.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from docs_runner import (
    LANGUAGES,
    PAGES,
    REPO,
    Block,
    DocFailure,
    Page,
    blocks,
    fence_languages,
    logical_lines,
    make_workspace,
)

pytestmark = pytest.mark.live

TUTORIAL = REPO / "docs" / "tutorial.md"
ALL = [b for page in PAGES for b in blocks(page)]
PER_PAGE = [b for b in ALL if b.page != TUTORIAL]


@pytest.fixture(scope="session")
def pages(tmp_path_factory):
    """One Page per doc page, made on its first block and stopped after its last."""
    made: dict = {}
    mpl = tmp_path_factory.mktemp("mpl")

    def get(page) -> Page:
        if page not in made:
            folder = tmp_path_factory.mktemp(page.stem)
            made[page] = Page(folder, make_workspace(folder, mpl))
        return made[page]

    yield get
    for page in made.values():
        page.stop()


def _skip_if_marked(block: Block) -> None:
    skip = block.mark("skip")
    if skip:
        pytest.skip(f"{block.where}: marked in the page: {skip.reason}")


@pytest.mark.parametrize("block", PER_PAGE, ids=[b.where for b in PER_PAGE])
def test_doc_block(block: Block, pages) -> None:
    page = pages(block.page)
    last = block is [b for b in PER_PAGE if b.page == block.page][-1]
    failure = None
    try:
        _skip_if_marked(block)
        page.run(block)
    except DocFailure as exc:
        failure = str(exc)
    finally:
        if last:
            page.stop()
    if failure:
        pytest.fail(failure, pytrace=False)


@pytest.mark.slow
def test_tutorial_from_a_fresh_folder(tmp_path) -> None:
    """docs/tutorial.md step by step in one new folder, later steps seeing earlier ones'
    files: every step exits as the page says and writes the files it names."""
    page = Page(tmp_path, make_workspace(tmp_path, tmp_path / "mpl"))
    steps = blocks(TUTORIAL)
    assert len(steps) >= 6
    failures, skipped = [], []
    try:
        for block in steps:
            if block.mark("skip"):
                skipped.append(f"{block.where}: {block.mark('skip').reason}")
                continue
            try:
                page.run(block)
            except DocFailure as failure:
                failures.append(str(failure))
    finally:
        page.stop()
    assert not failures, f"{len(failures)} of {len(steps)} tutorial steps failed:\n\n" + \
        "\n\n".join(failures)
    assert not skipped, f"the tutorial must run whole; skipped: {skipped}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_block_names_its_language(page) -> None:
    """An untagged fence would hide a command from these tests: each says what it is."""
    bad = [(line, info) for line, info in fence_languages(page)
           if info.split(" ")[0] not in LANGUAGES]
    assert not bad, f"{page.relative_to(REPO)}: blocks without a known language " \
        f"({', '.join(sorted(LANGUAGES))}): {bad}"


def test_marks_say_why() -> None:
    """A skip or interactive mark without its reason is not allowed; list them all."""
    marked = [(b.where, m.kind, m.reason) for b in ALL for m in b.marks
              if m.kind in ("skip", "interactive", "exit")]
    assert all(reason for _, _, reason in marked), [m for m in marked if not m[2]]


def test_the_harness_finds_commands_and_servers() -> None:
    """The extraction itself: continuation lines are joined, servers are recognised."""
    from docs_runner import _without_comment, server_words

    app_server = next(b for b in ALL if b.page.name == "app-server.md" and b.language == "sh")
    lines = [text for _, text in logical_lines(app_server)]
    assert any(text.startswith("PUSHLAB_API_KEY=") and "--fcm-credentials" in text
               for text in lines)
    assert server_words("pushlab serve apns --port 2197 &")[:3] == ["pushlab", "serve", "apns"]
    assert server_words(".venv/bin/pushlab run scenarios/hello.yaml") is None
    assert _without_comment("pushlab serve apns &   # a '#' in a comment") == "pushlab serve apns &"
    assert _without_comment("curl -d '{\"a\": \"#x\"}' u") == "curl -d '{\"a\": \"#x\"}' u"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_links_between_pages_resolve(page) -> None:
    """`[text](other.md#section)` links point at a page and a heading that exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_nothing_cites_a_file_outside_the_repository() -> None:
    """The docs stand alone: sources are in docs/sources.md, not in paths beside the repo."""
    tracked = subprocess.run(["git", "ls-files", "*.md", "*.py", "*.yaml", "*.toml"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
    pattern = re.compile(r"\breference/(providers|energy|platforms|peers)\.md|\.\./shared|"
                         r"shared/reference|\b[EP]§\d")
    hits = [f"{name}:{n}" for name in tracked.split()
            if (REPO / name).exists() and name != "tests/test_docs.py"
            for n, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), 1)
            if pattern.search(line)]
    assert not hits, f"citations of files that are not in the repository: {hits}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_yaml_and_json_blocks_parse(page) -> None:
    """Scenario fragments and fault plans a reader copies are at least well-formed."""
    import json

    import yaml
    from sybil import Sybil
    from sybil.parsers.markdown import CodeBlockParser

    found = Sybil(parsers=[CodeBlockParser(language="yaml"), CodeBlockParser(language="json")])
    bad = []
    for example in found.parse(page).examples():
        language = example.region.lexemes["arguments"]
        try:
            (yaml.safe_load if language == "yaml" else json.loads)(example.parsed)
        except (yaml.YAMLError, ValueError) as exc:
            bad.append(f"{page.relative_to(REPO)}:{example.line}: {exc}")
    assert not bad, bad
