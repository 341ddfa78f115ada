"""
``python -m benchmarks reports``: the committed reports are what the committed runs give. From a copy of each
folder's archive alone (as a clone has it), the rebuilt report equals the committed one but for the lines that say
when, where and with which versions it was written. The two MuJoCo reports (seeds 0 to 4 and 100 to 104) take the same
path as the other suite reports (and two minutes each, most of them measuring the random policy), so they are left to
the command itself.
"""

import shutil
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.runs import RUNS_ARCHIVE

RESULTS = Path(__file__).resolve().parents[1] / "results"
#: The folders checked, and their report
CHECKED = {
    "classic-control": "results.md",
    "lunarlander": "results.md",
    "scale-out": "scale_out.md",
    "equal-compute": "equal_compute.md",
}
#: The header's lines that depend on when and where the report is written
CIRCUMSTANTIAL = ("- Command:", "- Date:", "- Machine:", "- Versions:")

pytestmark = pytest.mark.integration


def _content(report: Path) -> list[str]:
    return [line for line in report.read_text().splitlines() if not line.startswith(CIRCUMSTANTIAL)]


def test_the_committed_reports_rebuild_from_the_committed_archives(tmp_path: Path) -> None:
    for name in CHECKED:
        (tmp_path / name).mkdir()
        shutil.copy(RESULTS / name / RUNS_ARCHIVE, tmp_path / name / RUNS_ARCHIVE)
    main(["reports", "--results", str(tmp_path), "--only", *CHECKED])
    for name, report in CHECKED.items():
        assert _content(tmp_path / name / report) == _content(RESULTS / name / report), name
