"""
Train VPG data-parallel with torchrun: several processes (ranks) each step their own envs, and every update is the one
a single process would compute over all their episodes. The same script runs in one process, as it is.

    torchrun --nproc-per-node 2 examples/distributed_training.py --env CartPole-v1 --timesteps 100000
    # two machines (or two agents on one): run on each, with its --node-rank
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        examples/distributed_training.py --env CartPole-v1
    # a worker that dies restarts the job from the last checkpoint
    torchrun --nproc-per-node 2 --max-restarts 3 examples/distributed_training.py --env CartPole-v1

Rank 0 logs to TensorBoard (``--logdir``) and saves: a checkpoint (the model's zip and the VecNormalize statistics) every
``--save-freq`` timesteps in ``--folder``, and the final model. When the folder holds a checkpoint, every rank resumes
from the latest one that is whole (a checkpoint cut short by a kill is passed over), so a job restarted by torchrun's
``--max-restarts``, or started again by hand, goes on where it left off.
"""

import argparse
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_vpg import VPG, distributed

#: SB3's CheckpointCallback names: the model, and the VecNormalize statistics of the same step
MODEL_NAME = re.compile(r"^vpg_(\d+)_steps\.zip$")


def latest_checkpoint(folder: Path) -> tuple[Path, Path] | None:
    """The zip and the VecNormalize statistics of the latest checkpoint in ``folder`` that loads whole, if any."""
    steps = sorted((int(m.group(1)) for p in folder.glob("vpg_*_steps.zip") if (m := MODEL_NAME.match(p.name))), reverse=True)
    for step in steps:
        model, statistics = folder / f"vpg_{step}_steps.zip", folder / f"vpg_vecnormalize_{step}_steps.pkl"
        try:
            with zipfile.ZipFile(model) as archive:
                if archive.testzip() is None and statistics.is_file():
                    with statistics.open("rb") as file:
                        pickle.load(file)
                    return model, statistics
        except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError):
            continue  # cut short by a kill while it was written
    return None


def train(
    make_env: Callable[[], gym.Env] | str,
    timesteps: int,
    folder: Path,
    save_freq: int,
    n_envs: int = 2,
    seed: int = 0,
    logdir: str | None = None,
    callbacks: list[BaseCallback] | None = None,
    norm_obs: bool = True,
) -> VPG:
    """
    Train, or resume from the latest checkpoint in ``folder``, until ``timesteps`` timesteps (of all ranks together).

    :param make_env: An env id, or a function that makes the env
    :param timesteps: The budget, all ranks together
    :param folder: Where rank 0 writes its checkpoints and the final model
    :param save_freq: Timesteps (of all ranks) between checkpoints
    :param n_envs: Envs on each rank
    :param seed: The seed (each rank's envs are seeded apart)
    :param logdir: TensorBoard folder (rank 0 writes it)
    :param callbacks: More callbacks, on every rank
    :param norm_obs: Whether VecNormalize normalises the observations (it normalises the rewards in any case)
    """
    venv = make_vec_env(make_env, n_envs=n_envs)
    checkpoint = latest_checkpoint(folder)
    if checkpoint is None:
        env = VecNormalize(venv, norm_obs=norm_obs)
        model = VPG("MlpPolicy", env, n_episodes=8, reward_to_go=True, baseline="value", seed=seed, tensorboard_log=logdir)
    else:
        env = VecNormalize.load(str(checkpoint[1]), venv)
        model = VPG.load(checkpoint[0], env=env, tensorboard_log=logdir)
        print(f"rank {distributed.rank()}: resuming from {checkpoint[0].name} (update {model._n_updates})", flush=True)
    callbacks = list(callbacks or [])
    if distributed.is_main_process():
        # SB3's CheckpointCallback counts its own calls, one per step of this rank's envs.
        every = max(save_freq // (n_envs * distributed.world_size()), 1)
        callbacks.append(CheckpointCallback(every, str(folder), name_prefix="vpg", save_vecnormalize=True))
    model.learn(timesteps - model.num_timesteps, callback=callbacks, reset_num_timesteps=checkpoint is None)
    if distributed.is_main_process():
        model.save(folder / "vpg_final")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=Path("checkpoints"))
    parser.add_argument("--save-freq", type=int, default=10_000)
    parser.add_argument("--n-envs", type=int, default=2, help="envs on each rank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs")
    args = parser.parse_args()
    model = train(args.env, args.timesteps, args.folder, args.save_freq, args.n_envs, args.seed, args.logdir)
    if distributed.is_main_process():
        print(f"{model.num_timesteps} timesteps, {model._n_updates} updates on {distributed.world_size()} rank(s)")


if __name__ == "__main__":
    main()
