"""
The README and the docs: their Python runs, and the README's links lead somewhere.

**Code blocks.** Every ```` ```python ```` block of ``README.md`` and ``docs/**/*.md`` runs as a user would run it:
as a script, in a fresh interpreter, in a temporary folder. One rule keeps them fast: the value of every
``total_timesteps=`` keyword is replaced by :data:`BUDGET` before the block runs, so the docs show the budget a user
would give and the test trains a few hundred steps. A block must therefore call ``learn`` with ``total_timesteps=``
(checked). Shell commands go in ```` ```bash ```` blocks and output or pseudocode in ```` ```text ```` blocks, which
are not run.

**The README** is the front door of a clone (a code host renders it): its links into the project are relative, and
each must lead to a file of the repository (images included) and, with ``#anchor``, to one of that page's headings;
none may point at a documentation site or a repository address (the project has neither yet).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKDOWN = [README, *sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts)]

#: The timesteps every ``total_timesteps=`` of a code block is replaced by
BUDGET = 512

#: Addresses the README must not link to: the documentation site and repository that pyproject.toml names, which do
#: not exist yet
PYPROJECT = (ROOT / "pyproject.toml").read_text()
UNPUBLISHED = tuple(
    re.search(rf'^{name} = "(.+)"', PYPROJECT, flags=re.MULTILINE).group(1).rstrip("/") for name in ("Documentation", "Source")
)


def python_blocks() -> list[tuple[str, str]]:
    """Every ```python block of the README and the docs: ``(file:line, code)``."""
    blocks = []
    for path in MARKDOWN:
        text = path.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL):
            line = text.count("\n", 0, match.start()) + 1
            blocks.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return blocks


BLOCKS = python_blocks()


def test_the_docs_have_code_to_run() -> None:
    """The extraction finds the blocks (a change of fence syntax would otherwise silently run nothing)."""
    places = {place.split(":")[0] for place, _ in BLOCKS}
    assert {"README.md", "docs/guide/quickstart.md", "docs/modules/vpg.md"} <= places


@pytest.mark.parametrize(("place", "code"), BLOCKS, ids=[place for place, _ in BLOCKS])
def test_python_block_runs(place: str, code: str, tmp_path: Path) -> None:
    assert not re.search(r"\.learn\((?!total_timesteps=)", code), f"{place}: call learn(total_timesteps=...)"
    script = tmp_path / "block.py"
    script.write_text(re.sub(r"total_timesteps=[\d_]+", f"total_timesteps={BUDGET}", code))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{place} failed:\n{result.stderr[-3000:]}"


def heading_anchors(page: Path) -> set[str]:
    """The HTML ids of a page's headings (lower case, runs of other characters as one ``-``), code blocks left out."""
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") for heading in headings}


def readme_links() -> list[str]:
    """The targets of the README's Markdown links and images, and its bare <URL>s."""
    text = README.read_text()
    return re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<(https?://[^>]+)>", text)


def test_readme_links_are_relative_and_lead_somewhere() -> None:
    links = readme_links()
    assert any(link.startswith("docs/") for link in links) and any(link.endswith(".png") for link in links)
    for link in links:
        assert not link.startswith(UNPUBLISHED), f"{link}: not published yet; link the file in the repository"
        if link.startswith(("https://", "http://")):
            continue  # other projects' pages
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), f"{link}: not in the repository"
        assert not anchor or anchor in heading_anchors(ROOT / path), f"{link}: no such heading"


def test_readme_stays_short() -> None:
    """The README is the front door; the guide, the results and the logs live in the docs."""
    assert len(README.read_bytes()) <= 10 * 1024
