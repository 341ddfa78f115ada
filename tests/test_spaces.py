"""VPG on every action and observation space that A2C and PPO support, and a clear error on the others."""

from collections import defaultdict

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

from sb3_vpg import VPG
from tests.helpers_sb3 import (
    TINY_CNN_POLICY,
    TINY_MULTI_INPUT_POLICY,
    TINY_POLICY,
    ActionRecorder,
    CountingEnv,
    changed_weights,
    parameters_of,
    record_batches,
)


@pytest.mark.parametrize(
    "make_env",
    [
        lambda: IdentityEnv(dim=3, ep_length=8),
        lambda: IdentityEnvBox(ep_length=8),
        lambda: IdentityEnvMultiDiscrete(dim=3, ep_length=8),
        lambda: IdentityEnvMultiBinary(dim=3, ep_length=8),
    ],
    ids=["Discrete", "Box", "MultiDiscrete", "MultiBinary"],
)
def test_action_and_observation_spaces(make_env) -> None:
    """Each supported space (as both action and observation space) trains, and predict returns actions of that space."""
    # Every reward shifted by 1: a batch whose returns are all 0 (no action hit) has a gradient of exactly 0, so the
    # weights change whatever actions the seed (and the device's random stream) samples.
    env = gym.wrappers.TransformReward(make_env(), lambda reward: reward + 1.0)
    model = VPG("MlpPolicy", env, n_steps=16, policy_kwargs=TINY_POLICY, seed=0)
    before = parameters_of(model)
    model.learn(32)
    assert model._n_updates == 2
    assert changed_weights(before, parameters_of(model))

    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs)
    assert env.action_space.contains(action), action
    batch = np.stack([obs, obs])
    actions, _ = model.predict(batch)
    assert actions.shape == (2, *env.action_space.shape)


def test_box_actions_clipped_as_a2c_does() -> None:
    """Box actions outside the bounds reach the env clipped, while the buffer keeps the sampled (unclipped) action."""
    recorder = ActionRecorder(IdentityEnvBox(low=-1.0, high=1.0, ep_length=4))
    model = VPG("MlpPolicy", recorder, n_steps=16, policy_kwargs={**TINY_POLICY, "log_std_init": 1.0}, seed=0)
    batches = record_batches(model)
    model.learn(16)
    sent = np.array(recorder.actions).reshape(16, 1)
    sampled = batches[0].actions.cpu().numpy()  # the 4 episodes of the update, in the order they were played
    assert np.abs(sampled).max() > 1.0, "with std e, some sampled actions leave [-1, 1]"
    assert sent.min() >= -1.0 and sent.max() <= 1.0
    np.testing.assert_allclose(sent, np.clip(sampled, -1.0, 1.0))


def test_box_actions_squashed_with_sde() -> None:
    """With gSDE and ``squash_output=True`` the policy acts in [-1, 1], and the env gets the action rescaled to its bounds."""
    recorder = ActionRecorder(IdentityEnvBox(low=2.0, high=6.0, ep_length=4))
    policy_kwargs = {**TINY_POLICY, "squash_output": True, "log_std_init": 1.0}
    model = VPG("MlpPolicy", recorder, n_steps=16, use_sde=True, policy_kwargs=policy_kwargs, seed=0)
    batches = record_batches(model)
    model.learn(16)
    sent = np.array(recorder.actions).reshape(16, 1)
    squashed = batches[0].actions.cpu().numpy()
    assert np.abs(squashed).max() <= 1.0
    np.testing.assert_allclose(sent, 2.0 + (squashed + 1.0) * 2.0, rtol=1e-5)
    assert sent.min() >= 2.0 and sent.max() <= 6.0
    # Unlike clipping, squashing does not pile actions up on the bounds.
    assert len(np.unique(sent)) == 16


@pytest.mark.parametrize("channel_first", [False, True])
def test_image_observations(channel_first: bool) -> None:
    """CnnPolicy trains on images; channel-last images are transposed by SB3's VecTransposeImage, as for A2C and PPO."""
    env = FakeImageEnv(screen_height=36, screen_width=36, channel_first=channel_first)
    # FakeImageEnv's rewards are all 0, so R(τ) = 0: the entropy bonus is what moves the weights.
    model = VPG("CnnPolicy", env, n_steps=10, ent_coef=0.1, policy_kwargs=TINY_CNN_POLICY, seed=0)
    assert isinstance(model.get_env(), VecTransposeImage) is not channel_first
    assert model.observation_space.shape == (1, 36, 36)
    before = parameters_of(model)
    model.learn(20)
    assert model._n_updates == 2
    assert any(name.startswith("features_extractor.cnn") for name in changed_weights(before, parameters_of(model)))
    action, _ = model.predict(env.reset()[0])
    assert env.action_space.contains(int(action))


def test_dict_observations() -> None:
    """MultiInputPolicy trains on Dict observations (image and vector keys)."""
    model = VPG("MultiInputPolicy", SimpleMultiObsEnv(), n_steps=16, policy_kwargs=TINY_MULTI_INPUT_POLICY, seed=0)
    before = parameters_of(model)
    model.learn(32)
    changed = changed_weights(before, parameters_of(model))
    assert any(".img." in name for name in changed) and "action_net.weight" in changed
    obs = model.get_env().reset()
    actions, _ = model.predict(obs)
    assert actions.shape == (1,)


