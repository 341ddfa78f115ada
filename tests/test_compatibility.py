"""
Models saved by sb3-vpg 0.1.0 load, predict as they did, and learn on.

The zips in ``tests/data`` were saved by release 0.1.0 (commit e2c4c46) with tiny networks: CartPole-v1 with the batch
in episodes (``n_steps=None`` then), Pendulum-v1 with reward-to-go, a learned baseline, GAE and value steps, and
BitFlippingEnv's Dict observations with the batch-mean baseline. ``vpg-0.1.0-predictions.json`` holds, for each, five
observations sampled from its observation space and the deterministic actions 0.1.0 predicted for them.
"""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
from packaging import version
from stable_baselines3.common.envs import BitFlippingEnv

from sb3_vpg import VPG

DATA = Path(__file__).parent / "data"
PREDICTIONS = json.loads((DATA / "vpg-0.1.0-predictions.json").read_text())
ENVS = {
    "cartpole-episodes": lambda: gym.make("CartPole-v1"),
    "pendulum-value": lambda: gym.make("Pendulum-v1"),
    "bitflipping-mean": lambda: BitFlippingEnv(n_bits=4, max_steps=6),
}


def as_observations(encoded: list | dict) -> np.ndarray | dict[str, np.ndarray]:
    if isinstance(encoded, dict):
        return {key: np.array(value) for key, value in encoded.items()}
    return np.array(encoded, dtype=np.float32)


@pytest.mark.skipif(
    version.parse(sb3.__version__) < version.parse("2.9") or version.parse(gym.__version__) < version.parse("1.0"),
    reason="saved with stable-baselines3 2.9.2 and gymnasium 1.4.0, whose pickled spaces older versions cannot read",
)
@pytest.mark.parametrize("name", list(ENVS))
def test_model_saved_by_0_1_0_predicts_as_it_did_and_learns_on(name: str) -> None:
    expected = PREDICTIONS[name]
    model = VPG.load(DATA / f"vpg-0.1.0-{name}.zip", env=ENVS[name]())
    assert model.num_timesteps == expected["num_timesteps"]
    assert isinstance(model.n_steps, int) and model.n_steps > 0  # 0.1.0 saved None with the batch in episodes
    actions, _ = model.predict(as_observations(expected["observations"]), deterministic=True)
    np.testing.assert_allclose(actions, np.array(expected["actions"]), rtol=1e-6)

    updates = model._n_updates
    model.learn(200, reset_num_timesteps=False)
    assert model._n_updates > updates
