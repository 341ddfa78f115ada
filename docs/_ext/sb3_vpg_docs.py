"""
Sphinx extension of sb3-vpg's docs.

- ``{keyword-table}``, ``{estimator-table}`` and ``{benchmark-subcommands}``: directives that insert the tables of
  ``sb3_vpg_tables``, generated from the code at build time (a keyword without a note fails the build).
- ``{source}`path``` (or ``{source}`text <path>```): a link to a file or folder of the repository on GitHub, on the
  branch ``sb3_vpg_source_branch`` of ``sb3_vpg_source_url``. The path must exist in the checkout the docs are built
  from, else the build warns (and ``make doc`` fails).
"""

from pathlib import Path
from typing import Any

import sb3_vpg_tables
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import ReferenceRole, SphinxDirective

#: The repository's root: two levels above this file (docs/_ext/)
REPOSITORY = Path(__file__).resolve().parents[2]


class GeneratedTable(SphinxDirective):
    """A Markdown table generated from the code, parsed as the page's own Markdown."""

    has_content = False
    generate: Any = None

    def run(self) -> list[nodes.Node]:
        try:
            table = type(self).generate()
        except ValueError as error:
            raise self.error(str(error)) from error
        container = nodes.container()
        self.state.nested_parse(StringList(table.splitlines(), source=self.get_source_info()[0]), 0, container)
        return container.children


class KeywordTable(GeneratedTable):
    generate = staticmethod(sb3_vpg_tables.keyword_table)


class EstimatorTable(GeneratedTable):
    generate = staticmethod(sb3_vpg_tables.estimator_table)


class BenchmarkSubcommands(GeneratedTable):
    generate = staticmethod(sb3_vpg_tables.benchmark_subcommands)


class SourceRole(ReferenceRole):
    """A link to a path of the repository on GitHub; warns when the path does not exist here."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        path = self.target.strip("/")
        local = REPOSITORY / path
        if not local.exists():
            message = f"{{source}} link to {path!r}, which is not in the repository"
            return [], [self.inliner.reporter.warning(message, line=self.lineno)]
        config = self.config
        kind = "tree" if local.is_dir() else "blob"
        url = f"{config.sb3_vpg_source_url}/{kind}/{config.sb3_vpg_source_branch}/{path}"
        text = self.title if self.has_explicit_title else path
        reference = nodes.reference("", "", nodes.literal(text, text), refuri=url, internal=False)
        return [reference], []


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("sb3_vpg_source_url", "", "env")
    app.add_config_value("sb3_vpg_source_branch", "main", "env")
    app.add_directive("keyword-table", KeywordTable)
    app.add_directive("estimator-table", EstimatorTable)
    app.add_directive("benchmark-subcommands", BenchmarkSubcommands)
    app.add_role("source", SourceRole())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
