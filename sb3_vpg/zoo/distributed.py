"""
rl-zoo3's ``train`` under torchrun: ``torchrun --nproc-per-node N -m sb3_vpg.zoo train --algo vpg --env ENV ...`` trains
one model on N ranks. The entry's ``n_envs`` is split across the ranks, so that the batch (``n_steps`` per env over
all envs, or ``n_episodes``) is the entry's; rank 0 writes the one run folder (its TensorBoard log, monitor file,
evaluations, checkpoints and the saved model), the other ranks write into scratch folders that are removed at exit.
"""

import atexit
import shutil
import tempfile
from typing import Any

from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_vpg import distributed


def split_envs(n_envs: int, batch_in_steps: bool, rank: int, world_size: int) -> int:
    """
    This rank's share of an entry's ``n_envs``: ⌊n_envs / N⌋, one more for rank r < n_envs mod N. With the batch in
    episodes, a rank has at least one env (``n_episodes`` is the batch whatever the envs); with the batch in steps
    (``n_steps`` per env), the envs must go round.

    :param n_envs: The entry's number of envs
    :param batch_in_steps: Whether the entry gives the batch as ``n_steps``
    :param rank: This rank
    :param world_size: The number of ranks
    """
    if n_envs < world_size and batch_in_steps:
        raise ValueError(
            f"The entry's batch is n_steps per env over n_envs={n_envs} envs, which cannot be shared by {world_size} "
            f"ranks (each needs an env): run on at most {n_envs} ranks, or give more envs (--hyperparams n_envs:K)."
        )
    share, remainder = divmod(n_envs, world_size)
    return max(1, share + int(rank < remainder))


class DistributedExperimentManager(ExperimentManager):
    """rl-zoo3's ``ExperimentManager`` for one rank of a torchrun job (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.n_envs_of_ranks = 1
        if self.rank != 0:
            scratch = tempfile.mkdtemp(prefix=f"sb3-vpg-rank-{self.rank}-")
            atexit.register(shutil.rmtree, scratch, ignore_errors=True)
            self.log_path = self.save_path = scratch
            self.params_path = f"{scratch}/{self.env_name}"
            self.tensorboard_log = None
            self.show_progress = False

    def _preprocess_hyperparams(self, hyperparams: dict[str, Any]) -> Any:
        batch_in_steps = "n_steps" in hyperparams
        processed = super()._preprocess_hyperparams(hyperparams)
        shares = [split_envs(self.n_envs, batch_in_steps, rank, self.world_size) for rank in range(self.world_size)]
        self.n_envs, self.n_envs_of_ranks = shares[self.rank], sum(shares)
        return processed

    def create_callbacks(self) -> None:
        """rl-zoo3's progress bar, checkpoints and evaluations, on rank 0, counting every rank's steps."""
        if self.rank != 0:
            return
        n_envs, self.n_envs = self.n_envs, self.n_envs_of_ranks  # eval_freq and save_freq count all ranks' steps
        try:
            super().create_callbacks()
        finally:
            self.n_envs = n_envs

    def save_trained_model(self, model: BaseAlgorithm) -> None:
        """Rank 0 saves the model (and the VecNormalize statistics, the same on every rank)."""
        if self.rank == 0:
            super().save_trained_model(model)

    def _save_config(self, saved_hyperparams: dict[str, Any]) -> None:
        if self.rank == 0:
            super()._save_config(saved_hyperparams)
