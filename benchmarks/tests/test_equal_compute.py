"""
``python -m benchmarks equal-compute``: two real runs of a few CPU-seconds each, in processes of their own; each stops
at its CPU budget, evaluates at its checkpoints, and writes rl-zoo3's evaluations.npz beside its result.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_runs_stop_at_their_cpu_budget_and_write_rl_zoo3s_evaluations(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "equal-compute", "--quick", "--out", str(tmp_path)]
    command += ["--cpu-minutes", "0.1", "--eval-every", "3"]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    for algorithm in ("vpg-best", "ppo-default"):
        folder = tmp_path / "runs" / "Hopper-v5" / algorithm / "seed100"
        result = json.loads((folder / "result.json").read_text())
        checkpoints = [evaluation["checkpoint"] for evaluation in result["evaluations"]]
        assert checkpoints == [0, 1, 2]  # before training, after 3 CPU-seconds, at the budget's 6
        cpu = [evaluation["cpu_seconds"] for evaluation in result["evaluations"]]
        assert cpu[0] < 0.1 and 3 <= cpu[1] < 6 <= cpu[2]
        evaluations = np.load(folder / "evaluations.npz")
        assert evaluations["results"].shape == (3, 10) and list(evaluations["timesteps"]) == sorted(evaluations["timesteps"])
        assert (folder / "0.monitor.csv").is_file()
    assert "| Hopper-v5 | vpg-best | 1 |" in (tmp_path / "equal_compute.md").read_text()

    # A clone holds the archive only (runs/ is git-ignored): its runs count as done, and the archive keeps them.
    archive = (tmp_path / "runs.tar.xz").read_bytes()
    shutil.rmtree(tmp_path / "runs")
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    assert "2 of 2 runs done; 0 to run" in again.stdout and (tmp_path / "runs.tar.xz").read_bytes() == archive


def test_best_within_and_cpu_minutes_to_by_hand() -> None:
    """
    Checkpoints every 60 CPU-s: 0 (untrained, 900), 1 (mean of 100 and 300: 200), 2 (500), 3 (400). Within 120 CPU-s
    the best after training started is 500 (the untrained 900 does not count); 450 is first reached at checkpoint 2,
    2 CPU-minutes; 600 never.
    """
    from benchmarks.equal_compute import best_within, cpu_minutes_to, targets

    returns = [[900.0], [100.0, 300.0], [500.0], [400.0]]
    result = {
        "run": {"eval_every": 60.0},
        "evaluations": [{"checkpoint": checkpoint, "returns": values} for checkpoint, values in enumerate(returns)],
    }
    assert (best_within(result, 60.0), best_within(result, 120.0), best_within(result, 180.0)) == (200.0, 500.0, 500.0)
    assert cpu_minutes_to(result, 450.0) == 2.0 and cpu_minutes_to(result, 600.0) == float("inf")
    # Hopper: Spinning Up's ~800 is the best published REINFORCE/VPG number; rl-zoo3's A2C 733.454, PPO 2410.435.
    assert targets("Hopper-v5") == [800, 733.454, 2410.435]
    assert targets("InvertedDoublePendulum-v5") == [7726.2, None, None]
