"""
``python -m benchmarks``: every subcommand's options, and ``trial`` and ``update-cost`` run for a few thousand steps on
real envs in a process of their own: they finish, and what they print is well formed and consistent.
"""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import SUBCOMMANDS, main, parse_args
from benchmarks.tests.outputs import read_csv

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
    # A schedule string, as in rl-zoo3's files: VPG itself would refuse the string
    hyperparams = (
        '{"n_steps": 128, "learning_rate": "lin_1e-3", "reward_to_go": true, "baseline": "value", "n_value_steps": 5}'
    )
    output = run_command(
        "trial", "CartPole-v1", "--timesteps", "3000", "--n-envs", "2", "--eval-every", "1000", "--hyperparams", hyperparams
    )
    lines = re.findall(
        r"^\s*(\d+)\s+eval\s+(\S+)\s+train\s+(\S+)\s+length\s+(\S+)\s+entropy\s+(\S+)$", output, flags=re.MULTILINE
    )
    assert [int(timesteps) // 1000 for timesteps, *_ in lines] == [1, 2, 3]
    for _, evaluation, train_return, length, entropy in lines:
        # CartPole's returns are the episode lengths, between 1 and 500 (the mean length is printed rounded).
        assert 1 <= float(evaluation) <= 500
        assert abs(float(train_return) - float(length)) <= 0.5
        # The entropy of a distribution over CartPole's 2 actions is in [0, ln 2] (printed to 3 decimals).
        assert 0 < float(entropy) <= round(math.log(2), 3)
    final = re.search(r"final eval (\S+), mean of the last 3 evaluations (\S+)$", output, flags=re.MULTILINE)
    assert final is not None
    assert float(final.group(1)) == float(lines[-1][1])
    assert abs(float(final.group(2)) - sum(float(evaluation) for _, evaluation, *_ in lines) / 3) < 0.06


@pytest.mark.integration
def test_update_cost_times_the_updates_and_measures_their_memory(tmp_path) -> None:
    output = run_command(
        "update-cost",
        *("--n-envs", "4", "--long-episode", "400", "--short-episode", "10"),
        *("--batch-steps", "1024", "--whole-up-to", "1024", "--out", str(tmp_path)),
    )
    row = r"^\| (first|last) tenth \| (\d+)–(\d+) \| (\d+) \| (\d+) \| (\S+) \| \S+ \| (\S+) \|$"
    ages = re.findall(row, output, flags=re.MULTILINE)
    assert [(name, int(first), int(last)) for name, first, last, *_ in ages] == [("first", 10, 40), ("last", 370, 399)]
    for *_, updates, batch, train_cpu_ms, buffer_kib in ages:
        assert int(updates) == 4 and int(batch) == 30 and float(train_cpu_ms) > 0 and float(buffer_kib) > 0
    memory = re.findall(r"^\| 1024 \| (in chunks \(default\)|one pass) \| (\d+) \| (\d+) \|", output, flags=re.MULTILINE)
    assert [(way, int(chunk)) for way, chunk, _ in memory] == [("in chunks (default)", 297), ("one pass", 1024)]
    assert all(int(peak) > 0 for *_, peak in memory)
    columns = ("long_episode_age", "batch_steps", "train_ms", "train_cpu_ms", "buffer_kib")
    times = read_csv(tmp_path / "update_times.csv", columns)
    assert len(times) == 40  # every 10 steps, and at the budget, 399
    assert (tmp_path / "update-time.md").is_file() and (tmp_path / "update-memory.md").is_file()


def test_suite_seeds_from_first_seed(capsys: pytest.CaptureFixture[str]) -> None:
    """``--first-seed 100 --seeds 2`` runs seeds 100 and 101; a negative first seed or no seed is refused, named."""
    from benchmarks.suite import env_settings, run_specs

    args = parse_args(["suite", "--envs", "CartPole-v1", "--algorithms", "vpg-plain", "--first-seed", "100", "--seeds", "2"])
    specs = run_specs(args.algorithms, env_settings(args), args.seeds, args.eval_episodes, args.device, args.first_seed)
    assert [spec.seed for spec in specs] == [100, 101]
    for option, value, message in (
        ("--first-seed", "-1", "must be an integer >= 0, not -1"),
        ("--seeds", "0", "must be an integer >= 1, not 0"),
    ):
        with pytest.raises(SystemExit):
            parse_args(["suite", option, value])
        assert f"argument {option}: {message}" in capsys.readouterr().err
