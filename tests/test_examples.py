"""The examples run as users run them, on a tiny budget."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_cartpole_tensorboard_example(tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "cartpole_tensorboard.py"), "--timesteps", "500"]
    command += ["--logdir", str(tmp_path / "runs"), "--save", str(tmp_path / "model")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "Evaluation over 10 episodes:" in result.stdout
    assert (tmp_path / "model.zip").is_file()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["VPG_1"]
    assert any((tmp_path / "runs" / "VPG_1").glob("events.out.tfevents.*"))
