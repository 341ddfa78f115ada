"""TensorBoard: runs named VPG_1, VPG_2, … with the documented scalars, read back from the event files."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sb3_vpg import VPG

SCALARS = {
    "train/policy_gradient_loss",
    "train/n_episodes",
    "train/return_mean",
    "train/return_std",
    "train/grad_norm",
    "train/entropy",
    "train/learning_rate",
    "train/n_updates",
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "time/fps",
}


def read_scalars(run_dir: Path) -> dict[str, list[float]]:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_runs_and_scalars_in_event_files(tmp_path: Path) -> None:
    model = VPG(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=2e-3,
        n_episodes=2,
        policy_kwargs=dict(net_arch=[8]),
        tensorboard_log=str(tmp_path),
        seed=0,
    )
    model.learn(total_timesteps=600)
    model.learn(total_timesteps=300, reset_num_timesteps=False)
    model.learn(total_timesteps=300)

    # SB3's numbering: a continued run writes into the same folder, a fresh one opens the next.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VPG_1", "VPG_2"]
    scalars = read_scalars(tmp_path / "VPG_1")
    assert scalars.keys() >= SCALARS
    assert all(m >= 2 for m in scalars["train/n_episodes"])
    assert scalars["train/learning_rate"][0] == pytest.approx(2e-3)
    # n_updates counts on across the continued learn(): strictly increasing.
    updates = scalars["train/n_updates"]
    assert updates == sorted(set(updates)) and updates[0] == 1
    assert all(std >= 0 for std in scalars["train/return_std"])
