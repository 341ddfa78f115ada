"""
One trial run of VPG with the hyperparameters given on the command line, for choosing the entries of
``sb3_vpg/hyperparams/vpg.yml`` before the suite validates them on 5 seeds. Every ``--eval-every`` timesteps it
prints the mean return of 10 deterministic episodes on a separate env (what the suite measures) next to the mean
return and length of the last 100 training episodes (the stochastic policy, SB3's ``rollout/ep_rew_mean``) and the
mean entropy of the policy in the last update (``train/entropy``): how far the greedy policy the evaluation runs can
be from the stochastic one VPG trains.

    python -m benchmarks trial LunarLander-v3 --timesteps 300000 --n-envs 4 --seed 0 --eval-every 15000 \\
        --hyperparams '{"n_steps": 250, "learning_rate": 1e-3, "gamma": 0.99, "reward_to_go": true,
                        "baseline": "value", "gae_lambda": 0.97, "normalize_advantage": true,
                        "n_value_steps": 80, "max_grad_norm": 0.5}'

``--normalize-reward`` wraps the training envs in ``VecNormalize(norm_obs=False, norm_reward=True)`` (rl-zoo3's
``normalize: "dict(norm_obs=False, norm_reward=True)"``); ``policy_kwargs`` may be given as a string and
``learning_rate`` as a schedule (``"lin_1e-3"``: linear decay from 1e-3 to 0), as in rl-zoo3's files.
"""

import argparse
import json

import numpy as np
import torch as th
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks.common import TRIAL_EVAL_SEED_OFFSET, DeterministicEvaluation, add_seed_argument
from sb3_vpg import VPG

#: The final line averages the last this many evaluations
LAST_EVALUATIONS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``trial``.

    :param parser: Its parser
    """
    parser.add_argument("env_id", help="the gymnasium id of the env")
    parser.add_argument("--timesteps", type=int, default=300_000, help="training timesteps (default: %(default)s)")
    parser.add_argument("--n-envs", type=int, default=4, help="training envs (default: %(default)s)")
    add_seed_argument(parser)
    parser.add_argument("--eval-every", type=int, default=15_000, help="timesteps between evaluations (default: %(default)s)")
    parser.add_argument("--hyperparams", type=json.loads, default={}, help="VPG's keyword arguments, as a JSON object")
    parser.add_argument("--normalize-reward", action="store_true", help="normalise the training envs' rewards")


def main(args: argparse.Namespace) -> None:
    """
    Train, printing a line per evaluation, then the final evaluation and the mean of the last ones.

    :param args: The options of ``trial``
    """
    th.set_num_threads(1)
    hyperparams = dict(args.hyperparams)
    if isinstance(hyperparams.get("policy_kwargs"), str):
        hyperparams["policy_kwargs"] = eval(hyperparams["policy_kwargs"])
    # rl-zoo3's schedule strings ("lin_1e-3": linear decay to 0), read as its ExperimentManager reads them
    hyperparams = ExperimentManager._preprocess_schedules(hyperparams)
    env = make_vec_env(args.env_id, n_envs=args.n_envs, seed=args.seed)
    eval_env = make_vec_env(args.env_id, n_envs=1, seed=args.seed + TRIAL_EVAL_SEED_OFFSET)
    if args.normalize_reward:
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=hyperparams.get("gamma", 0.99))
        # Wrapped as rl-zoo3 wraps its evaluation env: the statistics follow the training env's, the rewards stay raw.
        eval_env = VecNormalize(eval_env, training=False, norm_obs=False, norm_reward=False)
    model = VPG("MlpPolicy", env, seed=args.seed, **hyperparams)
    evaluation = DeterministicEvaluation(eval_env, args.eval_every, before_and_after=False, verbose=1)
    model.learn(args.timesteps, callback=evaluation)
    returns = [mean_return for _, mean_return, _ in evaluation.curve]
    last = returns[-LAST_EVALUATIONS:]
    print(f"final eval {returns[-1]:.1f}, mean of the last {len(last)} evaluations {np.mean(last):.1f}")
