"""``python -m benchmarks throughput``, end to end on a tiny budget, and its interleaving and medians without processes."""

import math
import time
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmarks.cli import main, parse_args
from benchmarks.common import StepTimer
from benchmarks.tests.outputs import assert_numbers, read_csv
from benchmarks.throughput import RUN_COLUMNS, SUMMARY_COLUMNS, VARIANTS, jobs, summary_rows

#: One env, one number of envs, one repeat: the five variants, each in its fresh process
TINY = ["throughput", "--quick", "--n-envs", "4", "--n-steps", "64", "--steps", "512"]

#: ``throughput.csv``'s ratios and the columns they divide
RATIOS = {
    "vpg_vs_ceiling": ("vpg_fps", "ceiling_fps"),
    "vpg_vs_ceiling_outside_env": ("vpg_outside_env_ms_per_1k", "ceiling_outside_env_ms_per_1k"),
    "vpg_episodes_vs_ceiling": ("vpg_episodes_fps", "ceiling_fps"),
    "vpg_vs_a2c": ("vpg_fps", "a2c_fps"),
    "peak_rss_ratio": ("vpg_peak_rss_mb", "a2c_n_steps_peak_rss_mb"),
    "rss_above_setup_ratio": ("vpg_rss_above_setup_mb", "a2c_n_steps_rss_above_setup_mb"),
}


@pytest.mark.integration
def test_quick_throughput_writes_well_formed_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([*TINY, "--out", str(tmp_path)])
    assert "5 measurements, one at a time" in capsys.readouterr().out

    runs = read_csv(tmp_path / "throughput_runs.csv", RUN_COLUMNS)
    assert [row["variant"] for row in runs] == list(VARIANTS)
    assert_numbers(runs, tuple(column for column in RUN_COLUMNS[2:] if column != "device"))
    assert {row["device"] for row in runs} == {"cpu"}
    for row in runs:
        assert int(row["timesteps_done"]) >= 512 and float(row["fps"]) > 0
        assert float(row["peak_rss_mb"]) >= float(row["setup_rss_mb"]) > 0
        assert 0 < float(row["env_seconds"]) < float(row["seconds"]), row["variant"]

    (summary,) = read_csv(tmp_path / "throughput.csv", SUMMARY_COLUMNS)
    assert_numbers([summary], SUMMARY_COLUMNS[1:])
    assert (summary["env"], summary["n_envs"], summary["n_steps"], summary["repeats"]) == ("CartPole-v1", "4", "64", "1")
    for ratio, (numerator, denominator) in RATIOS.items():
        assert math.isclose(float(summary[ratio]), float(summary[numerator]) / float(summary[denominator]))
    fps = {row["variant"]: float(row["fps"]) for row in runs}  # one repeat: the medians are the measurements
    assert math.isclose(float(summary["vpg_fps"]), fps["vpg"]) and math.isclose(float(summary["a2c_fps"]), fps["a2c"])
    for row in runs[:2]:  # the ceiling and VPG: milliseconds per 1000 timesteps, in and outside env.step
        seconds, env_seconds, thousands = float(row["seconds"]), float(row["env_seconds"]), int(row["timesteps_done"]) / 1000
        variant = row["variant"]
        assert math.isclose(float(summary[f"{variant}_env_step_ms_per_1k"]), 1000 * env_seconds / thousands)
        assert math.isclose(float(summary[f"{variant}_outside_env_ms_per_1k"]), 1000 * (seconds - env_seconds) / thousands)

    markdown = (tmp_path / "throughput.md").read_text()
    assert "python -m benchmarks throughput --quick" in markdown
    (line,) = [line for line in markdown.splitlines() if line.startswith("| CartPole-v1 | 4 |")]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert len(cells) == 18
    shown = {"vpg_vs_ceiling": cells[4], "vpg_vs_ceiling_cpu": cells[5], "vpg_vs_ceiling_outside_env": cells[8]}
    shown |= {"vpg_vs_a2c": cells[12], "vpg_vs_a2c_cpu": cells[13]}
    for ratio, cell in {**shown, "peak_rss_ratio": cells[15]}.items():
        assert float(cell) == pytest.approx(float(summary[ratio]), abs=0.005)
    for cell, kind in zip(cells[6:8], ("env_step", "outside_env"), strict=True):
        vpg, ceiling = (float(value) for value in cell.split(" / "))
        assert vpg == pytest.approx(float(summary[f"vpg_{kind}_ms_per_1k"]), abs=0.05)
        assert ceiling == pytest.approx(float(summary[f"ceiling_{kind}_ms_per_1k"]), abs=0.05)
    assert float(cells[4]) == pytest.approx(float(cells[3]) / float(cells[2]), abs=0.01)


def result(
    variant: str,
    repeat: int,
    fps: float,
    peak: float,
    timesteps_done: int = 100,
    seconds: float = 1.0,
    env_seconds: float = 0.5,
) -> dict[str, object]:
    """A measurement as :func:`~benchmarks.throughput.measure` returns it, on CartPole-v1 with one env."""
    return {
        "variant": variant,
        "env_id": "CartPole-v1",
        "n_envs": 1,
        "timesteps": 100,
        "n_steps": 10,
        "repeat": repeat,
        "timesteps_done": timesteps_done,
        "seconds": seconds,
        "cpu_seconds": seconds,
        "env_seconds": env_seconds,
        "fps": fps,
        "cpu_fps": 2 * fps,
        "setup_rss_mb": 100.0,
        "peak_rss_mb": peak,
    }