@pytest.mark.parametrize(
    ("kind", "policy", "channel_first"),
    [
        ("vector", "MlpPolicy", False),
        ("image", "CnnPolicy", False),
        ("image", "CnnPolicy", True),
        ("dict", "MultiInputPolicy", False),
        ("dict", "MultiInputPolicy", True),
    ],
)
def test_episodes_carried_over_rollouts_stay_intact(kind: str, policy: str, channel_first: bool) -> None:
    """
    Episodes longer than a rollout (n_steps=3, episodes of 5 and 7 steps) reach the update whole: each episode's
    observations, every key of them, are its steps 0..L-1 in order, and every ended episode is trained on exactly once.
    """
    lengths = (5, 7)
    venv = DummyVecEnv(
        [lambda i=i: CountingEnv(kind, ep_length=lengths[i], index=i, channel_first=channel_first) for i in range(2)]
    )
    policy_kwargs = {"CnnPolicy": TINY_CNN_POLICY, "MultiInputPolicy": TINY_MULTI_INPUT_POLICY}.get(policy, TINY_POLICY)
    model = VPG(policy, venv, n_steps=3, policy_kwargs=policy_kwargs, seed=0)
    batches = record_batches(model)
    model.learn(3 * 2 * 12)  # 12 rollouts of 3 steps: 36 steps per env

    seen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for batch in batches:
        if batch.n_episodes == 0:
            continue
        obs = {key: value.cpu().numpy() for key, value in batch.observations.items()} if kind == "dict" else batch.observations
        vec = obs["vec"] if kind == "dict" else obs.cpu().numpy() if kind == "vector" else None
        if kind == "image":
            images = obs.cpu().numpy()
            assert images.shape[1:] == (1, 36, 36)
            assert (images == images[:, :1, :1, :1]).all(), "an image was scrambled"
            continue
        if kind == "dict":
            assert obs["img"].shape[1:] == (1, 36, 36)
            np.testing.assert_array_equal(obs["img"].reshape(len(vec), -1), np.repeat(vec[:, 2:3], 36 * 36, axis=1))
            np.testing.assert_array_equal(obs["step"].reshape(-1), vec[:, 2])  # the Discrete key
        steps_in_batch: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, episode, t in vec.astype(int):
            steps_in_batch[(index, episode)].append(t)
        for key, steps in steps_in_batch.items():
            assert key not in seen, f"episode {key} trained on twice"
            assert steps == list(range(lengths[key[0]])), f"episode {key} reached the update as {steps}"
            seen[key] = steps
    if kind != "image":
        # 36 steps per env: 7 episodes of 5 steps end in env 0, 5 episodes of 7 steps in env 1, all trained on.
        assert sorted(seen) == [(0, e) for e in range(7)] + [(1, e) for e in range(5)]
    assert sum(batch.n_episodes for batch in batches) == 7 + 5


def test_image_episodes_carried_over_in_order() -> None:
    """Carried-over image episodes keep their frames in order: frame t of each episode shows t (channel-last, transposed)."""
    model = VPG("CnnPolicy", CountingEnv("image", ep_length=5), n_steps=3, policy_kwargs=TINY_CNN_POLICY, seed=0)
    batches = record_batches(model)
    model.learn(15)
    frames = np.concatenate([batch.observations.cpu().numpy()[:, 0, 0, 0] for batch in batches])
    np.testing.assert_array_equal(frames, np.tile(np.arange(5), 3))


class TupleObsEnv(gym.Env):
    """An env with a Tuple observation space, which SB3's on-policy policies cannot take."""

    observation_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return (0, 0), {}

    def step(self, action):
        return (0, 0), 0.0, True, False, {}


class DictActionEnv(IdentityEnv):
    """IdentityEnv with a Dict action space."""

    def __init__(self) -> None:
        super().__init__(dim=2)
        self.action_space = spaces.Dict({"a": spaces.Discrete(2)})


class ObservationSpaceEnv(IdentityEnv):
    """IdentityEnv observed through another space, which SB3 fails on before its own checks."""

    def __init__(self, observation_space: spaces.Space) -> None:
        super().__init__(dim=2)
        self.observation_space = observation_space


UNSUPPORTED_OBSERVATIONS = {
    "Sequence": spaces.Sequence(spaces.Discrete(3)),
    "Graph": spaces.Graph(spaces.Box(0, 1, (2,)), spaces.Discrete(2)),
    "Text": spaces.Text(5),
    "Dict-of-Sequence": spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Sequence(spaces.Discrete(3))}),
}


@pytest.mark.parametrize(
    ("make_env", "message"),
    [
        (TupleObsEnv, "observation spaces"),
        (DictActionEnv, "action spaces"),
        *(
            (lambda space=space: ObservationSpaceEnv(space), "observation spaces")
            for space in UNSUPPORTED_OBSERVATIONS.values()
        ),
    ],
    ids=["Tuple-observation", "Dict-action", *UNSUPPORTED_OBSERVATIONS],
)
def test_unsupported_spaces_fail_clearly(make_env, message: str) -> None:
    """
    Spaces that VPG's policies cannot handle fail at construction with VPG's message listing what is supported, before
    SB3 wraps the env (on which a Sequence, Graph or Text space would fail with "'NoneType' object is not iterable").
    """
    with pytest.raises(ValueError, match=f"VPG supports the {message} .*Box") as error:
        VPG("MlpPolicy", make_env())
    assert "got" in str(error.value)
