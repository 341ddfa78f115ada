"""The model surface of SB3 with VPG: save/load, parameters, set_env, predict, evaluate_policy, seeding and devices."""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnvBox, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_vpg import VPG
from tests.helpers_sb3 import (
    TINY_MULTI_INPUT_POLICY,
    TINY_POLICY,
    CountingEnv,
    parameters_of,
    record_batches,
    same_parameters,
)


def counting_venv(n_envs: int = 1, ep_length: int = 5) -> DummyVecEnv:
    return DummyVecEnv([lambda i=i: Monitor(CountingEnv(ep_length=ep_length, index=i)) for i in range(n_envs)])


def test_save_load_round_trip(tmp_path) -> None:
    """save/load keeps the weights, the optimiser state, VPG's own hyperparameters and the predictions."""
    model = VPG(
        "MlpPolicy",
        "CartPole-v1",
        n_episodes=3,
        gamma=0.9,
        reward_to_go=True,
        baseline="value",
        gae_lambda=0.8,
        normalize_advantage=True,
        max_episode_steps=600,
        policy_kwargs=TINY_POLICY,
        seed=0,
    )
    model.learn(100)
    model.save(tmp_path / "vpg.zip")
    loaded = VPG.load(tmp_path / "vpg.zip")

    assert same_parameters(parameters_of(model), parameters_of(loaded))
    saved_state = model.policy.optimizer.state_dict()["state"]
    loaded_state = loaded.policy.optimizer.state_dict()["state"]
    assert all(th.equal(saved_state[i]["exp_avg"], loaded_state[i]["exp_avg"]) for i in saved_state)
    for name in ("n_episodes", "n_steps", "gamma", "reward_to_go", "baseline", "gae_lambda", "normalize_advantage"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert loaded.max_episode_steps == loaded.rollout_buffer.max_episode_steps == 600
    assert loaded.num_timesteps == model.num_timesteps and loaded._n_updates == model._n_updates
    obs = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])

    loaded.set_env(make_vec_env("CartPole-v1"))
    loaded.learn(3 * 500, reset_num_timesteps=False)  # 3 CartPole episodes (≤ 500 steps each) end in any case
    assert loaded._n_updates > model._n_updates


def test_load_custom_objects_device_and_new_env(tmp_path) -> None:
    """``custom_objects`` replace saved attributes, ``device`` places the policy, and a new env may have more copies."""
    VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY).save(tmp_path / "vpg")
    env = make_vec_env("CartPole-v1", n_envs=3)
    loaded = VPG.load(tmp_path / "vpg", env=env, custom_objects={"learning_rate": 0.123}, device="cpu")
    assert loaded.device.type == "cpu" and next(loaded.policy.parameters()).device.type == "cpu"
    assert loaded.n_envs == 3 and loaded.rollout_buffer.n_envs == 3
    loaded.learn(24)
    assert loaded.num_timesteps == 24
    assert loaded.policy.optimizer.param_groups[0]["lr"] == 0.123

    with pytest.raises(ValueError, match="Observation spaces do not match"):
        VPG.load(tmp_path / "vpg", env=IdentityEnvBox())


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_loading_another_algorithms_zip_says_which_and_how_to_take_its_policy(tmp_path, algo: type) -> None:
    """VPG.load of a PPO or A2C zip names the algorithm; its policy, an ActorCriticPolicy, goes into VPG as told."""
    saved = algo("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY, seed=0)
    saved.save(tmp_path / "model")
    name = algo.__name__
    message = rf"holds a model saved by {name}, not by VPG\. Load it with {name}\.load\(path\).*load_state_dict"
    with pytest.raises(ValueError, match=message):
        VPG.load(tmp_path / "model")
    with open(tmp_path / "model.zip", "rb") as file, pytest.raises(ValueError, match=f"saved by {name}"):
        VPG.load(file)

    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY)
    model.policy.load_state_dict(algo.load(tmp_path / "model").policy.state_dict())  # the recipe of the message
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], saved.predict(obs, deterministic=True)[0])


def test_vpg_zip_loads_from_a_file_object(tmp_path) -> None:
    """The check of the saved algorithm reads a file object and puts it back where it was: VPG.load then reads it."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY, seed=0)
    model.save(tmp_path / "vpg.zip")
    with open(tmp_path / "vpg.zip", "rb") as file:
        loaded = VPG.load(file)
    assert same_parameters(parameters_of(model), parameters_of(loaded))


def test_get_and_set_parameters() -> None:
    """get_parameters/set_parameters copy one model's weights into another, which then acts identically."""
    source = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY, seed=1)
    target = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY, seed=2)
    assert not same_parameters(parameters_of(source), parameters_of(target))
    parameters = source.get_parameters()
    assert set(parameters) == {"policy", "policy.optimizer"}
    target.set_parameters(parameters)
    assert same_parameters(parameters_of(source), parameters_of(target))

    partial = {"policy": {"action_net.bias": th.tensor([5.0, -5.0])}}
    with pytest.raises(RuntimeError, match="Missing key"):
        target.set_parameters(partial)
    target.set_parameters(partial, exact_match=False)
    np.testing.assert_array_equal(target.predict(np.zeros((3, 4), dtype=np.float32), deterministic=True)[0], [0, 0, 0])


