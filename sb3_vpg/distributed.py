"""
Data parallelism on PyTorch's own engine, ``torch.distributed``: the process group that VPG joins when a launcher
(torchrun, or any that sets torch's ``env://`` variables) starts several processes, and the few collectives that its
update calls where the math sums over the batch.

Each process (a *rank*) steps its own envs and holds its part of the batch. Every sum over the batch's episodes or
steps in the update (m and the step count, the baselines' means, the normalisation's mean and std, the gradient, the
logged values) is the sum of the ranks' partial sums, so the update is the one a single process computes over the
union of all ranks' episodes; every rank then takes the same step and holds the same parameters. In one process the
collectives are the identity (:class:`Collectives`), and the update is unchanged.

Every collective waits at most ``timeout`` seconds for the other ranks: past it, or when another rank has died, it
raises :class:`CollectiveError`, naming this rank and what it waited for, instead of hanging.
"""

import atexit
import copy
import datetime
import os
from collections.abc import Iterable

import numpy as np
import torch as th
import torch.distributed as dist
from stable_baselines3.common.running_mean_std import RunningMeanStd

#: How long a rank waits for the others at a collective by default, in seconds
DEFAULT_TIMEOUT = 600.0


class CollectiveError(RuntimeError):
    """A collective did not complete: another rank died, or stalled for longer than the timeout."""


def _launched_world_size() -> int:
    """The number of processes a launcher started, from torch's ``env://`` variables (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def world_size() -> int:
    """The number of ranks training together: the process group's size, else the launcher's ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _launched_world_size()


def rank() -> int:
    """This process's rank: the process group's, else the launcher's ``RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this is rank 0, the rank that logs and saves (True in a single process)."""
    return rank() == 0


def device_for(device: th.device | str) -> th.device | str:
    """
    The device of this rank: with several ranks, ``"cuda"`` (or ``"auto"`` where CUDA is available) is the GPU of the
    launcher's ``LOCAL_RANK``; anything else is left as it is.

    :param device: The device VPG was given
    """
    if world_size() <= 1 or str(device) not in ("auto", "cuda") or not th.cuda.is_available():
        return device
    return th.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


