"""
GAIL (the ``imitation`` library) with VPG as its generator, at VPG's defaults: imitation sizes each round from the
generator's ``n_steps``, which VPG sets from its batch of episodes (⌈n_episodes / n_envs⌉ × the env's time limit).

``imitation`` 1.0.1 pins stable-baselines3~=2.2.1 and gymnasium~=0.29, older than sb3-vpg needs; GAIL runs with the
newer ones, so install it without its pins:

    pip install --no-deps imitation==1.0.1
    python examples/gail_with_vpg.py --expert-timesteps 50000 --rounds 20

The expert is VPG trained on CartPole-v1's true reward; the learner sees only the expert's demonstrations.
"""

import argparse

import numpy as np
from imitation.algorithms.adversarial.gail import GAIL
from imitation.data import rollout
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util.networks import RunningNorm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_vpg import VPG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expert-timesteps", type=int, default=50_000, help="the expert's training")
    parser.add_argument("--demo-timesteps", type=int, default=2_000, help="steps the expert demonstrates, at least")
    parser.add_argument("--rounds", type=int, default=20, help="GAIL rounds (each: n_steps × n_envs generator steps)")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    venv = make_vec_env("CartPole-v1", n_envs=args.n_envs, seed=args.seed, wrapper_class=RolloutInfoWrapper)
    expert = VPG("MlpPolicy", venv, reward_to_go=True, baseline="mean", seed=args.seed).learn(args.expert_timesteps)
    rng = np.random.default_rng(args.seed)
    demonstrations = rollout.rollout(expert, venv, rollout.make_sample_until(min_timesteps=args.demo_timesteps), rng=rng)

    learner = VPG("MlpPolicy", venv, seed=args.seed)
    reward_net = BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
    gail = GAIL(
        demonstrations=demonstrations,
        demo_batch_size=256,
        gen_replay_buffer_capacity=2048,
        n_disc_updates_per_round=4,
        venv=venv,
        gen_algo=learner,
        reward_net=reward_net,
        allow_variable_horizon=True,  # CartPole's episodes end when the pole falls
    )
    print(f"VPG's n_steps: {learner.n_steps}; generator steps per GAIL round: {gail.gen_train_timesteps}")
    gail.train(args.rounds * gail.gen_train_timesteps)

    for name, model in (("expert", expert), ("learner", learner)):
        mean_return, std_return = evaluate_policy(model, venv, n_eval_episodes=10)
        print(f"{name}: {mean_return:.1f} ± {std_return:.1f} over 10 episodes, {model.num_timesteps} timesteps trained")


if __name__ == "__main__":
    main()