def test_set_env_forgets_running_episodes() -> None:
    """set_env resets the envs: a half-run episode of the old env is dropped, never glued to the new env's steps."""
    model = VPG("MlpPolicy", counting_venv(), n_steps=8, policy_kwargs=TINY_POLICY, seed=0)
    model.learn(8)  # one episode of 5 steps trained on, 3 steps of the next one carried over
    assert model.rollout_buffer.n_running_steps == 3

    new_env = DummyVecEnv([lambda: CountingEnv(ep_length=5, index=7)])
    model.set_env(new_env)
    batches = record_batches(model)
    model.learn(8, reset_num_timesteps=False)
    (batch,) = batches
    assert batch.n_episodes == 1
    assert model.rollout_buffer.n_dropped_episodes == model.logger.name_to_value["train/n_dropped_episodes"] == 1
    np.testing.assert_array_equal(batch.observations[:, 0].cpu().numpy(), [7] * 5)  # only the new env's steps
    np.testing.assert_array_equal(batch.observations[:, 2].cpu().numpy(), np.arange(5))

    with pytest.raises(ValueError, match="Observation spaces do not match"):
        model.set_env(IdentityEnvBox())
    with pytest.raises(AssertionError, match="number of environments"):
        model.set_env(counting_venv(n_envs=2))


def test_predict_single_and_batched() -> None:
    """predict, as for A2C/PPO: one observation gives one action, a batch a batch; deterministic repeats, sampling varies."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs={"net_arch": [8], "ortho_init": False}, seed=0)
    obs = np.array([0.1, 0.0, -0.1, 0.2], dtype=np.float32)
    action, state = model.predict(obs, deterministic=True)
    assert state is None and np.shape(action) == () and action in (0, 1)
    batch = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    actions, _ = model.predict(batch, deterministic=True)
    assert actions.shape == (64,)
    np.testing.assert_array_equal(model.predict(batch, deterministic=True)[0], actions)
    # The deterministic action is the argmax of the policy's probabilities; sampled actions vary.
    probs = model.policy.get_distribution(th.as_tensor(batch, device=model.device)).distribution.probs.detach().cpu().numpy()
    np.testing.assert_array_equal(actions, probs.argmax(axis=1))
    samples = np.stack([model.predict(batch)[0] for _ in range(20)])
    assert len(np.unique(samples)) == 2 and (samples != actions).any()


def test_predict_dict_observations() -> None:
    """predict takes a single Dict observation and a batch of them."""
    env = SimpleMultiObsEnv()
    model = VPG("MultiInputPolicy", env, n_steps=8, policy_kwargs=TINY_MULTI_INPUT_POLICY, seed=0)
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert np.shape(action) == () and env.action_space.contains(int(action))
    batch = {key: np.stack([value] * 3) for key, value in obs.items()}
    actions, _ = model.predict(batch, deterministic=True)
    np.testing.assert_array_equal(actions, [action] * 3)


def test_evaluate_policy() -> None:
    """evaluate_policy runs VPG's policy for whole episodes and reports their rewards and lengths."""
    model = VPG("MlpPolicy", counting_venv(), n_steps=8, policy_kwargs=TINY_POLICY)
    rewards, lengths = evaluate_policy(model, counting_venv(n_envs=2), n_eval_episodes=4, return_episode_rewards=True)
    assert rewards == [15.0] * 4 and lengths == [5] * 4
    mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=2)
    assert (mean, std) == (15.0, 0.0)


def test_learn_reset_num_timesteps_false_continues(tmp_path) -> None:
    """``reset_num_timesteps=False`` continues the count, the updates and the TensorBoard run, as for A2C/PPO."""
    model = VPG("MlpPolicy", counting_venv(), n_steps=8, policy_kwargs=TINY_POLICY, tensorboard_log=str(tmp_path))
    model.learn(16)
    model.learn(16, reset_num_timesteps=False)
    assert model.num_timesteps == 32 and model._n_updates == 4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["VPG_1"]
    model.learn(8)
    assert model.num_timesteps == 8
    assert sorted(path.name for path in tmp_path.iterdir()) == ["VPG_1", "VPG_2"]


def train_weights(seed: int, reseed: int | None = None) -> dict[str, th.Tensor]:
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=32, policy_kwargs=TINY_POLICY, seed=seed, device="cpu")
    if reseed is not None:
        model.set_random_seed(reseed)
    model.learn(128)
    return parameters_of(model)


def test_fixed_seed_reproduces_training_on_cpu() -> None:
    """The same seed gives the same weights after training on CPU; another seed does not; set_random_seed reseeds."""
    assert same_parameters(train_weights(3), train_weights(3))
    assert not same_parameters(train_weights(3), train_weights(4))
    assert same_parameters(train_weights(3, reseed=9), train_weights(3, reseed=9))
    assert not same_parameters(train_weights(3, reseed=9), train_weights(3, reseed=10))


def test_device_auto_as_sb3() -> None:
    """``device="auto"`` resolves as in SB3: CUDA when present, else CPU."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY)
    assert model.device == get_device("auto")
    assert next(model.policy.parameters()).device.type == get_device("auto").type


@pytest.mark.skipif(not th.cuda.is_available(), reason="no CUDA device")
def test_cuda(tmp_path) -> None:
    """``device="cuda"`` trains on the GPU, and the saved model loads on the CPU with the same weights."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=16, baseline="value", policy_kwargs=TINY_POLICY, device="cuda")
    assert next(model.policy.parameters()).device.type == "cuda"
    model.learn(64)
    assert model._n_updates + model._n_skipped_updates == 4
    model.save(tmp_path / "vpg")
    loaded = VPG.load(tmp_path / "vpg", device="cpu")
    assert next(loaded.policy.parameters()).device.type == "cpu"
    for name, value in model.policy.state_dict().items():
        assert th.equal(value.cpu(), loaded.policy.state_dict()[name]), name
