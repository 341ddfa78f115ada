"""
How VPG's defaults were chosen: plain Eq. (4) on CartPole-v1 over a grid of learning rates and episodes per update.

Each run trains for ``--budget`` steps and evaluates the deterministic policy on a separate env every ``--eval-every``
steps; the table gives, per configuration, the final evaluation return over seeds and how many seeds *hold* it
(every evaluation in the last ``--hold-window`` steps at or above ``--threshold``).

    python benchmarks/cartpole_defaults.py --lrs 1e-3 3e-3 --episodes 8 16 --seeds 0 1 2
"""

import argparse
import itertools
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_vpg import VPG


def run(learning_rate: float, n_episodes: int, seed: int, budget: int, eval_every: int) -> list[tuple[int, float]]:
    """Train one seed; return (timesteps, mean deterministic evaluation return) every ``eval_every`` steps."""
    model = VPG("MlpPolicy", "CartPole-v1", learning_rate=learning_rate, n_episodes=n_episodes, seed=seed)
    eval_env = gym.make("CartPole-v1")
    eval_env.reset(seed=10_000 + seed)
    curve = []
    while model.num_timesteps < budget:
        model.learn(eval_every, reset_num_timesteps=model.num_timesteps == 0)
        mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
        curve.append((model.num_timesteps, mean_return))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    parser.add_argument("--episodes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--hold-window", type=int, default=30_000)
    parser.add_argument("--threshold", type=float, default=475.0)
    args = parser.parse_args()
    th.set_num_threads(1)

    print("| learning_rate | n_episodes | final return (mean ± std) | seeds holding ≥ threshold | minutes |")
    print("|---|---|---|---|---|")
    for learning_rate, n_episodes in itertools.product(args.lrs, args.episodes):
        start = time.time()
        finals, holding = [], 0
        for seed in args.seeds:
            curve = run(learning_rate, n_episodes, seed, args.budget, args.eval_every)
            finals.append(curve[-1][1])
            window = [ret for steps, ret in curve if steps > curve[-1][0] - args.hold_window]
            holding += min(window) >= args.threshold
            returns = " ".join(f"{ret:.0f}" for _, ret in curve)
            print(f"# lr={learning_rate} m={n_episodes} seed={seed}: {returns}", flush=True)
        minutes = (time.time() - start) / 60
        print(
            f"| {learning_rate:g} | {n_episodes} | {np.mean(finals):.1f} ± {np.std(finals):.1f} | "
            f"{holding}/{len(args.seeds)} | {minutes:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
