"""The reports' statistics (rliable's, :mod:`benchmarks.statistics`) and the aggregate over envs, against numbers by hand."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rl_zoo3.plots.score_normalization import ReferenceScore

from benchmarks.aggregate import score_matrices, write_aggregate
from benchmarks.statistics import (
    Estimate,
    iqm_curve,
    normalised,
    per_env_estimates,
    performance_profiles,
    probability_of_improvement,
    random_policy_return,
)


def test_iqm_and_mean_by_hand() -> None:
    """The IQM of 5 runs drops the lowest and the highest (25% of 5, rounded down, each side): mean(2, 3, 4) = 3."""
    iqm, mean = per_env_estimates({"a": [4.0, 1.0, 100.0, 3.0, 2.0]})["a"]
    assert (iqm.value, mean.value) == (3.0, 22.0)
    assert iqm.runs == mean.runs == 5
    assert iqm.low <= iqm.value <= iqm.high and mean.low <= mean.value <= mean.high
    assert 1.0 <= mean.low < mean.high <= 100.0


def test_interval_of_two_runs_is_their_range() -> None:
    """
    A resample of the runs 0 and 1 has the mean 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: its 2.5th and 97.5th
    percentiles are 0 and 1. Runs that all score alike have an interval of zero width.
    """
    estimates = per_env_estimates({"two": [0.0, 1.0], "alike": [7.0, 7.0, 7.0]})
    _, mean = estimates["two"]
    assert (mean.value, mean.low, mean.high) == (0.5, 0.0, 1.0)
    assert all((e.value, e.low, e.high) == (7.0, 7.0, 7.0) for e in estimates["alike"])


def test_probability_of_improvement_by_enumeration() -> None:
    """
    Env 0: X's 3 and 4 beat each of Y's 1, 2, 0 (6 of 6 pairs). Env 1: X's 1 and 2 beat only Y's 0 (2 of 6).
    The average over envs: (1 + 1/3) / 2 = 2/3. With a tie: X's 1, 2 against Y's 2, 3 win no pair and tie one of 4.
    """
    x = np.array([[3.0, 1.0], [4.0, 2.0]])
    y = np.array([[1.0, 5.0], [2.0, 6.0], [0.0, 0.0]])
    estimate = probability_of_improvement(x, y)
    assert estimate.value == pytest.approx(2 / 3, rel=1e-12)
    assert estimate.low <= estimate.value <= estimate.high and estimate.runs == 2
    tie = probability_of_improvement(np.array([[1.0], [2.0]]), np.array([[2.0], [3.0]]))
    assert tie.value == pytest.approx(0.5 / 4, rel=1e-12)


def test_performance_profile_by_hand() -> None:
    """X's runs score 3, 1, 4, 2 over two envs: above τ = 0, 2, 4 are 4, 2 and 0 of the 4."""
    profiles, intervals = performance_profiles({"x": np.array([[3.0, 1.0], [4.0, 2.0]])}, np.array([0.0, 2.0, 4.0]))
    np.testing.assert_array_equal(profiles["x"], [1.0, 0.5, 0.0])
    assert intervals["x"].shape == (2, 3)
    assert np.all(intervals["x"][0] <= profiles["x"]) and np.all(profiles["x"] <= intervals["x"][1])


def test_iqm_curve_point_by_point() -> None:
    """Each point of the curve is the IQM of its own column: 4 runs trim one each side."""
    returns = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [9.0, 40.0]])
    points, intervals = iqm_curve(returns)
    np.testing.assert_array_equal(points, [1.5, 25.0])
    assert intervals.shape == (2, 2) and np.all(intervals[0] <= points) and np.all(points <= intervals[1])


def test_normalised_and_the_random_policy() -> None:
    """The random policy scores 0, the reference 1; MountainCar's random policy never reaches the flag in 200 steps."""
    reference = ReferenceScore("env", -100.0, 300.0)
    np.testing.assert_array_equal(normalised(np.array([-100.0, 300.0, 100.0]), reference), [0.0, 1.0, 0.5])
    assert random_policy_return("MountainCar-v0", episodes=3) == -200.0


def test_estimate_says_how_many_runs_are_behind_a_narrow_interval() -> None:
    assert str(Estimate(1.0, 1.0, 1.0, runs=1)) == "1.0 (1 run)"
    assert str(Estimate(1.0, 0.5, 2.0, runs=3)) == "1.0 [0.5, 2.0] (3 runs)"
    assert Estimate(1.0, 0.5, 2.0, runs=5).format(2) == "1.00 [0.50, 2.00]"


def _result(algorithm: str, env_id: str, seed: int, final: float) -> dict[str, Any]:
    return {"spec": {"algorithm": algorithm, "env_id": env_id, "seed": seed}, "curve": [[0, 0.0, 0.0], [10, final, 0.0]]}


def test_score_matrices_keep_the_common_envs_and_the_lowest_seeds() -> None:
    """
    A has seeds 0-2 on env E and 0-1 on F: it keeps seeds 0 and 1 on both. B has no run on G: G is left out. Scores are
    normalised with each env's reference.
    """
    references = {name: ReferenceScore(name, 0.0, 10.0) for name in ("E", "F", "G")}
    results = [
        _result("A", "E", 2, 10.0),
        _result("A", "E", 0, 1.0),
        _result("A", "E", 1, 2.0),
        _result("A", "F", 1, 4.0),
        _result("A", "F", 0, 3.0),
        _result("A", "G", 0, 5.0),
        _result("B", "E", 0, 6.0),
        _result("B", "F", 0, 7.0),
        _result("C", "E", 0, 8.0),
    ]
    matrices, env_ids, waiting = score_matrices(results, ["A", "B"], references)
    assert (env_ids, waiting) == (["E", "F"], [])
    np.testing.assert_array_equal(matrices["A"], [[0.1, 0.3], [0.2, 0.4]])
    np.testing.assert_array_equal(matrices["B"], [[0.6, 0.7]])


