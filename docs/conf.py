"""Sphinx configuration of sb3-vpg's documentation: MyST Markdown pages, autodoc, the Read the Docs theme."""

import datetime
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPOSITORY = DOCS.parent
# The package (for autodoc, from the checkout rather than an installed copy) and the docs' own extension.
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(DOCS / "_ext"))


def project_urls() -> dict[str, str]:
    """``[project.urls]`` of pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed package's metadata holds the same URLs
        from importlib.metadata import metadata

        return dict(entry.split(", ", 1) for entry in metadata("sb3-vpg").get_all("Project-URL"))
    with open(REPOSITORY / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["urls"]


# -- Project information -----------------------------------------------------

project = "sb3-vpg"
author = "sb3-vpg contributors"
copyright = f"{datetime.date.today().year}, {author}"
release = (REPOSITORY / "sb3_vpg" / "version.txt").read_text().strip()
version = release

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sb3_vpg_docs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]
language = "en"

# MyST: $$ ... $$ (label) numbered equations, ::: fences, anchors for links to the sections of a page.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_typehints = "description"
autodoc_member_order = "bysource"

# Links to the repository's files ({source} role): the branch the README's links point at.
sb3_vpg_source_url = project_urls()["Source"]
sb3_vpg_source_branch = "main"

# -- HTML output -------------------------------------------------------------

html_theme = "sphinx_rtd_theme"
html_title = f"sb3-vpg {release}"
