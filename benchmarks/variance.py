"""
What each variance reduction of VPG buys: the variance of the gradient estimate ĝ at a fixed θ, per estimator.

For each env, θ is fixed (a random one on the enumerable MDP, a partially trained one on CartPole-v1) and the value
head is fitted first, by regression on the reward-to-go of episodes sampled with π_θ, then frozen too. Then ``--batches``
batches of ``--episodes`` whole episodes are collected with π_θ, and every estimator takes VPG's own ``train()`` step
on each of them (plain SGD at learning rate 1, so the change of the policy network is ĝ), θ and V being put back after
each step. The table gives tr Cov(ĝ) (the sum of the variances of its components), its ratio to plain Eq. (4), and
tr Cov(ĝ) / ‖E[ĝ]‖², which does not depend on the scale of ĝ (normalisation and the mean baseline rescale it).
On the enumerable MDP it also gives the bias ‖mean(ĝ) − ∇J‖ / ‖∇J‖ against the exact ∇J.

    nice -n 10 python -m benchmarks variance --output benchmarks/results/variance.md
"""

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from benchmarks.common import add_seed_argument, markdown_grid
from sb3_vpg import VPG
from sb3_vpg.envs import make_enumerable_mdp
from sb3_vpg.estimators import estimator_for
from tests.exact_gradient import all_trajectories, expected_gradient

#: The estimators compared, from Eq. (4) to Spinning Up's VPG, as VPG's options.
ESTIMATORS: dict[str, dict[str, Any]] = {
    "plain Eq. (4): R(τ)": {},
    "reward-to-go": dict(reward_to_go=True),
    "R(τ) − batch mean": dict(baseline="mean"),
    "reward-to-go − batch mean": dict(reward_to_go=True, baseline="mean"),
    "R(τ) − V(s_t)": dict(baseline="value"),
    "reward-to-go − V(s_t) (GAE λ = 1)": dict(reward_to_go=True, baseline="value"),
    "GAE λ = 0.97": dict(reward_to_go=True, baseline="value", gae_lambda=0.97),
    "GAE λ = 0.97, normalised (Spinning Up)": dict(
        reward_to_go=True, baseline="value", gae_lambda=0.97, normalize_advantage=True
    ),
}
MDP_HORIZON = 3


def actor_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """
    θ: the parameters of the policy network and the action head (not the value branch).

    :param policy: VPG's policy
    """
    return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]


def use_options(model: VPG, options: dict[str, Any]) -> None:
    """
    Give the model the estimator that VPG's keywords ``options`` select, as its setup would.

    :param model: The model
    :param options: ``reward_to_go``, ``baseline``, ``gae_lambda`` and ``normalize_advantage``, VPG's defaults for
        those not given
    """
    model.estimator = estimator_for(options.get("reward_to_go", False), options.get("baseline"))
    model.rollout_buffer.gae_lambda = options.get("gae_lambda", 1.0)
    model.normalize_advantage = options.get("normalize_advantage", False)


def start_collecting(model: VPG) -> BaseCallback:
    """
    Set the model up for :func:`collect_batch` (envs reset, logger configured).

    :param model: The model
    :return: The callback to pass :func:`collect_batch`
    """
    _, callback = model._setup_learn(total_timesteps=10**12)
    return callback


def collect_batch(model: VPG, callback: BaseCallback) -> None:
    """
    Collect ``model.n_episodes`` whole episodes with the model's θ into its rollout buffer.

    :param model: The model, set up by :func:`start_collecting`
    :param callback: The callback :func:`start_collecting` returned
    """
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)  # type: ignore[arg-type]


def fit_value(model: VPG, callback: BaseCallback, n_batches: int, n_iterations: int, learning_rate: float) -> float:
    """
    Fit the value head to V^π of the model's fixed θ: full-batch Adam regression on the reward-to-go of ``n_batches``
    batches (as VPG's value loss, but run to convergence), a fifth of the steps held out.

    :param model: The model, set up by :func:`start_collecting`
    :param callback: The callback :func:`start_collecting` returned
    :param n_batches: Batches to collect and fit to
    :param n_iterations: Full-batch Adam steps
    :param learning_rate: Adam's learning rate
    :return: The explained variance on the held-out steps
    """
    observations, targets = [], []
    buffer = model.rollout_buffer
    for _ in range(n_batches):
        collect_batch(model, callback)
        observations.append(next(buffer.observation_chunks()))
        targets.append(buffer.returns[: buffer.pos].copy())
        buffer.discard_batch()
    inputs = th.cat(observations)  # type: ignore[arg-type]
    target = th.as_tensor(np.concatenate(targets), dtype=th.float32)
    n_fit = 4 * len(target) // 5
    value_parameters = [*model.policy.mlp_extractor.value_net.parameters(), *model.policy.value_net.parameters()]
    optimizer = th.optim.Adam(value_parameters, lr=learning_rate)
    for _ in range(n_iterations):
        loss = F.mse_loss(model.policy.predict_values(inputs[:n_fit]).flatten(), target[:n_fit])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with th.no_grad():
        predicted = model.policy.predict_values(inputs[n_fit:]).flatten().numpy()
    return float(explained_variance(predicted, target[n_fit:].numpy()))


