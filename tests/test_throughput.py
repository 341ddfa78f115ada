"""The throughput command, end to end on a tiny budget, and its interleaving and medians without processes."""

import math
from pathlib import Path

import pytest

from sb3_vpg.benchmark.throughput import RUN_COLUMNS, SUMMARY_COLUMNS, VARIANTS, jobs, main, parse_args, summary_rows
from tests.test_benchmark import assert_numbers, read_csv

#: One env, one number of envs, one repeat: the five variants, each in its fresh process
TINY = ["--quick", "--n-envs", "4", "--n-steps", "64", "--steps", "512"]

#: ``throughput.csv``'s ratios and the columns they divide
RATIOS = {
    "vpg_vs_ceiling": ("vpg_fps", "ceiling_fps"),
    "vpg_episodes_vs_ceiling": ("vpg_episodes_fps", "ceiling_fps"),
    "vpg_vs_a2c": ("vpg_fps", "a2c_fps"),
    "peak_rss_ratio": ("vpg_peak_rss_mb", "a2c_n_steps_peak_rss_mb"),
    "rss_above_setup_ratio": ("vpg_rss_above_setup_mb", "a2c_n_steps_rss_above_setup_mb"),
}


def test_quick_throughput_writes_well_formed_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([*TINY, "--out", str(tmp_path)])
    assert "5 measurements, one at a time" in capsys.readouterr().out

    runs = read_csv(tmp_path / "throughput_runs.csv", RUN_COLUMNS)
    assert [row["variant"] for row in runs] == list(VARIANTS)
    assert_numbers(runs, RUN_COLUMNS[2:])
    for row in runs:
        assert int(row["timesteps_done"]) >= 512 and float(row["fps"]) > 0
        assert float(row["peak_rss_mb"]) >= float(row["setup_rss_mb"]) > 0

    (summary,) = read_csv(tmp_path / "throughput.csv", SUMMARY_COLUMNS)
    assert_numbers([summary], SUMMARY_COLUMNS[1:])
    assert (summary["env"], summary["n_envs"], summary["n_steps"], summary["repeats"]) == ("CartPole-v1", "4", "64", "1")
    for ratio, (numerator, denominator) in RATIOS.items():
        assert math.isclose(float(summary[ratio]), float(summary[numerator]) / float(summary[denominator]))
    fps = {row["variant"]: float(row["fps"]) for row in runs}  # one repeat: the medians are the measurements
    assert math.isclose(float(summary["vpg_fps"]), fps["vpg"]) and math.isclose(float(summary["a2c_fps"]), fps["a2c"])

    markdown = (tmp_path / "throughput.md").read_text()
    assert "python -m sb3_vpg.benchmark.throughput --quick" in markdown
    (line,) = [line for line in markdown.splitlines() if line.startswith("| CartPole-v1 | 4 |")]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert len(cells) == 13
    shown = {"vpg_vs_ceiling": cells[4], "vpg_vs_a2c": cells[8], "peak_rss_ratio": cells[10]}
    for ratio, cell in shown.items():
        assert float(cell) == pytest.approx(float(summary[ratio]), abs=0.005)
    assert float(cells[4]) == pytest.approx(float(cells[3]) / float(cells[2]), abs=0.01)


def result(variant: str, repeat: int, fps: float, peak: float) -> dict[str, object]:
    """A measurement as :func:`~sb3_vpg.benchmark.throughput.measure` returns it, on CartPole-v1 with one env."""
    return {
        "variant": variant,
        "env_id": "CartPole-v1",
        "n_envs": 1,
        "timesteps": 100,
        "n_steps": 10,
        "repeat": repeat,
        "fps": fps,
        "setup_rss_mb": 100.0,
        "peak_rss_mb": peak,
    }


def test_variants_take_turns_and_medians_make_the_ratios() -> None:
    order = [(job.repeat, job.variant) for job in jobs(parse_args(["--envs", "CartPole-v1", "--n-envs", "1"]))]
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
    assert (row["vpg_peak_rss_mb"], row["a2c_n_steps_peak_rss_mb"], row["peak_rss_ratio"]) == (120, 150, 0.8)
    assert (row["vpg_rss_above_setup_mb"], row["rss_above_setup_ratio"]) == (20, 0.4)
