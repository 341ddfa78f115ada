"""
How VPG's defaults were chosen: plain Eq. (4) on CartPole-v1 over a grid of learning rates and episodes per update.

Each run trains for ``--budget`` steps and evaluates the deterministic policy on a separate env every ``--eval-every``
steps; the table gives, per configuration, the final evaluation return over seeds and how many seeds *hold* it
(every evaluation in the last ``--hold-window`` steps at or above ``--threshold``).

    python -m benchmarks defaults --lrs 1e-3 3e-3 --episodes 8 16 --seeds 0 1 2
"""

import argparse
import itertools
import time

import gymnasium as gym
import torch as th

from benchmarks.common import (
    EVAL_EPISODES,
    EVAL_SEED_OFFSET,
    HOLD_WINDOW,
    deterministic_return,
    holds_threshold,
    markdown_header,
    markdown_row,
)
from benchmarks.statistics import per_env_estimates
from sb3_vpg import VPG

ENV_ID = "CartPole-v1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``defaults``.

    :param parser: Its parser
    """
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3], help="learning rates (default: %(default)s)")
    parser.add_argument("--episodes", type=int, nargs="+", default=[8, 16], help="n_episodes (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=100_000, help="training timesteps per run (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=10_000, help="timesteps between evaluations (default: %(default)s)")
    parser.add_argument(
        "--hold-window", type=int, default=HOLD_WINDOW, help="timesteps at the end a seed must hold (default: %(default)s)"
    )
    parser.add_argument(
        "--threshold", type=float, default=gym.spec(ENV_ID).reward_threshold, help="return to hold (default: %(default)s)"
    )


def run(learning_rate: float, n_episodes: int, seed: int, budget: int, eval_every: int) -> list[tuple[int, float]]:
    """
    Train one seed of plain Eq. (4) on CartPole-v1, evaluating it after every ``eval_every`` timesteps of training.

    :param learning_rate: VPG's learning rate
    :param n_episodes: VPG's episodes per update
    :param seed: The seed of the env and the model
    :param budget: Training timesteps
    :param eval_every: Training timesteps between two evaluations
    :return: ``(timesteps, mean deterministic evaluation return)`` of each evaluation
    """
    model = VPG("MlpPolicy", ENV_ID, learning_rate=learning_rate, n_episodes=n_episodes, seed=seed)
    eval_env = gym.make(ENV_ID)
    eval_env.reset(seed=EVAL_SEED_OFFSET + seed)
    curve = []
    while model.num_timesteps < budget:
        model.learn(eval_every, reset_num_timesteps=model.num_timesteps == 0)
        curve.append((model.num_timesteps, deterministic_return(model, eval_env, EVAL_EPISODES)[0]))
    return curve


def main(args: argparse.Namespace) -> None:
    """
    Train every configuration on every seed, printing each seed's curve and a table row per configuration.

    :param args: The options of ``defaults``
    """
    th.set_num_threads(1)
    columns = ["learning_rate", "n_episodes", "final return, mean [95% CI]", "seeds holding ≥ threshold", "minutes"]
    print(markdown_header(columns))
    for learning_rate, n_episodes in itertools.product(args.lrs, args.episodes):
        start = time.time()
        finals, holding = [], 0
        for seed in args.seeds:
            curve = run(learning_rate, n_episodes, seed, args.budget, args.eval_every)
            finals.append(curve[-1][1])
            holding += holds_threshold(curve, args.threshold, args.hold_window)
            returns = " ".join(f"{ret:.0f}" for _, ret in curve)
            print(f"# lr={learning_rate} m={n_episodes} seed={seed}: {returns}", flush=True)
        minutes = (time.time() - start) / 60
        _, mean = per_env_estimates({"finals": finals})["finals"]
        cells = [f"{learning_rate:g}", str(n_episodes), str(mean)]
        print(markdown_row([*cells, f"{holding}/{len(args.seeds)}", f"{minutes:.1f}"]), flush=True)
