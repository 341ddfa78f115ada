"""The examples run as users run them, on a tiny budget."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_cartpole_tensorboard_example(tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "cartpole_tensorboard.py"), "--timesteps", "500"]
    command += ["--logdir", str(tmp_path / "runs"), "--save", str(tmp_path / "model")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "Evaluation over 10 episodes:" in result.stdout
    assert (tmp_path / "model.zip").is_file()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["VPG_1"]
    assert any((tmp_path / "runs" / "VPG_1").glob("events.out.tfevents.*"))


@pytest.mark.skipif(
    importlib.util.find_spec("imitation") is None, reason="needs imitation: pip install --no-deps imitation==1.0.1"
)
def test_gail_with_vpg_example() -> None:
    """imitation's GAIL builds and trains with VPG at its defaults: n_steps = ⌈8 episodes / 2 envs⌉ × 500 steps."""
    command = [sys.executable, str(EXAMPLES / "gail_with_vpg.py"), "--expert-timesteps", "500", "--demo-timesteps", "300"]
    command += ["--rounds", "1", "--n-envs", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    assert "VPG's n_steps: 2000; generator steps per GAIL round: 4000" in result.stdout
    learner = re.search(r"^learner: \S+ ± \S+ over 10 episodes, (\d+) timesteps trained$", result.stdout, flags=re.MULTILINE)
    assert learner is not None and int(learner.group(1)) == 4000


def test_distributed_example_runs_and_resumes_in_one_process(tmp_path: Path) -> None:
    """
    ``examples/distributed_training.py`` runs as it is in one process, checkpointing; run again with a larger budget,
    it resumes from its latest checkpoint (the zip and the VecNormalize statistics) and learns on to the new budget.
    """
    command = [sys.executable, str(EXAMPLES / "distributed_training.py"), "--folder", str(tmp_path / "checkpoints")]
    command += ["--save-freq", "200", "--logdir", str(tmp_path / "runs")]
    first = subprocess.run([*command, "--timesteps", "600"], capture_output=True, text=True, timeout=120, check=True)
    assert "on 1 rank(s)" in first.stdout and (tmp_path / "checkpoints" / "vpg_final.zip").is_file()
    second = subprocess.run([*command, "--timesteps", "1000"], capture_output=True, text=True, timeout=120, check=True)
    resumed = re.search(r"^rank 0: resuming from vpg_(\d+)_steps\.zip \(update (\d+)\)$", second.stdout, flags=re.MULTILINE)
    assert resumed is not None and int(resumed.group(1)) >= 400
    timesteps = int(re.search(r"^(\d+) timesteps, \d+ updates on 1 rank\(s\)$", second.stdout, flags=re.MULTILINE).group(1))
    assert timesteps >= 1000
