"""
How well the value head is fitted with and without ``n_value_steps``: the explained variance of V(s) on the last
batch after training VPG (reward-to-go, learned baseline, normalised advantages) on CartPole-v1.

    python benchmarks/value_fitting.py --n-value-steps 0 20 80 --timesteps 50000 --seed 0
"""

import argparse

import torch as th

from sb3_vpg import VPG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-value-steps", type=int, nargs="+", default=[0, 20, 80])
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)

    print("| n_value_steps | explained variance | value loss |")
    print("|---|---|---|")
    for n_value_steps in args.n_value_steps:
        options = dict(reward_to_go=True, baseline="value", normalize_advantage=True, n_value_steps=n_value_steps)
        model = VPG("MlpPolicy", "CartPole-v1", seed=args.seed, **options).learn(args.timesteps)
        logged = model.logger.name_to_value
        print(f"| {n_value_steps} | {logged['train/explained_variance']:.3f} | {logged['train/value_loss']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
