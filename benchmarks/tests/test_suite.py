"""
``python -m benchmarks suite``: end to end on a tiny budget (real rl-zoo3 hyperparameters, real training, real
files), the report's numbers on hand-made results, and the archive of the per-run results.
"""

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor

from benchmarks.cli import main
from benchmarks.common import HOLD_WINDOW, DeterministicEvaluation, machine_description, package_versions
from benchmarks.published import published_table
from benchmarks.report import (
    CURVE_COLUMNS,
    RUN_COLUMNS,
    SUMMARY_COLUMNS,
    holds_threshold,
    markdown_table,
    steps_to_threshold,
    summary_rows,
    write_report,
)
from benchmarks.runs import ALGORITHMS, RUNS_ARCHIVE, RUNS_FOLDER, ZOO_FOLDER, RunSpec, load_results, pack_runs, result_path
from benchmarks.suite import SUITE_ALGORITHMS, provenance
from benchmarks.tests.outputs import assert_numbers, read_csv
from sb3_vpg import VPG

#: One env, one seed, 600 steps: every algorithm and every output, in well under a minute
TINY = ["suite", "--quick", "--envs", "CartPole-v1", "--seeds", "1", "--budget", "600", "--eval-every", "300"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


#: The files of the report, in the output folder
REPORT_FILES = ("runs.csv", "curves.csv", "summary.csv", "results.md", "learning_curves_CartPole-v1.png")


@pytest.mark.integration
def test_tiny_benchmark_writes_well_formed_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([*TINY, "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "5 runs, 0 with a stored result, 5 to run" in printed
    assert printed.count("[") >= 5  # one progress line per run

    for path in (tmp_path / "runs").rglob("*.json"):
        result = json.loads(path.read_text())
        if ALGORITHMS[result["spec"]["algorithm"]].learns:  # the training episodes beside each evaluation
            assert [point[0] for point in result["training_curve"]] == [point[0] for point in result["curve"]]
            assert result["training_curve"][0] == [0, None, None] and None not in result["training_curve"][-1]

    runs = read_csv(tmp_path / "runs.csv", RUN_COLUMNS)
    assert sorted(row["algorithm"] for row in runs) == sorted(SUITE_ALGORITHMS)
    assert_numbers(runs, RUN_COLUMNS[2:], optional=("final_return", "steps_to_threshold"))
    for row in runs:
        assert int(row["timesteps"]) >= 600
        assert float(row["fps"]) > 0 and float(row["peak_rss_mb"]) >= float(row["start_rss_mb"]) > 0
        assert (row["final_return"] == "") == (row["algorithm"] == "rollout-ceiling")

    curves = read_csv(tmp_path / "curves.csv", CURVE_COLUMNS)
    assert_numbers(curves, CURVE_COLUMNS[2:])
    for algorithm in SUITE_ALGORITHMS:
        timesteps = [int(row["timesteps"]) for row in curves if row["algorithm"] == algorithm]
        if ALGORITHMS[algorithm].learns:
            assert timesteps[0] == 0 and timesteps[-1] >= 600 and timesteps == sorted(timesteps) and len(timesteps) >= 3
        else:
            assert timesteps == []

    summary = read_csv(tmp_path / "summary.csv", SUMMARY_COLUMNS)
    assert [row["algorithm"] for row in summary] == list(SUITE_ALGORITHMS)
    assert_numbers(summary, ("budget", "threshold", "seeds", "fps_median", "fps_vs_ceiling", "peak_rss_mb_median"))
    for row in summary:
        if row["algorithm"] == "rollout-ceiling":
            assert row["seeds_holding_threshold"] == ""
        else:
            assert 0 <= int(row["seeds_holding_threshold"]) <= int(row["seeds_final_above_threshold"]) <= int(row["seeds"])

    png = (tmp_path / "learning_curves_CartPole-v1.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000

    markdown = (tmp_path / "results.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| CartPole-v1")]
    assert len(table) == len(SUITE_ALGORITHMS) and all(line.count("|") == 11 for line in table)
    assert "| Seeds with final ≥ threshold | Seeds holding ≥ threshold (last 30k steps) |" in markdown
    ceiling = next(line for line in table if "| rollout-ceiling |" in line)
    assert ceiling.split("|")[4:6] == [" — ", " — "]
    assert "python -m benchmarks suite --quick" in markdown and "![CartPole-v1](learning_curves_CartPole-v1.png)" in markdown
    assert f"- Runs made on: 5 on {machine_description()} ({package_versions()})\n" in markdown

    # The runs in rl-zoo3's formats and layout: rl-zoo3's own all_plots reads them, each run's last evaluation the same.
    zoo = tmp_path / RUNS_FOLDER / ZOO_FOLDER
    learners = [algorithm for algorithm in SUITE_ALGORITHMS if ALGORITHMS[algorithm].learns]
    command = [sys.executable, "-m", "rl_zoo3.cli", "all_plots", "-a", *learners, "-e", "CartPole-v1"]
    command += ["-f", str(zoo), "-l", "suite", "-o", str(tmp_path / "zoo"), "--no-display"]
    subprocess.run(command, env={**os.environ, "MPLBACKEND": "Agg"}, capture_output=True, timeout=120, check=True)
    with (tmp_path / "zoo.pkl").open("rb") as file:
        plotted = pickle.load(file)["CartPole-v1"]
    for algorithm in learners:
        result = json.loads((tmp_path / RUNS_FOLDER / "CartPole-v1" / algorithm / "seed0.json").read_text())
        evaluations = np.load(zoo / algorithm / "CartPole-v1_0" / "evaluations.npz")
        assert evaluations["results"].shape == (len(result["curve"]), 2)  # --quick: 2 episodes per evaluation
        assert [int(t) for t in evaluations["timesteps"]] == [point[0] for point in result["curve"]]
        assert float(plotted[f"{algorithm.upper()}-suite"]["last_evals"]) == result["curve"][-1][1]
        assert list((zoo / algorithm / "CartPole-v1_0").glob("*.monitor.csv"))
    (tmp_path / "zoo.pkl").unlink()

    # Run again: every result is up to date, nothing runs, the stored results are kept.
    stored = {path: path.read_text() for path in (tmp_path / "runs").rglob("*.json")}
    assert len(stored) == len(SUITE_ALGORITHMS)
    main([*TINY, "--out", str(tmp_path)])
    assert "5 runs, 5 with a stored result, 0 to run" in capsys.readouterr().out
    assert {path: path.read_text() for path in stored} == stored
    assert all(json.loads(text)["spec"]["budget"] == 600 for text in stored.values())

    # Every result and log is in the archive; without the runs/ folder, --report-only rebuilds the same report from it.
    with tarfile.open(tmp_path / RUNS_ARCHIVE) as archive:
        archived = {name: archive.extractfile(name).read() for name in archive.getnames()}  # type: ignore[union-attr]
    folder = (tmp_path / RUNS_FOLDER).rglob("*")
    in_folder = {path.relative_to(tmp_path).as_posix(): path.read_bytes() for path in folder if path.is_file()}
    assert archived == in_folder and sum(name.endswith(".json") for name in archived) == len(SUITE_ALGORITHMS)
    before = {name: (tmp_path / name).read_bytes() for name in REPORT_FILES}
    shutil.rmtree(tmp_path / RUNS_FOLDER)
    main([*TINY, "--out", str(tmp_path), "--report-only"])
    assert "5 runs, 5 with a stored result, 0 to run" in capsys.readouterr().out
    after = {name: (tmp_path / name).read_bytes() for name in REPORT_FILES}
    assert after.pop("results.md").split(b"- Machine:")[1] == before.pop("results.md").split(b"- Machine:")[1]
    assert after == before
    # A run unpacks the archive: the stored results are up to date, nothing runs.
    main([*TINY, "--out", str(tmp_path)])
    assert "5 runs, 5 with a stored result, 0 to run" in capsys.readouterr().out
    assert {path: path.read_text() for path in stored} == stored


def test_training_curve_is_the_monitors_last_100_episodes() -> None:
    # One env, so that an episode's last timestep is the sum of the lengths the Monitor recorded up to it.
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    evaluation = DeterministicEvaluation(make_vec_env("CartPole-v1", n_envs=1, seed=1), eval_every=1_000, n_eval_episodes=2)
    VPG("MlpPolicy", env, n_episodes=2, seed=0).learn(4_000, callback=evaluation)
    monitor = env.envs[0]
    assert isinstance(monitor, Monitor)
    returns, lengths = monitor.get_episode_rewards(), monitor.get_episode_lengths()
    ends = np.cumsum(lengths)
    assert len(returns) > 100  # the window of 100 episodes slides
    assert len(evaluation.training_curve) == len(evaluation.curve) >= 5
    for timesteps, mean_return, mean_length in evaluation.training_curve:
        ended = np.flatnonzero(ends <= timesteps)[-100:]
        if len(ended) == 0:
            assert mean_return is None and mean_length is None
        else:
            assert mean_return == pytest.approx(np.mean(np.asarray(returns)[ended]))
            assert mean_length == pytest.approx(np.mean(np.asarray(lengths)[ended]))


def test_steps_to_threshold_and_median() -> None:
    """The evaluation before training does not count; seeds that never reach the threshold count as never."""
    spec = {"env_id": "CartPole-v1", "budget": 300, "algorithm": "vpg-best"}
    reached = {"spec": spec, "curve": [[0, 500.0, 0.0], [100, 200.0, 0.0], [200, 480.0, 0.0], [300, 490.0, 0.0]]}
    never = {"spec": spec, "curve": [[0, 500.0, 0.0], [100, 20.0, 0.0], [200, 30.0, 0.0], [300, 40.0, 0.0]]}
    for result in (reached, never):
        result.update(fps=1.0, peak_rss_mb=1.0)
    assert steps_to_threshold(reached, 475) == 200
    assert steps_to_threshold(never, 475) == math.inf
    assert summary_rows([reached, never, reached], ["vpg-best"])[0]["median_steps_to_threshold"] == 200
    row = summary_rows([reached, never, never], ["vpg-best"])[0]
    assert row["median_steps_to_threshold"] is None and row["seeds_final_above_threshold"] == 1


def curve_result(*curve: tuple[float, float]) -> dict[str, Any]:
    """A CartPole-v1 result with the evaluations ``(timesteps, mean return)``."""
    spec = {"env_id": "CartPole-v1", "budget": 300_000, "algorithm": "vpg-plain"}
    return {"spec": spec, "curve": [[timesteps, mean, 0.0] for timesteps, mean in curve], "fps": 1.0, "peak_rss_mb": 1.0}


def test_holds_threshold() -> None:
    """Every evaluation of the last 30k steps at or above the threshold; the one before training never counts."""
    assert HOLD_WINDOW == 30_000
    early = [(0, 20.0), (100_000, 500.0), (200_000, 500.0)]
    # Touches 500 at the end, but dipped below 475 inside the window: does not hold.
    collapsed = curve_result(*early, (270_000, 500.0), (280_000, 500.0), (290_000, 425.0), (300_000, 500.0))
    assert holds_threshold(collapsed, 475) is False
    # Dipped before the window (at 260k < 300k - 30k), at or above 475 at every evaluation inside it: holds.
    recovered = curve_result(*early, (260_000, 100.0), (270_000, 475.0), (280_000, 480.0), (290_000, 500.0), (300_000, 490.0))
    assert holds_threshold(recovered, 475) is True
    # The boundary is inclusive: an evaluation exactly 30k before the final one counts ...
    assert holds_threshold(curve_result(*early, (270_000, 474.9), (280_000, 500.0), (300_000, 500.0)), 475) is False
    # ... and one just before it does not.
    assert holds_threshold(curve_result(*early, (269_999, 474.9), (280_000, 500.0), (300_000, 500.0)), 475) is True
    # The evaluation before training is never in the window, even in a run shorter than it.
    short = curve_result((0, 20.0), (10_000, 480.0), (20_000, 500.0))
    assert holds_threshold(short, 475) is True
    assert holds_threshold(curve_result((0, 500.0), (10_000, 20.0), (20_000, 500.0)), 475) is False
    assert holds_threshold(curve_result((0, 500.0)), 475) is False
    # No threshold (Pendulum), or no evaluations (the rollout ceiling): no answer.
    assert holds_threshold(recovered, None) is None
    assert holds_threshold(curve_result(), 475) is None


def test_seeds_holding_threshold_in_summary_and_table() -> None:
    """The summary counts the seeds that hold; the table shows k/n, and "—" without a threshold or for the ceiling."""
    holding = curve_result((0, 20.0), (270_000, 480.0), (280_000, 500.0), (290_000, 490.0), (300_000, 500.0))
    collapsed = curve_result((0, 20.0), (270_000, 500.0), (280_000, 500.0), (290_000, 425.0), (300_000, 500.0))
    row = summary_rows([holding, collapsed, holding], ["vpg-plain"])[0]
    assert row["seeds_final_above_threshold"] == 3 and row["seeds_holding_threshold"] == 2
    pendulum = {**holding, "spec": {**holding["spec"], "env_id": "Pendulum-v1"}}
    ceiling = {**holding, "spec": {**holding["spec"], "algorithm": "rollout-ceiling", "budget": 20_000}, "curve": []}
    rows = summary_rows([holding, collapsed, holding, ceiling, pendulum], ["vpg-plain", "rollout-ceiling"])
    assert [row["seeds_holding_threshold"] for row in rows] == [2, None, None]
    cells = [line.split(" | ")[5] for line in markdown_table(rows).splitlines()[2:]]
    assert cells == ["2/3", "—", "—"]


def test_provenance_counts_the_runs_of_each_machine() -> None:
    """A suite split across machines says how many runs each made, with what; results that predate it, how many."""
    here = {"machine": "AMD EPYC, 2 logical CPUs, Linux", "versions": "Python 3.11.7, torch 2.13.0+cpu"}
    there = {"machine": "Intel Xeon, 16 logical CPUs, Linux", "versions": "Python 3.12.3, torch 2.11.0+cu130"}
    line = provenance([here, there, here, {}, there, here])
    assert line == (
        "Runs made on: 3 on AMD EPYC, 2 logical CPUs, Linux (Python 3.11.7, torch 2.13.0+cpu); "
        "2 on Intel Xeon, 16 logical CPUs, Linux (Python 3.12.3, torch 2.11.0+cu130); "
        "1 on a machine not recorded (older runs)"
    )


def test_report_from_the_archive_equals_the_report_from_the_folder(tmp_path: Path) -> None:
    """Results packed into runs.tar.xz and read back from it give the same report, byte for byte, as the folder."""
    specs = [
        RunSpec(algorithm, "CartPole-v1", seed, 300_000, 10_000, 10, "cpu", {"learning_rate": 5e-4})
        for algorithm in ("vpg-plain", "a2c")
        for seed in range(3)
    ]
    for spec in specs[:-1]:  # the last run has no result
        returns = (20.0 + 100 * spec.seed, 300.0 + spec.seed, 480.0 + 5 * spec.seed)
        result = curve_result(*zip((0, 150_000, 300_000), returns, strict=True))
        result.update(spec=asdict(spec), timesteps=300_000, train_seconds=10.0, eval_seconds=1.0, start_rss_mb=0.5)
        path = result_path(tmp_path, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
        path.with_suffix(".log").write_text(f"log of {spec.name}\n")
    from_folder = load_results(tmp_path, specs)
    assert [(result["spec"]["algorithm"], result["spec"]["seed"]) for result in from_folder] == [
        ("vpg-plain", 0),
        ("vpg-plain", 1),
        ("vpg-plain", 2),
        ("a2c", 0),
        ("a2c", 1),
    ]

    packed = pack_runs(tmp_path).read_bytes()
    assert pack_runs(tmp_path).read_bytes() == packed  # the same results, the same bytes
    shutil.rmtree(tmp_path / RUNS_FOLDER)
    from_archive = load_results(tmp_path, specs)
    assert from_archive == from_folder

    for name, results in (("folder", from_folder), ("archive", from_archive)):
        (tmp_path / name).mkdir()
        write_report(tmp_path / name, results, ["vpg-plain", "a2c"], "# header\n")
    for file in REPORT_FILES:
        assert (tmp_path / "archive" / file).read_bytes() == (tmp_path / "folder" / file).read_bytes(), file


def test_published_table_by_hand() -> None:
    """The published metric leaves out the untrained policy; steps to each published number are medians over seeds."""

    def swimmer(seed: int, curve: list[tuple[int, float]], fps: float) -> dict[str, Any]:
        spec = {"env_id": "Swimmer-v5", "budget": 100_000, "algorithm": "vpg-best", "seed": seed}
        points = [[timesteps, mean, 0.0] for timesteps, mean in curve]
        return {
            "spec": spec,
            "curve": points,
            "fps": fps,
            "peak_rss_mb": 400.0 + 2 * seed,
            "train_seconds": 3000.0,
            "eval_seconds": 600.0,
        }

    seed0 = swimmer(0, [(0, 60.0), (50_000, 30.0), (100_000, 52.0)], fps=1000.0)
    seed1 = swimmer(1, [(0, 0.0), (50_000, 36.0), (100_000, 20.0)], fps=3000.0)
    lines = published_table([seed0, seed1], ["vpg-best", "a2c"]).splitlines()
    assert lines[2:] == [
        "| **Swimmer-v5** (0.1M steps) |  |  |  |  |  |",
        "| Tianshou REINFORCE, 3M steps (-v3) | 35.3 ± 1.4 |  |  |  |  |",
        "| Spinning Up VPG (PyTorch), 3M steps (-v3) | ~51 |  |  |  |  |",
        "| Tianshou REINFORCE, 10M steps (-v3) | 35.6 ± 2.6 |  |  |  |  |",
        # best 52 and 36 (not 60, the untrained policy's): a resample of two seeds has the mean 36, 44 or 52, so the
        # 95% percentile interval is [36, 52]; the IQM of two values trims nothing. Final 52 and 20: 36 [20, 52].
        # 35.3 first reached at 100k and 50k, 51 by one seed only; medians 2,000 fps and 401 MiB; 2 × 3,600 s of
        # training and evaluation.
        "| vpg-best (2 seeds) | 44.0 [36.0, 52.0] (2 runs) | 44.0 [36.0, 52.0] (2 runs) | 36.0 [20.0, 52.0] (2 runs)"
        " | 75k; not reached; 75k"
        " | 2000 fps, 401 MiB, 2.0 CPU-h |",
    ]
    assert published_table([seed1], ["vpg-best"]).splitlines()[-1].startswith("| vpg-best (1 seed) | 36.0 (1 run) |")
