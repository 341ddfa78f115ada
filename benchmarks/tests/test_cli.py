"""
``python -m benchmarks``: every subcommand's options, and ``trial`` and ``carry-over`` run for a few thousand steps on
real envs in a process of their own: they finish, and what they print is well formed and consistent.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import SUBCOMMANDS, main, parse_args

ROOT = Path(__file__).resolve().parents[2]


def run_command(*arguments: str) -> str:
    """
    Run ``python -m benchmarks`` from the repository root.

    :param arguments: The subcommand and its options
    :return: What it printed
    """
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return completed.stdout


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_has_its_help(subcommand: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m benchmarks {subcommand} [-h]")


def test_quick_defaults_and_the_command_line() -> None:
    """Options that depend on ``--quick`` take the value of the run asked for, unless given."""
    full = parse_args(["throughput"])
    assert (full.steps, full.repeats, full.envs[0], str(full.out)) == (30_000, 3, "CartPole-v1", "throughput-results")
    quick = parse_args(["throughput", "--quick", "--repeats", "2"])
    assert (quick.steps, quick.repeats, quick.envs, str(quick.out)) == (1_000, 2, ["CartPole-v1"], "throughput-quick")
    assert quick.command_line == "python -m benchmarks throughput --quick --repeats 2"
    with pytest.raises(SystemExit):
        parse_args(["no-such-subcommand"])


@pytest.mark.integration
def test_trial_prints_an_evaluation_every_eval_every_steps() -> None:
    hyperparams = '{"n_steps": 128, "reward_to_go": true, "baseline": "value", "n_value_steps": 5}'
    output = run_command(
        "trial", "CartPole-v1", "--timesteps", "3000", "--n-envs", "2", "--eval-every", "1000", "--hyperparams", hyperparams
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


@pytest.mark.integration
def test_carry_over_prints_a_share_of_learn() -> None:
    output = run_command("carry-over", "--envs", "CartPole-v1", "--n-envs", "1", "4", "--steps", "4096")
    rows = re.findall(r"^\| CartPole-v1 \| (\d+) \| (\d+) \| (\S+) \| (\S+) \| (\S+)% \|$", output, flags=re.MULTILINE)
    assert [(int(n_envs), int(n_steps)) for n_envs, n_steps, *_ in rows] == [(1, 2048), (4, 512)]
    for _, _, total, bookkeeping, share in rows:
        assert 0 < float(bookkeeping) < float(total)
        assert abs(float(share) - 100 * float(bookkeeping) / float(total)) < 0.1