def test_variants_take_turns_and_medians_make_the_ratios() -> None:
    order = [(job.repeat, job.variant) for job in jobs(parse_args(["throughput", "--envs", "CartPole-v1", "--n-envs", "1"]))]
    assert order == [(repeat, variant) for repeat in range(3) for variant in VARIANTS]

    # Per variant, three repeats with fps k, 10 k, 100 k: the median is 10 k, whatever the order.
    results = [
        result(variant, repeat, fps=scale * factor, peak=100.0 + scale * factor)
        for repeat, factor in enumerate((10, 1, 100))
        for variant, scale in zip(VARIANTS, (4, 2, 3, 1, 5), strict=True)
    ]
    (row,) = summary_rows(results)
    assert (row["ceiling_fps"], row["vpg_fps"], row["a2c_fps"], row["repeats"]) == (40, 20, 10, 3)
    assert (row["vpg_vs_ceiling"], row["vpg_vs_a2c"]) == (0.5, 2.0)
    assert (row["vpg_vs_ceiling_cpu"], row["vpg_vs_a2c_cpu"]) == (0.5, 2.0)  # from cpu_fps, 2 × fps here
    assert (row["vpg_peak_rss_mb"], row["a2c_n_steps_peak_rss_mb"], row["peak_rss_ratio"]) == (120, 150, 0.8)
    assert (row["vpg_rss_above_setup_mb"], row["rss_above_setup_ratio"]) == (20, 0.4)


def test_medians_of_the_time_in_and_outside_env_step() -> None:
    # (timesteps done, seconds, env_seconds) per repeat; in ms per 1000 timesteps, env.step | outside env.step:
    measured = {
        "ceiling": [
            (20_000, 3.4, 2.0),  # 2000 ms / 20 = 100 | 1400 ms / 20 = 70
            (20_000, 3.4, 2.4),  # 120 | 50
            (20_000, 2.2, 1.4),  # 70 | 40
        ],
        "vpg": [  # VPG trains whole rollouts, so it steps a little further: 20.48 thousand timesteps
            (20_480, 4.608, 3.072),  # 3072 ms / 20.48 = 150 | 1536 ms / 20.48 = 75
            (20_480, 4.5056, 3.2768),  # 160 | 60
            (20_480, 3.9936, 2.8672),  # 140 | 55
        ],
    }
    results = [result(variant, repeat, fps=1.0, peak=150.0) for variant in VARIANTS for repeat in range(3)]
    results = [run for run in results if run["variant"] not in measured] + [
        result(variant, repeat, fps=1.0, peak=150.0, timesteps_done=done, seconds=seconds, env_seconds=env_seconds)
        for variant, runs in measured.items()
        for repeat, (done, seconds, env_seconds) in enumerate(runs)
    ]
    (row,) = summary_rows(results)
    # The medians of each column on its own: env.step from the first repeat, outside env.step from the second
    assert row["ceiling_env_step_ms_per_1k"] == pytest.approx(100) and row["vpg_env_step_ms_per_1k"] == pytest.approx(150)
    assert row["ceiling_outside_env_ms_per_1k"] == pytest.approx(50) and row["vpg_outside_env_ms_per_1k"] == pytest.approx(60)
    assert row["vpg_vs_ceiling_outside_env"] == pytest.approx(60 / 50)


def test_step_timer_adds_up_the_time_in_step_and_changes_nothing() -> None:
    plain = make_vec_env("CartPole-v1", 2, seed=3, vec_env_cls=DummyVecEnv)
    timed = StepTimer(make_vec_env("CartPole-v1", 2, seed=3, vec_env_cls=DummyVecEnv))
    assert np.array_equal(timed.reset(), plain.reset()) and timed.env_seconds == 0
    assert timed.env_is_wrapped(Monitor) == [True, True] and timed.get_attr("spec") == plain.get_attr("spec")

    episodes_ended = 0
    start = time.perf_counter()
    for actions in np.random.default_rng(0).integers(2, size=(300, 2)):
        obs, rewards, dones, _ = timed.step(actions)
        expected_obs, expected_rewards, expected_dones, _ = plain.step(actions)
        assert np.array_equal(obs, expected_obs) and np.array_equal(rewards, expected_rewards)
        assert np.array_equal(dones, expected_dones)
        episodes_ended += int(dones.sum())
    elapsed = time.perf_counter() - start
    assert episodes_ended > 10  # random actions: the auto-resets at episode ends are stepped and timed too
    assert 0 < timed.env_seconds < elapsed

    # A method of the Monitor inside each env, reached through the wrapper
    assert timed.env_method("get_episode_rewards") == plain.env_method("get_episode_rewards")
    timed.seed(7)
    plain.seed(7)
    assert np.array_equal(timed.reset(), plain.reset())
