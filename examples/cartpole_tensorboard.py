"""
Train VPG (plain Eq. 4, the default) on CartPole-v1 and watch it in TensorBoard.

    python examples/cartpole_tensorboard.py --timesteps 100000
    tensorboard --logdir runs/

The run appears as VPG_1 (VPG_2, ... for the next ones), with train/return_mean, train/policy_gradient_loss,
train/n_episodes, rollout/ep_rew_mean and the rest; the trained model is saved to ``--save``.
"""

import argparse

from stable_baselines3.common.evaluation import evaluate_policy

from sb3_vpg import VPG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--save", default="vpg_cartpole")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = VPG("MlpPolicy", "CartPole-v1", tensorboard_log=args.logdir, seed=args.seed, verbose=1)
    model.learn(total_timesteps=args.timesteps)
    model.save(args.save)

    mean_return, std_return = evaluate_policy(VPG.load(args.save), model.get_env(), n_eval_episodes=10)
    print(f"Evaluation over 10 episodes: {mean_return:.1f} ± {std_return:.1f}")


if __name__ == "__main__":
    main()
