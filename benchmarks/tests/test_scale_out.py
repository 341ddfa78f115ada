"""
``python -m benchmarks scale-out --quick``: CartPole-v1 on 1 and 2 ranks (real torchrun jobs, a few seconds each); the
results hold what the report is made of, and the report rebuilds, the same, from the packed archive alone.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_quick_scale_out_runs_both_rank_counts_and_rebuilds_from_its_archive(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "scale-out", "--quick", "--out", str(tmp_path)]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    for ranks in (1, 2):
        result = json.loads((tmp_path / "runs" / "CartPole-v1" / f"ranks{ranks}" / "seed10.json").read_text())
        assert result["ranks"] == ranks and result["timesteps"] >= 10_000
        steps, _, _, seconds = zip(*result["curve"], strict=True)
        assert steps[0] == 0 and list(steps) == sorted(steps) and list(seconds) == sorted(seconds)
        assert 0 < result["collect_seconds"] <= result["train_seconds"] and result["cpu_seconds"] > 0
    report = (tmp_path / "scale_out.md").read_text()
    assert "| CartPole-v1 | 1 | 1 |" in report and "| CartPole-v1 | 2 | 1 |" in report
    assert (tmp_path / "scale_out_CartPole-v1.png").is_file()

    shutil.rmtree(tmp_path / "runs")
    subprocess.run([*command, "--report-only"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    rebuilt = (tmp_path / "scale_out.md").read_text()
    assert rebuilt.split("\n", 3)[3] == report.split("\n", 3)[3]  # all but the title and the command line