class Collectives:
    """
    The collectives of a batch in one part, in one process: each is the identity. :class:`ProcessGroupCollectives`
    has the same methods across ranks.
    """

    rank = 0
    world_size = 1

    def total(self, values: np.ndarray, ragged: bool = False, what: str = "a sum over the batch") -> np.ndarray:
        """
        The sum over the ranks of an array each computes from its own part of the batch, indexed alike
        (:class:`~sb3_vpg.estimators.BatchTotal`).

        :param values: This rank's array
        :param ragged: The arrays are 1-D and may differ in length: each is zero-padded to the longest
        :param what: What the sum is, for the error when it does not complete
        :return: The sum, as float64
        """
        return np.asarray(values, dtype=np.float64)

    def sum_gradients(self, parameters: Iterable[th.nn.Parameter]) -> None:
        """
        Replace each parameter's gradient by its sum over the ranks (a rank without one counts 0); a parameter that
        has a gradient on no rank keeps none, as it would in one process over the whole batch.

        :param parameters: The parameters, in the same order on every rank
        """

    def broadcast_parameters(self, module: th.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers of ``module``."""

    def gather_counts(self, count: int) -> list[int]:
        """Every rank's ``count``, in rank order."""
        return [count]

    def share_running_stats(self, stats: list[RunningMeanStd]) -> None:
        """
        Give every rank rank 0's running means and variances (SB3's ``VecNormalize`` statistics), the base that
        :meth:`merge_running_stats` adds the ranks' samples to.

        :param stats: This rank's statistics, in the same order on every rank
        """

    def merge_running_stats(self, stats: list[RunningMeanStd]) -> None:
        """
        Make each running mean and variance that of all ranks' samples: each holds the base (the same on every rank:
        the statistics of the last merge, or those shared) and this rank's samples since; afterwards it holds the base
        and every rank's samples, exactly as one ``RunningMeanStd`` updated with all of them would.

        :param stats: This rank's statistics, in the same order on every rank
        """


class ProcessGroupCollectives(Collectives):
    """
    The collectives across the ranks of torch.distributed's default process group.

    :param timeout: Seconds to wait for the other ranks at each collective before raising :class:`CollectiveError`
    :param device: The device of the tensors the policy computes on (NCCL needs them there; gloo takes them on the CPU)
    """

    def __init__(self, timeout: float, device: th.device) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.timeout = datetime.timedelta(seconds=timeout)
        self.device = device if dist.get_backend() == "nccl" else th.device("cpu")
        self._bases: list[RunningMeanStd] = []

    def _wait(self, work: dist.Work | None, what: str) -> None:
        assert work is not None
        try:
            work.wait(timeout=self.timeout)
        except RuntimeError as error:
            raise CollectiveError(
                f"Rank {self.rank} of {self.world_size}: {what} did not complete ({error}). Another rank has died (its "
                f"own error says why) or has not reached it within {self.timeout.total_seconds():g} s (a hung env, a "
                "rank far slower than the others): VPG's collective_timeout sets that bound."
            ) from error

    def _all_reduce(self, tensor: th.Tensor, what: str, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> th.Tensor:
        self._wait(dist.all_reduce(tensor, op=op, async_op=True), what)
        return tensor

    def total(self, values: np.ndarray, ragged: bool = False, what: str = "a sum over the batch") -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if ragged:
            length = th.tensor([len(values)], dtype=th.int64, device=self.device)
            longest = int(self._all_reduce(length, "the longest episode of the batch", dist.ReduceOp.MAX).item())
            values = np.pad(values, (0, longest - len(values)))
        tensor = th.as_tensor(values, device=self.device)
        return self._all_reduce(tensor, what).cpu().numpy()

    def sum_gradients(self, parameters: Iterable[th.nn.Parameter]) -> None:
        parameters = list(parameters)
        # One flat all-reduce: every gradient (0 where a rank has none), then whether each rank had one.
        reached = [float(parameter.grad is not None) for parameter in parameters]
        gradients = [th.zeros_like(p).flatten() if p.grad is None else p.grad.flatten() for p in parameters]
        flat = th.cat([*gradients, th.tensor(reached, dtype=gradients[0].dtype, device=gradients[0].device)])
        flat = self._all_reduce(flat.to(self.device), "the sum of the gradient").to(parameters[0].device)
        start, n_reached = 0, flat[-len(parameters) :].tolist()
        for parameter, n_ranks in zip(parameters, n_reached, strict=True):
            summed = flat[start : start + parameter.numel()].view_as(parameter)
            # As in one process: a parameter that no rank's loss reached keeps no gradient, and no optimiser step.
            parameter.grad = summed.to(parameter.dtype, copy=True) if n_ranks > 0 else None
            start += parameter.numel()

    def broadcast_parameters(self, module: th.nn.Module) -> None:
        for tensor in [*module.parameters(), *module.buffers()]:
            on_device = tensor.data.to(self.device)
            self._wait(dist.broadcast(on_device, src=0, async_op=True), "the broadcast of rank 0's parameters")
            tensor.data.copy_(on_device)

    def gather_counts(self, count: int) -> list[int]:
        counts = th.zeros(self.world_size, dtype=th.int64, device=self.device)
        counts[self.rank] = count
        return [int(value) for value in self._all_reduce(counts, "the exchange of the ranks' env counts").tolist()]

    def share_running_stats(self, stats: list[RunningMeanStd]) -> None:
        self._bases = []
        if not stats:
            return
        values = np.concatenate([np.concatenate([[own.count], np.ravel(own.mean), np.ravel(own.var)]) for own in stats])
        tensor = th.as_tensor(values, device=self.device)
        self._wait(dist.broadcast(tensor, src=0, async_op=True), "the broadcast of rank 0's VecNormalize statistics")
        values, start = tensor.cpu().numpy(), 0
        for own in stats:
            size = own.mean.size
            own.count = float(values[start])
            own.mean = values[start + 1 : start + 1 + size].reshape(own.mean.shape)
            own.var = values[start + 1 + size : start + 1 + 2 * size].reshape(own.var.shape)
            start += 1 + 2 * size
        self._bases = copy.deepcopy(stats)

    def merge_running_stats(self, stats: list[RunningMeanStd]) -> None:
        # Each rank's samples since the base, centred on the base's mean: their count, sum and sum of squares.
        parts = []
        for own, base in zip(stats, self._bases, strict=True):
            offset = own.mean - base.mean
            parts += [
                np.atleast_1d(own.count - base.count),
                np.ravel(own.count * offset),
                np.ravel(own.count * (own.var + np.square(offset)) - base.count * base.var),
            ]
        if not parts:
            return
        sums, start = self.total(np.concatenate(parts), what="the merge of the VecNormalize statistics"), 0
        for own, base in zip(stats, self._bases, strict=True):
            size = base.mean.size
            count = base.count + sums[start]
            mean_offset = sums[start + 1 : start + 1 + size].reshape(base.mean.shape) / count
            centred_squares = sums[start + 1 + size : start + 1 + 2 * size].reshape(base.mean.shape)
            start += 1 + 2 * size
            own.count = count
            own.mean = base.mean + mean_offset
            own.var = (base.count * base.var + centred_squares) / count - np.square(mean_offset)
        self._bases = copy.deepcopy(stats)


def _init_process_group(backend: str, timeout: datetime.timedelta) -> None:
    """
    Join torch's default process group from the launcher's ``env://`` variables. torchrun by default shares its
    rendezvous store with the workers and keeps it across ``--max-restarts``, so a restarted group could read the
    addresses of the group that died (pytorch#135712): under torchrun, each restart of the workers joins under keys
    of its own. The restart count is each torchrun agent's own, the same for all the workers of one machine; on several
    machines, launch torchrun with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, which gives each restart a new store.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend, timeout=timeout)
        return
    size, this_rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    agent_store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, is_master=False, timeout=timeout
    )
    store = dist.PrefixStore(f"sb3_vpg/restart_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", agent_store)
    dist.init_process_group(backend, store=store, rank=this_rank, world_size=size, timeout=timeout)


def join(device: th.device, timeout: float) -> Collectives:
    """
    The collectives of this process: across the ranks when a launcher started several processes, joining torch's
    default process group (``env://``: NCCL for a CUDA device, else gloo) unless the program has joined one already;
    else those of one process.

    :param device: The device the policy computes on
    :param timeout: Seconds each collective (and joining the group) waits for the other ranks
    """
    if not dist.is_available():
        return Collectives()
    if not dist.is_initialized():
        if _launched_world_size() <= 1:
            return Collectives()
        if device.type == "cuda":
            th.cuda.set_device(device)
        _init_process_group("nccl" if device.type == "cuda" else "gloo", datetime.timedelta(seconds=timeout))
        atexit.register(dist.destroy_process_group)
    if dist.get_world_size() == 1:
        return Collectives()
    return ProcessGroupCollectives(timeout, device)