def sample_gradients(model: VPG, callback: BaseCallback, n_batches: int) -> dict[str, np.ndarray]:
    """
    ĝ of every estimator on each of ``n_batches`` batches collected with the model's fixed θ (plain SGD, lr 1):
    each estimator takes VPG's ``train()`` step on its own copy of the batch, then θ and V are put back.

    :param model: The model, set up by :func:`start_collecting`, with the value head fitted
    :param callback: The callback :func:`start_collecting` returned
    :param n_batches: Batches to collect
    :return: For each estimator, an array (n_batches, n_parameters)
    """
    actor = actor_parameters(model.policy)
    start = copy.deepcopy(model.policy.state_dict())
    gradients: dict[str, list[np.ndarray]] = {name: [] for name in ESTIMATORS}
    for _ in range(n_batches):
        collect_batch(model, callback)
        collected = model.rollout_buffer
        for name, options in ESTIMATORS.items():
            model.rollout_buffer = copy.deepcopy(collected)
            use_options(model, options)
            before = th.cat([p.detach().flatten() for p in actor])
            model.train()
            gradients[name].append((th.cat([p.detach().flatten() for p in actor]) - before).double().numpy())
            model.policy.load_state_dict(start)
    return {name: np.array(values) for name, values in gradients.items()}


def sgd_model(env: Any, n_episodes: int, seed: int, net_arch: list[int] | None) -> VPG:
    """
    VPG taking one plain SGD step of learning rate 1 per batch, so that the parameter change is ĝ.

    :param env: The env, or its id
    :param n_episodes: Episodes per batch
    :param seed: The seed of the env and the model
    :param net_arch: The policy's ``net_arch``; ``None``: SB3's default
    """
    policy_kwargs: dict[str, Any] = dict(optimizer_class=th.optim.SGD)
    if net_arch is not None:
        policy_kwargs["net_arch"] = net_arch
    return VPG("MlpPolicy", env, learning_rate=1.0, n_episodes=n_episodes, policy_kwargs=policy_kwargs, seed=seed)


def enumerable_mdp_model(n_episodes: int, seed: int) -> tuple[VPG, np.ndarray]:
    """
    The enumerable MDP's model at a random θ (as in the tests), and the exact ∇J there.

    :param n_episodes: Episodes per batch
    :param seed: The seed of the model and of θ
    """
    model = sgd_model(make_enumerable_mdp(MDP_HORIZON), n_episodes, seed, net_arch=[])
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        for parameter in model.policy.action_net.parameters():
            parameter.copy_(th.randn(parameter.shape, generator=generator))
    exact = expected_gradient(model.policy, all_trajectories(MDP_HORIZON), lambda t: t.discounted_return(1.0))
    return model, exact.double().numpy()


def cartpole_model(n_episodes: int, seed: int, pretrain_timesteps: int) -> tuple[VPG, float]:
    """
    CartPole-v1's model at θ after ``pretrain_timesteps`` of VPG's defaults, and its mean episode length there.

    :param n_episodes: Episodes per batch
    :param seed: The seed of the env and the models
    :param pretrain_timesteps: Timesteps of VPG's defaults before θ is fixed
    """
    trained = VPG("MlpPolicy", "CartPole-v1", seed=seed).learn(pretrain_timesteps)
    model = sgd_model("CartPole-v1", n_episodes, seed, net_arch=None)
    model.policy.load_state_dict(trained.policy.state_dict())
    assert trained.ep_info_buffer is not None
    return model, float(np.mean([info["l"] for info in trained.ep_info_buffer]))