def test_an_env_still_filling_waits() -> None:
    """
    A and B have 5 runs on E and F; on G, A has 5 and B 1. With G: 5 × 3 + 1 × 3 = 18 runs kept, without it 5 × 2 +
    5 × 2 = 20, so G waits. With B's 2nd run on G: 15 + 6 = 21 > 20, and B keeps seeds 0 and 1 on every env. A tie (B
    with 4 runs on E and F, 1 on G: 15 + 3 = 18 = 10 + 8) goes to the fewer envs.
    """
    references = {name: ReferenceScore(name, 0.0, 10.0) for name in ("E", "F", "G")}
    full = [_result(algorithm, env, seed, float(seed)) for algorithm in "AB" for env in "EF" for seed in range(5)]
    a_on_g = [_result("A", "G", seed, float(seed)) for seed in range(5)]
    matrices, env_ids, waiting = score_matrices(full + a_on_g + [_result("B", "G", 0, 9.0)], ["A", "B"], references)
    assert (env_ids, waiting) == (["E", "F"], ["G"])
    assert matrices["A"].shape == matrices["B"].shape == (5, 2)
    two_on_g = full + a_on_g + [_result("B", "G", 0, 9.0), _result("B", "G", 1, 8.0)]
    matrices, env_ids, waiting = score_matrices(two_on_g, ["A", "B"], references)
    assert (env_ids, waiting) == (["E", "F", "G"], [])
    assert matrices["A"].shape == (5, 3)
    np.testing.assert_array_equal(matrices["B"], [[0.0, 0.0, 0.9], [0.1, 0.1, 0.8]])
    tie = [result for result in full if not (result["spec"]["algorithm"] == "B" and result["spec"]["seed"] == 4)]
    _, env_ids, waiting = score_matrices(tie + a_on_g + [_result("B", "G", 0, 9.0)], ["A", "B"], references)
    assert (env_ids, waiting) == (["E", "F"], ["G"])


def test_an_interval_depends_on_its_own_runs_only() -> None:
    """The same runs, in another order and beside other algorithms, give the same interval; numpy's generator is kept."""
    state = np.random.get_state()
    alone = per_env_estimates({"a": [5.0, 1.0, 9.0, 2.0, 7.0]})["a"]
    beside = per_env_estimates({"b": [3.0, 4.0], "a": [9.0, 7.0, 5.0, 2.0, 1.0]})["a"]
    assert alone == beside
    assert all(np.array_equal(x, y) for x, y in zip(np.random.get_state(), state, strict=True))


def test_aggregate_report_over_two_mujoco_envs(tmp_path: Path) -> None:
    """
    Hopper and Walker2d (short random episodes): the normalisation table, one row per algorithm with its runs per env,
    the probability of improvement of the first over the second, the profiles' PNG; one env gives the same over it
    alone; an env still filling is named as waiting; no env with a reference writes nothing and removes what an
    earlier build wrote.
    """
    results = [_result("A", env_id, seed, 1000.0 + seed) for env_id in ("Hopper-v5", "Walker2d-v5") for seed in range(5)]
    results += [_result("B", env_id, 0, 10.0) for env_id in ("Hopper-v5", "Walker2d-v5")]
    write_aggregate(tmp_path, results, ["A", "B"], "# header\n")
    text = (tmp_path / "aggregate.md").read_text()
    assert "| Hopper-v5 |" in text and "| Walker2d-v5 | " in text and "| 2410.4 |" in text and "| 3478.8 |" in text
    assert "| A | 5 |" in text and "| B | 1 |" in text and "| P(A > B) | 1.00 (1 run) |" in text
    assert (tmp_path / "aggregate_profiles.png").read_bytes().startswith(b"\x89PNG")
    assert "Over the 2 envs where every algorithm has runs (Hopper-v5, Walker2d-v5)" in text
    write_aggregate(tmp_path, results[:5] + results[10:11], ["A", "B"], "# header\n")
    text = (tmp_path / "aggregate.md").read_text()
    assert "Over the env where every algorithm has runs (Hopper-v5)" in text and "| Walker2d-v5 |" not in text
    assert "| A | 5 |" in text and "| P(A > B) | 1.00 (1 run) |" in text
    filling = [_result(name, "Hopper-v5", seed, 1000.0) for name in "ABC" for seed in range(5)]
    filling += [_result(name, "Walker2d-v5", 0, 10.0) for name in "BC"] + results[5:10]
    write_aggregate(tmp_path, filling, ["A", "B", "C"], "# header\n")  # Walker2d: 5 + 1 + 1 runs × 2 envs < 15 × 1
    text = (tmp_path / "aggregate.md").read_text()
    assert "Over the env where every algorithm has runs (Hopper-v5)" in text and "| C | 5 |" in text
    assert "; Walker2d-v5 waits for more runs: the envs taken are those that keep the most runs in all." in text
    write_aggregate(tmp_path, [_result("A", "CartPole-v1", 0, 500.0)], ["A"], "# header\n")
    assert not list(tmp_path.iterdir())
