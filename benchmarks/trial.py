"""
One trial run of VPG with the hyperparameters given on the command line, for choosing the entries of
``sb3_vpg/hyperparams/vpg.yml`` before the benchmark validates them on 5 seeds. Every ``--eval-every`` timesteps it
prints the mean return of 10 deterministic episodes on a separate env (what the benchmark measures) next to the mean
return and length of the last 100 training episodes (the stochastic policy, SB3's ``rollout/ep_rew_mean``).

    python benchmarks/trial.py LunarLander-v3 --timesteps 300000 --n-envs 4 --seed 0 --eval-every 15000 \\
        --hyperparams '{"n_steps": 250, "learning_rate": 1e-3, "gamma": 0.99, "reward_to_go": true,
                        "baseline": "value", "gae_lambda": 0.97, "normalize_advantage": true,
                        "n_value_steps": 80, "max_grad_norm": 0.5}'

``--normalize-reward`` wraps the training envs in ``VecNormalize(norm_obs=False, norm_reward=True)`` (rl-zoo3's
``normalize: "dict(norm_obs=False, norm_reward=True)"``); ``policy_kwargs`` may be given as a string, as in rl-zoo3's
files.
"""

import argparse
import json

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_vpg import VPG

#: Added to the seed to seed the evaluation env
EVAL_SEED_OFFSET = 1000


class PrintEvaluation(BaseCallback):
    """
    Print the deterministic evaluation and the training episodes' mean return every ``eval_every`` timesteps.

    :param eval_env: The evaluation env
    :param eval_every: Timesteps between two evaluations
    """

    def __init__(self, eval_env: VecEnv, eval_every: int):
        super().__init__()
        self.eval_env = eval_env
        self.eval_every = eval_every
        self.next_evaluation = eval_every
        #: The mean deterministic return of each evaluation
        self.returns: list[float] = []

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_evaluation:
            self.next_evaluation += self.eval_every
            mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=10, deterministic=True)
            self.returns.append(float(mean))
            episodes = self.model.ep_info_buffer
            train_return = np.mean([episode["r"] for episode in episodes]) if episodes else float("nan")
            train_length = np.mean([episode["l"] for episode in episodes]) if episodes else float("nan")
            line = f"{self.num_timesteps:>8d}  eval {mean:8.1f}  train {train_return:8.1f}  length {train_length:5.0f}"
            print(line, flush=True)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id")
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=15_000)
    parser.add_argument("--hyperparams", type=json.loads, default={}, help="VPG's keyword arguments, as a JSON object")
    parser.add_argument("--normalize-reward", action="store_true")
    args = parser.parse_args()
    th.set_num_threads(1)

    hyperparams = dict(args.hyperparams)
    if isinstance(hyperparams.get("policy_kwargs"), str):
        hyperparams["policy_kwargs"] = eval(hyperparams["policy_kwargs"])
    env = make_vec_env(args.env_id, n_envs=args.n_envs, seed=args.seed)
    eval_env = make_vec_env(args.env_id, n_envs=1, seed=args.seed + EVAL_SEED_OFFSET)
    if args.normalize_reward:
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=hyperparams.get("gamma", 0.99))
    model = VPG("MlpPolicy", env, seed=args.seed, **hyperparams)
    evaluation = PrintEvaluation(eval_env, args.eval_every)
    model.learn(args.timesteps, callback=evaluation)
    last = evaluation.returns[-3:]
    print(f"final eval {evaluation.returns[-1]:.1f}, mean of the last {len(last)} evaluations {np.mean(last):.1f}")


if __name__ == "__main__":
    main()