def summarise(gradients: dict[str, np.ndarray], exact: np.ndarray | None, n_chunks: int = 10) -> dict[str, dict[str, float]]:
    """
    tr Cov(ĝ) with a standard error from ``n_chunks`` chunks of batches, its ratio to plain, and the bias.

    :param gradients: The samples of ĝ of each estimator, as :func:`sample_gradients` returns them
    :param exact: The exact ∇J; ``None`` where it is not known (the bias is then NaN)
    :param n_chunks: Chunks of batches for the standard error
    :return: For each estimator: ``trace``, ``trace_se``, ``relative``, ``bias`` and ``ratio``
    """
    rows = {}
    for name, samples in gradients.items():
        trace = float(samples.var(axis=0, ddof=1).sum())
        chunk_traces = [chunk.var(axis=0, ddof=1).sum() for chunk in np.array_split(samples, n_chunks)]
        mean = samples.mean(axis=0)
        rows[name] = dict(
            trace=trace,
            trace_se=float(np.std(chunk_traces, ddof=1) / np.sqrt(n_chunks)),
            relative=trace / float(mean @ mean),
            bias=float(np.linalg.norm(mean - exact) / np.linalg.norm(exact)) if exact is not None else float("nan"),
        )
    plain = rows[next(iter(rows))]["trace"]
    for row in rows.values():
        row["ratio"] = row["trace"] / plain
    return rows


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """
    The markdown table: one row per estimator, the columns of each env side by side.

    :param results: For each env, the rows of :func:`summarise`
    """
    envs = list(results)
    columns = ["estimator", *(column for env in envs for column in (f"{env}: tr Cov(ĝ)", "ratio", "tr Cov / ‖E ĝ‖²"))]
    rows = []
    for name in ESTIMATORS:
        cells = [name]
        for env in envs:
            row = results[env][name]
            cells += [f"{row['trace']:.4g} ± {row['trace_se']:.2g}", f"{row['ratio']:.3f}", f"{row['relative']:.3g}"]
        rows.append([*cells, f"{results[envs[0]][name]['bias']:.3f}"])
    return markdown_grid([*columns, "MDP bias"], rows).rstrip("\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``variance``.

    :param parser: Its parser
    """
    parser.add_argument("--episodes", type=int, default=16, help="episodes per batch (m)")
    parser.add_argument("--mdp-batches", type=int, default=1000)
    parser.add_argument("--cartpole-batches", type=int, default=100)
    parser.add_argument("--pretrain-timesteps", type=int, default=20_000, help="VPG defaults on CartPole before θ is fixed")
    parser.add_argument("--fit-batches", type=int, default=20, help="batches whose reward-to-go V is fitted to")
    parser.add_argument("--fit-iterations", type=int, default=2000, help="full-batch Adam steps of the value regression")
    parser.add_argument("--fit-learning-rate", type=float, default=1e-2)
    add_seed_argument(parser, of="the envs, the models and θ")
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this markdown file")


def main(args: argparse.Namespace) -> None:
    """
    Sample ĝ of every estimator on the enumerable MDP and on CartPole-v1, and print (and write) the table.

    :param args: The options of ``variance``
    """
    th.set_num_threads(1)

    start = time.time()
    results, notes = {}, []
    mdp, exact = enumerable_mdp_model(args.episodes, args.seed)
    callback = start_collecting(mdp)
    explained = fit_value(mdp, callback, args.fit_batches, args.fit_iterations, args.fit_learning_rate)
    notes.append(f"enumerable MDP (H = {MDP_HORIZON}): random θ, V fitted (held-out explained variance {explained:.2f})")
    results["MDP"] = summarise(sample_gradients(mdp, callback, args.mdp_batches), exact)
    print(f"# enumerable MDP done after {time.time() - start:.0f} s", flush=True)

    cartpole, mean_length = cartpole_model(args.episodes, args.seed, args.pretrain_timesteps)
    callback = start_collecting(cartpole)
    explained = fit_value(cartpole, callback, args.fit_batches, args.fit_iterations, args.fit_learning_rate)
    notes.append(
        f"CartPole-v1: θ after {args.pretrain_timesteps} steps of VPG's defaults (mean episode length {mean_length:.0f}), "
        f"V fitted (held-out explained variance {explained:.2f})"
    )
    print(f"# CartPole θ and V ready after {time.time() - start:.0f} s", flush=True)
    results["CartPole"] = summarise(sample_gradients(cartpole, callback, args.cartpole_batches), None)

    report = "\n".join(
        [
            table(results),
            "",
            f"m = {args.episodes} episodes per batch; {args.mdp_batches} batches (MDP), {args.cartpole_batches} (CartPole). "
            + "; ".join(notes)
            + f". {time.time() - start:.0f} s.",
        ]
    )
    print(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")
