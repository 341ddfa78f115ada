"""
Swapping VPG in for PPO: a pipeline written for PPO runs unchanged with VPG, the class being the only difference; and
what SB3's clients rely on: ``n_steps`` set, ``torch.compile`` of the policy, ``learn()``'s budget.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv
from torch._dynamo.utils import counters

from sb3_vpg import VPG
from tests.helpers_sb3 import TINY_POLICY, CountingEnv, record_batches

EXAMPLE = Path(__file__).parents[1] / "examples" / "ppo_pipeline_swap.py"
TINY_BUDGET = {"total_timesteps": 512, "n_envs": 2, "n_steps": 64, "net_arch": (8,), "eval_freq": 256, "n_eval_episodes": 2}


def load_example():
    spec = importlib.util.spec_from_file_location("ppo_pipeline_swap", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
@pytest.mark.parametrize("algo", [PPO, VPG])
def test_ppo_pipeline_runs_unchanged_with_vpg(algo: type, tmp_path: Path) -> None:
    """
    The same pipeline function (make_vec_env + VecNormalize + EvalCallback + CheckpointCallback + TensorBoard +
    save/load + evaluate_policy), run with PPO and with VPG, produces the same artefacts and a working reloaded model.
    """
    example = load_example()
    assert example.ALGO is VPG
    result = example.run_pipeline(algo, workdir=tmp_path, **TINY_BUDGET)
    name = algo.__name__
    model, loaded, eval_env = result["model"], result["loaded"], result["eval_env"]
    assert type(model) is algo and type(loaded) is algo
    assert model.num_timesteps == 512

    # TensorBoard run, evaluations at 256 and 512 steps, the best model, checkpoints with their VecNormalize stats.
    (run,) = (tmp_path / "tensorboard").iterdir()
    assert run.name == f"{name}_1" and any(run.glob("events.out.tfevents.*"))
    np.testing.assert_array_equal(np.load(tmp_path / "eval" / "evaluations.npz")["timesteps"], [256, 512])
    assert (tmp_path / "best" / "best_model.zip").is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(
        f"{name.lower()}_{kind}{steps}_steps.{ext}"
        for steps in (256, 512)
        for kind, ext in (("", "zip"), ("vecnormalize_", "pkl"))
    )

    # The reloaded model and statistics act as the trained ones, and evaluate_policy gave a real CartPole return.
    np.testing.assert_array_equal(eval_env.obs_rms.mean, model.get_vec_normalize_env().obs_rms.mean)
    obs = eval_env.reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert result["mean_reward"] >= 8.0 and np.isfinite(result["std_reward"])


@pytest.mark.integration
def test_swap_example_runs_as_a_script(tmp_path: Path) -> None:
    """``examples/ppo_pipeline_swap.py`` runs from the command line (VPG by default) on a tiny budget."""
    command = [sys.executable, str(EXAMPLE), "--timesteps", "256", "--n-envs", "2", "--n-steps", "32", "--net-arch", "8"]
    command += ["--eval-freq", "128", "--eval-episodes", "2", "--workdir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "VPG on CartPole-v1:" in result.stdout
    assert (tmp_path / "model.zip").is_file() and (tmp_path / "vecnormalize.pkl").is_file()
    assert [p.name for p in (tmp_path / "tensorboard").iterdir()] == ["VPG_1"]


def compiled_frames(algo: type) -> tuple[int, BaseAlgorithm]:
    """The frames torch.compile compiled while ``algo`` learned with ``model.policy = th.compile(model.policy)``."""
    th._dynamo.reset()
    counters.clear()
    model = algo("MlpPolicy", "CartPole-v1", n_steps=16, policy_kwargs=TINY_POLICY, seed=0)
    model.policy = th.compile(model.policy, backend="eager")
    model.learn(64)
    return counters["frames"]["ok"], model


def test_torch_compile_of_the_policy_takes_effect_as_for_ppo() -> None:
    """SB3's recipe compiles the policy's forward, which VPG's collection goes through, as PPO's does."""
    vpg_frames, model = compiled_frames(VPG)
    ppo_frames, _ = compiled_frames(PPO)
    assert vpg_frames == ppo_frames == 1
    assert model._n_updates > 0


class PolicyWithItsOwnForward(ActorCriticPolicy):
    """SB3's policy with a ``forward`` of its own, which computes the same: VPG collects through it."""

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        return super().forward(obs, deterministic)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_collection_through_forward_samples_the_same_actions(env_id: str) -> None:
    """Sampling from the distribution alone (SB3's own forward) and through ``forward`` draw the same actions."""
    runs = []
    for policy in ("MlpPolicy", PolicyWithItsOwnForward):
        model = VPG(policy, make_vec_env(env_id, n_envs=2, seed=0), n_steps=32, policy_kwargs=TINY_POLICY, seed=0)
        batches = record_batches(model)
        model.learn(512)  # Pendulum's episodes last 200 steps
        runs.append(th.cat([batch.actions for batch in batches]))
    assert len(runs[0]) > 0
    th.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


