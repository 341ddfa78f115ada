"""
Swap VPG into a training pipeline written for PPO: only the class changes.

The pipeline is the usual SB3 one: ``make_vec_env`` + ``VecNormalize``, ``EvalCallback`` (best model and evaluation
log), ``CheckpointCallback`` (with the VecNormalize statistics), TensorBoard, ``save``/``load`` with the statistics
saved next to the model, and ``evaluate_policy`` on the reloaded model.

    python examples/ppo_pipeline_swap.py                       # VPG, the line ALGO = VPG below
    python examples/ppo_pipeline_swap.py --algo PPO            # the pipeline as it was written
    tensorboard --logdir runs/ppo_pipeline_swap/tensorboard

The keywords the pipeline passes (``learning_rate``, ``n_steps``, ``gamma``, ``ent_coef``, ``max_grad_norm``,
``policy_kwargs``, ``tensorboard_log``, ``seed``, ``verbose``) mean the same for both classes. PPO-only keywords
(``batch_size``, ``n_epochs``, ``clip_range``, ...) would be refused by VPG with a TypeError saying why: see the
keyword table of the docs, https://sb3-vpg.readthedocs.io/en/latest/guide/swap_in.html.
"""

import argparse
from pathlib import Path
from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_vpg import VPG

ALGO = VPG  # the pipeline was written with: ALGO = PPO


def run_pipeline(
    algo: type = ALGO,
    env_id: str = "CartPole-v1",
    total_timesteps: int = 100_000,
    n_envs: int = 4,
    n_steps: int = 256,
    net_arch: tuple[int, ...] = (64, 64),
    eval_freq: int = 10_000,
    n_eval_episodes: int = 10,
    workdir: str | Path = "runs/ppo_pipeline_swap",
    seed: int = 0,
    verbose: int = 0,
) -> dict[str, Any]:
    """
    Train ``algo`` with the PPO pipeline, save it, reload it and evaluate it.

    :return: ``mean_reward``, ``std_reward`` (of the reloaded model), ``model`` (trained), ``loaded`` (reloaded),
        ``eval_env`` (the reloaded VecNormalize env) and ``workdir``
    """
    workdir = Path(workdir)
    env = VecNormalize(make_vec_env(env_id, n_envs=n_envs, seed=seed), norm_obs=True, norm_reward=True)
    # The evaluation env shares the training statistics (EvalCallback syncs them) and reports raw rewards.
    eval_env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed + 1000), training=False, norm_reward=False)

    model = algo(
        "MlpPolicy",
        env,
        learning_rate=1e-3,
        n_steps=n_steps,
        gamma=0.99,
        ent_coef=0.0,
        max_grad_norm=0.5,
        policy_kwargs={"net_arch": list(net_arch)},
        tensorboard_log=str(workdir / "tensorboard"),
        seed=seed,
        verbose=verbose,
    )
    callback = CallbackList(
        [
            EvalCallback(
                eval_env,
                n_eval_episodes=n_eval_episodes,
                eval_freq=max(eval_freq // n_envs, 1),
                best_model_save_path=str(workdir / "best"),
                log_path=str(workdir / "eval"),
            ),
            CheckpointCallback(
                save_freq=max(eval_freq // n_envs, 1),
                save_path=str(workdir / "checkpoints"),
                name_prefix=algo.__name__.lower(),
                save_vecnormalize=True,
            ),
        ]
    )
    model.learn(total_timesteps=total_timesteps, callback=callback)
    model.save(workdir / "model")
    env.save(str(workdir / "vecnormalize.pkl"))

    # Reload the model and its normalisation statistics, as a deployment script would.
    reloaded_env = VecNormalize.load(str(workdir / "vecnormalize.pkl"), make_vec_env(env_id, n_envs=1, seed=seed + 2000))
    reloaded_env.training = False
    reloaded_env.norm_reward = False
    loaded = algo.load(workdir / "model", env=reloaded_env)
    mean_reward, std_reward = evaluate_policy(loaded, reloaded_env, n_eval_episodes=n_eval_episodes)
    return {
        "mean_reward": mean_reward,
        "std_reward": std_reward,
        "model": model,
        "loaded": loaded,
        "eval_env": reloaded_env,
        "workdir": workdir,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["VPG", "PPO"], default=ALGO.__name__)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=256)
    parser.add_argument("--net-arch", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--eval-freq", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--workdir", default="runs/ppo_pipeline_swap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    result = run_pipeline(
        algo={"VPG": VPG, "PPO": PPO}[args.algo],
        env_id=args.env,
        total_timesteps=args.timesteps,
        n_envs=args.n_envs,
        n_steps=args.n_steps,
        net_arch=tuple(args.net_arch),
        eval_freq=args.eval_freq,
        n_eval_episodes=args.eval_episodes,
        workdir=args.workdir,
        seed=args.seed,
        verbose=1,
    )
    print(
        f"{args.algo} on {args.env}: {result['mean_reward']:.1f} ± {result['std_reward']:.1f}",
        f"over {args.eval_episodes} episodes",
    )


if __name__ == "__main__":
    main()
