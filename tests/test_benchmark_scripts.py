"""The scripts of ``benchmarks/`` added for issue 5, run for a few thousand steps on real envs: they finish, and what
they print is well formed and consistent."""

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name: str, *arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *arguments], capture_output=True, text=True, timeout=300, check=True
    )
    return completed.stdout


def test_trial_prints_an_evaluation_every_eval_every_steps():
    hyperparams = '{"n_steps": 128, "reward_to_go": true, "baseline": "value", "n_value_steps": 5}'
    output = run_script(
        "trial.py", "CartPole-v1", "--timesteps", "3000", "--n-envs", "2", "--eval-every", "1000", "--hyperparams", hyperparams
    )
    lines = re.findall(r"^\s*(\d+)\s+eval\s+(\S+)\s+train\s+(\S+)\s+length\s+(\S+)$", output, flags=re.MULTILINE)
    assert [int(timesteps) // 1000 for timesteps, *_ in lines] == [1, 2, 3]
    for _, evaluation, train_return, length in lines:
        # CartPole's returns are the episode lengths, between 1 and 500 (the mean length is printed rounded).
        assert 1 <= float(evaluation) <= 500
        assert abs(float(train_return) - float(length)) <= 0.5
    final = re.search(r"final eval (\S+), mean of the last 3 evaluations (\S+)$", output, flags=re.MULTILINE)
    assert final is not None
    assert float(final.group(1)) == float(lines[-1][1])
    assert abs(float(final.group(2)) - sum(float(evaluation) for _, evaluation, *_ in lines) / 3) < 0.06


def test_carry_over_cost_prints_a_share_of_learn():
    output = run_script("carry_over_cost.py", "--envs", "CartPole-v1", "--n-envs", "1", "4", "--steps", "4096")
    rows = re.findall(r"^\| CartPole-v1 \| (\d+) \| (\d+) \| (\S+) \| (\S+) \| (\S+)% \|$", output, flags=re.MULTILINE)
    assert [(int(n_envs), int(n_steps)) for n_envs, n_steps, *_ in rows] == [(1, 2048), (4, 512)]
    for _, _, total, bookkeeping, share in rows:
        assert 0 < float(bookkeeping) < float(total)
        assert abs(float(share) - 100 * float(bookkeeping) / float(total)) < 0.1