@pytest.mark.parametrize(("n_envs", "n_steps"), [(1, 4000), (3, 1500)])
def test_n_steps_with_the_batch_in_episodes_bounds_a_rollout(n_envs: int, n_steps: int) -> None:
    """With n_episodes = 8 and CartPole's 500-step limit, n_steps = ⌈8 / n_envs⌉ × 500: never None, as SB3's clients assume."""
    model = VPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs), policy_kwargs=TINY_POLICY)
    assert (model.n_episodes, model.n_steps) == (8, n_steps)
    # An env without a time limit: H is VPG's own cap on an episode's length.
    model = VPG("MlpPolicy", CountingEnv(), n_episodes=2, max_episode_steps=300, policy_kwargs=TINY_POLICY)
    assert model.n_steps == 2 * 300


@pytest.mark.parametrize("batch", [dict(n_episodes=8), dict(n_steps=64)], ids=["episodes", "steps"])
@pytest.mark.parametrize("n_envs", [1, 3])
def test_learn_stops_at_its_budget_and_keeps_the_running_episodes(batch: dict, n_envs: int) -> None:
    """
    ``learn(N)`` stops at the first step that reaches N, within n_envs − 1 timesteps (PPO may run a whole rollout
    more): its last update trains the episodes that ended; the running ones wait, whole, for the next ``learn``.
    """
    env = DummyVecEnv([lambda i=i: CountingEnv(ep_length=7, index=i) for i in range(n_envs)])
    model = VPG("MlpPolicy", env, policy_kwargs=TINY_POLICY, seed=0, **batch)
    batches = record_batches(model)
    model.learn(100)
    assert 100 <= model.num_timesteps < 100 + n_envs
    running = model.rollout_buffer.n_running_steps
    assert running == model.num_timesteps - sum(len(batch.actions) for batch in batches) > 0
    model.learn(50, reset_num_timesteps=False)
    assert sum(len(batch.actions) for batch in batches) + model.rollout_buffer.n_running_steps == model.num_timesteps
    assert all(batch.observations.cpu().numpy()[:, 2].tolist() == list(range(7)) * batch.n_episodes for batch in batches)


def test_the_last_batch_stays_readable_after_learn_as_in_a2c() -> None:
    """
    SB3's buffers keep the last rollout after ``learn()`` (SB3's own test_sde reads its actions): VPG's keeps the
    last batch it trained on, until the next collection starts and drops it. It is never trained again: the next
    update trains the next episodes, and ``train()`` called again without a collection trains nothing.
    """
    model = VPG("MlpPolicy", DummyVecEnv([lambda: CountingEnv(ep_length=5)]), n_steps=10, policy_kwargs=TINY_POLICY, seed=0)
    batches = record_batches(model)
    model.learn(10)
    buffer = model.rollout_buffer
    assert buffer.batch_trained and buffer.actions.shape == (10, 1)
    np.testing.assert_array_equal(buffer.observations[:, 1:], [[episode, t] for episode in (0, 1) for t in range(5)])
    np.testing.assert_array_equal(buffer.actions, batches[0].actions.cpu().numpy())
    model.train()
    assert model._n_updates == 1 and model._n_skipped_updates == 1 and len(batches) == 1
    model.learn(10, reset_num_timesteps=False)
    assert model._n_updates == 2 and len(batches) == 2
    np.testing.assert_array_equal(batches[1].observations.cpu().numpy()[:, 1], np.repeat([2, 3], 5))
    np.testing.assert_array_equal(buffer.observations[:, 1], np.repeat([2, 3], 5))
