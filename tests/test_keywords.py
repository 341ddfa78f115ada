"""
A2C/PPO keywords: accepted with the same meaning, or refused with a TypeError saying why; the docs' keyword table,
generated from the code (``docs/_ext/sb3_vpg_tables.py``), agrees.
"""

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_vpg import VPG
from sb3_vpg.buffers import EpisodeRolloutBuffer
from sb3_vpg.checks import REFUSED_KEYWORDS
from tests.helpers_sb3 import TINY_POLICY, CountingEnv, recording_logger

TABLES = Path(__file__).parents[1] / "docs" / "_ext" / "sb3_vpg_tables.py"


def load_tables():
    """The docs' table generator (no Sphinx needed), loaded from its file."""
    spec = importlib.util.spec_from_file_location("sb3_vpg_tables", TABLES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def keywords(algo: type) -> dict[str, inspect.Parameter]:
    """The keywords of an algorithm's constructor."""
    parameters = inspect.signature(algo.__init__).parameters
    return {name: p for name, p in parameters.items() if name != "self" and p.kind != inspect.Parameter.VAR_KEYWORD}


A2C_PPO = {**keywords(A2C), **keywords(PPO)}


@pytest.mark.parametrize("name", sorted(set(A2C_PPO) - {"policy", "env"}))
def test_every_a2c_ppo_keyword_is_accepted_or_refused(name: str) -> None:
    """Each A2C/PPO keyword is either a VPG keyword or refused with a TypeError that names it and says why."""
    if name in REFUSED_KEYWORDS:
        assert name not in keywords(VPG)
        value = A2C_PPO[name].default
        with pytest.raises(TypeError, match=rf"VPG does not take the keyword '{name}': (PPO|A2C)'s .+") as error:
            VPG("MlpPolicy", "CartPole-v1", **{name: value})
        assert REFUSED_KEYWORDS[name] in str(error.value)
    else:
        assert name in keywords(VPG), f"VPG neither takes nor refuses A2C/PPO's {name!r}"


def test_unknown_keyword_is_refused() -> None:
    """A keyword of neither VPG, A2C nor PPO fails as a TypeError, as Python's would."""
    with pytest.raises(TypeError, match="VPG does not take the keyword 'n_envs': it is not a parameter of VPG, A2C or PPO"):
        VPG("MlpPolicy", "CartPole-v1", n_envs=4)


def test_keyword_table_lists_every_keyword() -> None:
    """
    The docs' keyword table has one row per keyword of A2C, PPO and VPG, with the status VPG really gives it and each
    algorithm's default.
    """
    rows = load_tables().keyword_rows()
    vpg = keywords(VPG)
    assert set(rows) == set(A2C_PPO) | set(vpg)
    for name, cells in rows.items():
        assert cells[0] == f"`{name}`"
        status = cells[3]
        if name in REFUSED_KEYWORDS:
            assert status == "refused", name
            assert REFUSED_KEYWORDS[name] in cells[5]
        elif name not in A2C_PPO:
            assert status == "VPG only", name
        else:
            assert status in ("same", "VPG meaning"), name
            assert name in vpg
        for algo, column in ((A2C, 1), (PPO, 2), (VPG, 4)):
            if name in keywords(algo) and keywords(algo)[name].default is not inspect.Parameter.empty:
                default = keywords(algo)[name].default
                if not (algo is VPG and name == "n_episodes"):
                    assert cells[column] == f"`{default!r}`".replace("'", '"') or float(cells[column].strip("`")) == default


@pytest.mark.parametrize("keyword", ["gamma", "n_episodes"])
def test_keyword_table_fails_on_a_keyword_without_a_note(keyword: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyword VPG takes (from A2C/PPO or its own) with no note stops the generator, and so the docs' build."""
    tables = load_tables()
    monkeypatch.delitem(tables.KEYWORD_NOTES, keyword)
    with pytest.raises(ValueError, match=rf"no note in KEYWORD_NOTES for \['{keyword}'\]"):
        tables.keyword_table()


def test_learning_rate_schedule_as_a2c() -> None:
    """A learning-rate schedule is called with the progress remaining, as A2C calls it: same final rate, same calls."""
    final_rates, calls = [], []
    for algo in (VPG, A2C):
        seen = []

        def schedule(progress_remaining: float, seen=seen) -> float:
            seen.append(progress_remaining)
            return 0.01 * progress_remaining

        model = algo("MlpPolicy", "CartPole-v1", n_steps=16, learning_rate=schedule, policy_kwargs=dict(TINY_POLICY))
        model.learn(64)
        final_rates.append(model.policy.optimizer.param_groups[0]["lr"])
        calls.append(seen)
    assert calls[0] == calls[1]
    assert sorted(set(calls[0])) == [0.0, 0.25, 0.5, 0.75, 1.0]  # at the start, and after each rollout of 16 steps
    assert final_rates[0] == final_rates[1] == 0.0


@pytest.mark.parametrize("n_envs", [1, 3])
def test_n_steps_as_a2c(n_envs: int) -> None:
    """
    ``n_steps`` per env gives the same rollouts as A2C's, but the last stops at the budget: A2C completes its last
    rollout (7 steps per env), VPG stops at the first step that reaches ``total_timesteps``.
    """
    counts, updates = [], []
    for algo in (VPG, A2C):
        model = algo("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs), n_steps=7, policy_kwargs=dict(TINY_POLICY))
        model.learn(50)
        counts.append(model.num_timesteps)
        updates.append(model._n_updates + getattr(model, "_n_skipped_updates", 0))
    rollouts = -(-50 // (7 * n_envs))
    assert updates == [rollouts, rollouts]
    assert counts == [n_envs * -(-50 // n_envs), 7 * n_envs * rollouts]


def logged(model: VPG, total_timesteps: int) -> dict[str, list]:
    """Train with a recording logger; the values of every ``train/`` key dumped (each rollout dumps the update before)."""
    logger, recorder = recording_logger()
    model.set_logger(logger)
    model.learn(total_timesteps)
    keys = {key for record in recorder.records for key in record if key.startswith("train/")}
    return {key: recorder.values(key) for key in keys}


def counting_model(**kwargs) -> VPG:
    """VPG on 5-step episodes with rewards 1, 2, 3, 4, 5."""
    return VPG(
        "MlpPolicy", DummyVecEnv([lambda: Monitor(CountingEnv())]), n_steps=10, policy_kwargs=TINY_POLICY, seed=0, **kwargs
    )


def test_gamma_discounts_the_return() -> None:
    """``gamma`` discounts the return as in A2C/PPO: R(τ) = Σ_t γ^t r_t."""
    values = logged(counting_model(gamma=0.5), 30)
    expected = sum(0.5**t * (t + 1) for t in range(5))
    assert values["train/return_mean"] == [pytest.approx(expected)] * 2


def test_ent_coef_and_vf_coef_weigh_the_loss() -> None:
    """The loss is the policy-gradient loss − ``ent_coef`` · entropy + ``vf_coef`` · value loss, as in A2C."""
    values = logged(counting_model(ent_coef=0.1, vf_coef=0.7, baseline="value"), 30)
    for loss, pg, entropy, value_loss in zip(
        values["train/loss"],
        values["train/policy_gradient_loss"],
        values["train/entropy"],
        values["train/value_loss"],
        strict=True,
    ):
        assert loss == pytest.approx(pg - 0.1 * entropy + 0.7 * value_loss, rel=1e-5)
        assert value_loss > 0


def test_vf_coef_has_no_effect_without_value_baseline() -> None:
    """Without ``baseline="value"`` there is no value loss, so ``vf_coef`` changes nothing (documented as VPG meaning)."""
    weights = []
    for vf_coef in (0.0, 5.0):
        model = counting_model(vf_coef=vf_coef)
        model.learn(30)
        weights.append(model.policy.action_net.weight.detach().clone())
    assert th.equal(weights[0], weights[1])


def test_max_grad_norm_clips_the_step() -> None:
    """``max_grad_norm`` clips the gradient norm: one SGD step of lr 1 moves the weights by at most that norm."""
    steps = []
    for max_grad_norm in (None, 0.01):
        policy_kwargs = {**TINY_POLICY, "optimizer_class": th.optim.SGD}
        model = VPG(
            "MlpPolicy", DummyVecEnv([CountingEnv]), n_steps=5, learning_rate=1.0, max_grad_norm=max_grad_norm,
            policy_kwargs=policy_kwargs, seed=0,
        )  # fmt: skip
        before = th.cat([p.detach().flatten().clone() for p in model.policy.parameters()])
        model.learn(5)
        after = th.cat([p.detach().flatten() for p in model.policy.parameters()])
        steps.append(th.linalg.norm(after - before).item())
    assert steps[0] > 0.1
    assert steps[1] == pytest.approx(0.01, rel=1e-3)


def test_normalize_advantage() -> None:
    """``normalize_advantage`` gives the weights of log π mean 0 and std 1 over the batch, as in A2C/PPO."""
    values = logged(counting_model(normalize_advantage=True, reward_to_go=True), 30)
    assert values["train/advantage_mean"] == [pytest.approx(0.0, abs=1e-6)] * 2
    assert values["train/advantage_std"] == [pytest.approx(1.0, abs=1e-6)] * 2
    raw = logged(counting_model(reward_to_go=True), 30)
    assert raw["train/advantage_mean"][0] == pytest.approx(np.mean([15, 14, 12, 9, 5]))


class CountingBuffer(EpisodeRolloutBuffer):
    """A custom rollout buffer with a keyword of its own."""

    def __init__(self, *args, tag: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = tag


def test_rollout_buffer_class_and_kwargs() -> None:
    """``rollout_buffer_class``/``_kwargs`` build the buffer; a buffer that cuts episodes is refused with the reason."""
    model = counting_model(rollout_buffer_class=CountingBuffer, rollout_buffer_kwargs={"tag": "mine"})
    assert isinstance(model.rollout_buffer, CountingBuffer) and model.rollout_buffer.tag == "mine"
    model.learn(10)
    assert model._n_updates == 1
    with pytest.raises(TypeError, match=r"rollout_buffer_class must be a subclass of .*EpisodeRolloutBuffer"):
        counting_model(rollout_buffer_class=RolloutBuffer)


def test_stats_window_size() -> None:
    """``stats_window_size`` bounds the episodes kept for the rollout statistics."""
    model = counting_model(stats_window_size=3)
    model.learn(30)
    assert model.ep_info_buffer.maxlen == 3 and len(model.ep_info_buffer) == 3


def test_tensorboard_log_and_verbose(tmp_path, capsys) -> None:
    """``tensorboard_log`` writes VPG's scalars to a ``VPG_1`` run; ``verbose=1`` prints the device and the log table."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = counting_model(tensorboard_log=str(tmp_path), verbose=1, device="cpu")
    model.learn(30)
    (run,) = tmp_path.iterdir()
    assert run.name == "VPG_1"
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"rollout/ep_rew_mean", "train/policy_gradient_loss", "train/return_mean"} <= tags
    assert [event.value for event in accumulator.Scalars("rollout/ep_rew_mean")] == [15.0] * 3  # one dump per rollout
    printed = capsys.readouterr().out
    assert "Using cpu device" in printed and "policy_gradient_loss" in printed
