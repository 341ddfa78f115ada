"""
Data-parallel VPG on torch.distributed, tested with real processes: torchrun starts the ranks of
``tests/distributed_worker.py`` on the gloo backend, on this machine's loopback; every wait is bounded.

The update of 2 and 3 ranks on given episodes equals the update of one process on their union, to the float32 rounding
bound of the sums that differ (:mod:`tests.rounding`): parameters, the optimiser's state and every logged value, for
every estimator, Box, Discrete and Dict observations, SGD and Adam, a clipped gradient and a rank without episodes.
After ``learn()`` the ranks hold the same parameters, bit for bit, and VecNormalize statistics of all their samples. A
rank that dies or stalls ends the job with an error that says which and why; a worker killed under torchrun's
``--max-restarts`` resumes the job from its last checkpoint; with 2 processes on one torchrun agent and with 2 agents
("nodes") on this machine. A job that outlasts its bound fails its test and is killed with its workers.
"""

import concurrent.futures
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.running_mean_std import RunningMeanStd

from sb3_vpg import VPG, distributed
from tests.given_episodes import CASES, LEARNING_RATE, Case, episodes, fill, make_model, update
from tests.rounding import TermMagnitudes, assert_within, gamma

REPOSITORY = Path(__file__).parents[1]
WORKER = REPOSITORY / "tests" / "distributed_worker.py"

pytestmark = pytest.mark.integration


#: Each test's bound on a torchrun job, in seconds: a job that outlasts it is killed and the test fails
JOB_TIMEOUT = 240


def _environment(**more: str) -> dict[str, str]:
    """One thread per rank; the repository importable (for ``tests``); gloo on the loopback interface."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY), "GLOO_SOCKET_IFNAME": "lo", **more}


def run_torchrun(
    nproc: int, command: str, output: Path, *options: str, timeout: float = JOB_TIMEOUT
) -> subprocess.CompletedProcess:
    """
    The worker's ``command`` on ``nproc`` ranks of one torchrun agent (``--standalone``: a free loopback port), one
    thread each, bounded by ``timeout`` (an agent that outlasts it is killed, its workers with it, and the test fails);
    its exit status and output, together.
    """
    arguments = ["--standalone", "--local-addr=127.0.0.1", f"--nproc-per-node={nproc}", *options]
    output.mkdir(parents=True, exist_ok=True)
    # a file, not a pipe: reading a pipe to its end waits for every process holding it, a worker left behind too
    with (output / "agent.log").open("w+") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *arguments, str(WORKER), command, str(output)],
            env=_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the agent in a group of its own, as in run_two_agents
        )
        try:
            agent.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            _kill_job(agent)
            killed = True
        log.seek(0)
        result = subprocess.CompletedProcess(agent.args, agent.returncode, log.read())
    assert not killed, f"{result.stdout}: outlasted its bound of {timeout} s"
    return result


def torchrun(nproc: int, command: str, output: Path, *options: str) -> None:
    """:func:`run_torchrun`, failing with the job's output unless it succeeds."""
    result = run_torchrun(nproc, command, output, *options)
    assert result.returncode == 0, result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, found by their parents in /proc (none where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a process that ended meanwhile
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after "pid (command)": state, then ppid
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, below = [], [pid]
    while below:
        these = children.get(below.pop(), [])
        found += these
        below += these
    return found


def _kill_job(agent: subprocess.Popen) -> None:
    """
    SIGKILL a torchrun agent (started in a group of its own) and its workers, which torchrun starts in sessions of their
    own, beyond the group's reach: the agent is stopped first, so that it starts no worker while they are listed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(agent.pid, signal.SIGSTOP)
    workers = _descendants(agent.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(agent.pid, signal.SIGKILL)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    agent.wait()


def run_two_agents(
    command: str,
    output: Path,
    *options: str,
    settle: float | None = None,
    timeout: float = JOB_TIMEOUT,
    **environment: str,
) -> list[subprocess.CompletedProcess]:
    """
    The worker's ``command`` on two "nodes": two torchrun agents on this machine, one rank each, meeting at a c10d
    rendezvous on a loopback port, bounded by ``timeout`` (an agent that outlasts it is killed, its workers with it,
    and the test fails). With ``settle``, the job is over when the first agent ends: the other gets ``settle``
    seconds more, then it and its workers are killed (its exit status is then ``None``).
    """
    rendezvous = [
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
        "--rdzv-id=sb3-vpg-test",
        "--local-addr=127.0.0.1",
        *options,
    ]
    output.mkdir(parents=True, exist_ok=True)
    logs = [(output / f"agent-{index}.log").open("w+") for index in range(2)]
    agents = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *rendezvous, str(WORKER), command, str(output)],
            env=_environment(**environment),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the agent in a group of its own (its workers are in sessions of their own)
        )
        for log in logs
    ]
    deadline, settling, killed = time.monotonic() + timeout, False, set()
    try:
        while any(agent.poll() is None for agent in agents) and time.monotonic() < deadline:
            if settle is not None and not settling and any(agent.poll() is not None for agent in agents):
                deadline, settling = min(deadline, time.monotonic() + settle), True
            time.sleep(0.2)
    finally:
        for index, agent in enumerate(agents):
            if agent.poll() is None:
                _kill_job(agent)
                killed.add(index)
    results = []
    for index, (agent, log) in enumerate(zip(agents, logs, strict=True)):
        log.seek(0)
        results.append(subprocess.CompletedProcess(agent.args, None if index in killed else agent.returncode, log.read()))
        log.close()
    assert not killed or (settling and len(killed) == 1), f"{results}: outlasted its bound of {timeout} s"
    return results


@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks"])
def ranks_updates(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[dict]]:
    """Every case's update on 2 (or 3) ranks: one torchrun for all cases; each rank's results."""
    output = tmp_path_factory.mktemp(f"given-episodes-{request.param}")
    torchrun(request.param, "given-episodes", output)
    return request.param, [th.load(output / f"given-episodes-{rank}.pt", weights_only=False) for rank in range(request.param)]


class Reference:
    """
    One process's update on the union of the episodes, and what the tolerances come from: the update again with one
    step per chunk, every backward pass's terms recorded (:class:`~tests.rounding.TermMagnitudes`), and the per-step
    values its logged sums add up (log π, entropy, V(s_t), before the update; the weights and returns after).
    """

    def __init__(self, case: Case) -> None:
        model = make_model(case)
        fill(model, episodes(case.kind))
        self.result = update(model)
        self.buffer = model.rollout_buffer  # the batch stays readable after the update
        self.optimizer = model.policy.optimizer

        per_step = make_model(case, chunk_size=1)
        fill(per_step, episodes(case.kind))
        self.before = {name: value.detach().clone() for name, value in per_step.policy.named_parameters()}
        buffer = per_step.rollout_buffer
        with th.no_grad():
            observations = next(buffer.observation_chunks())
            actions = th.as_tensor(buffer.actions, dtype=th.float64)
            if case.kind == "box":
                actions = actions.long().flatten()
            values, log_prob, entropy = per_step.policy.evaluate_actions(observations, actions)
        self.log_prob, self.values = log_prob.numpy(), values.flatten().numpy()
        self.entropy = -self.log_prob if entropy is None else entropy.numpy()
        self.terms = TermMagnitudes(per_step)
        with self.terms.recording():
            update(per_step)
        self.model = per_step

    def gradient(self, name: str) -> th.Tensor:
        """The gradient of the update's first step: the sum of its terms (every term, without value steps)."""
        return th.stack(self.terms.terms[name]).sum(dim=0)

    def gradient_bound(self, name: str) -> th.Tensor:
        """How far two computations of that gradient may differ: 2 γ_K Σ|x_k|."""
        return 2 * gamma(self.terms.n_terms[name]) * self.terms.absolute_sums[name]


def sgd_tolerance(reference: Reference, max_grad_norm: float | None) -> dict[str, th.Tensor]:
    """
    The parameters' tolerance after SGD: the learning rate times the gradient's bound δ; with clipping to norm M,
    g·c with c = M / ‖g‖ moves by c δ + |g| c ‖δ‖ / ‖g‖ (to first order).
    """
    tolerance = reference.terms.update_tolerance(LEARNING_RATE, reference.before)
    if max_grad_norm is None:
        return tolerance
    names = list(reference.terms.terms)
    gradients = {name: reference.gradient(name) for name in names}
    bounds = {name: reference.gradient_bound(name) for name in names}
    norm = math.sqrt(sum(float(g.square().sum()) for g in gradients.values()))
    bound_norm = math.sqrt(sum(float(b.square().sum()) for b in bounds.values()))
    clip = min(1.0, max_grad_norm / (norm + 1e-6))
    assert clip < 1, "the case must clip"
    return {
        name: 2 * LEARNING_RATE * clip * (bounds[name] + gradients[name].abs() * bound_norm / norm) + tolerance[name]
        for name in names
    }


def adam_tolerances(reference: Reference) -> tuple[dict[str, th.Tensor], dict[str, th.Tensor]]:
    """
    Adam's first step from gradients g and g + e, |e| ≤ δ: the moments (1 − β₁) g and (1 − β₂) g² move by
    (1 − β₁) δ and (1 − β₂)(2|g| δ + δ²); the step −lr g / (|g| + ε) by at most lr δ ε / (max(|g| − δ, 0) + ε)²
    (its derivative in g, at the smallest |g| within reach), and never by more than 2 lr.
    """
    group = reference.optimizer.param_groups[0]
    (beta1, beta2), epsilon = group["betas"], group["eps"]
    state, parameters = {}, {}
    for name in reference.terms.terms:
        g, delta = reference.gradient(name), reference.gradient_bound(name)
        state[f"{name}.exp_avg"] = (1 - beta1) * delta
        state[f"{name}.exp_avg_sq"] = (1 - beta2) * (2 * g.abs() * delta + delta**2)
        state[f"{name}.step"] = th.tensor(0.0)
        step = LEARNING_RATE * delta * epsilon / ((g.abs() - delta).clamp(min=0) + epsilon) ** 2
        rounding = 4 * 2.0**-53 * reference.before[name].abs()
        parameters[name] = th.minimum(step, th.full_like(step, 2 * LEARNING_RATE)) + rounding
    return parameters, state


def _mean_bound(values: np.ndarray, n: int) -> float:
    """Two sums of n float32-rounded terms, divided by n, differ by at most 2 γ_n Σ|x| / n."""
    return 2 * gamma(max(n, 1)) * float(np.abs(values).sum()) / n


def _variance_bound(values: np.ndarray, n: int, ddof: int = 0) -> float:
    """The bound of Var = (Σx² − n mean²) / (n − ddof) from those of Σx² and of the mean."""
    mean, mean_bound = values.sum() / n, _mean_bound(values, n)
    squares_bound = 2 * gamma(max(n, 1)) * float(np.square(values).sum())
    return (squares_bound + n * (2 * abs(mean) + mean_bound) * mean_bound) / (n - ddof)


def _std_bound(values: np.ndarray, n: int, ddof: int = 0) -> float:
    variance_bound = _variance_bound(values, n, ddof)
    std = math.sqrt(max(float(np.square(values - values.mean()).sum()) / (n - ddof), 0.0))
    return math.sqrt(variance_bound) if std == 0 else min(math.sqrt(variance_bound), variance_bound / std)


def logged_tolerances(reference: Reference, case: Case) -> dict[str, float]:
    """Each logged statistic's tolerance, from the per-step values that its sums add up (float32's bound)."""
    buffer, n_steps = reference.buffer, reference.buffer.size()
    m = buffer.n_episodes
    weights = buffer.advantages[:n_steps].astype(np.float64)
    returns, to_go = buffer.episode_returns.astype(np.float64), buffer.returns[:n_steps].astype(np.float64)
    policy_gradient = _mean_bound(weights * reference.log_prob, m)
    entropy = _mean_bound(reference.entropy, n_steps)
    value = _mean_bound(np.square(reference.values - to_go), n_steps)
    ent_coef, vf_coef = case.options.get("ent_coef", 0.0), 0.5
    tolerances = {
        "train/policy_gradient_loss": policy_gradient,
        "train/entropy": entropy,
        "train/loss": policy_gradient + ent_coef * entropy + vf_coef * value,
        "train/return_mean": _mean_bound(returns, m),
        "train/return_std": _std_bound(returns, m),
        "train/advantage_mean": _mean_bound(weights, n_steps),
        "train/advantage_std": _std_bound(weights, n_steps, ddof=1),
        "train/n_episodes": 0.0,
        "train/n_dropped_episodes": 0.0,
        "train/n_updates": 0.0,
    }
    gradient_norm = math.sqrt(sum(float(reference.gradient_bound(name).square().sum()) for name in reference.terms.terms))
    tolerances["train/grad_norm"] = gradient_norm
    if buffer.n_episodes and reference.model.estimator.needs_values:
        residuals = to_go - reference.values
        variance_of_returns = float(np.var(to_go))
        explained = 1 - float(np.var(residuals)) / variance_of_returns
        residual_bound, returns_bound = _variance_bound(residuals, n_steps), _variance_bound(to_go, n_steps)
        tolerances["train/value_loss"] = value
        tolerances["train/explained_variance"] = (residual_bound + abs(1 - explained) * returns_bound) / variance_of_returns
    return tolerances


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_update_of_the_ranks_equals_one_process_on_their_union(case: Case, ranks_updates: tuple[int, list[dict]]) -> None:
    """
    Every rank's update on its part of the episodes equals one process's update on all of them: the global m in
    1/m, the baselines' means, the normalisation, the value loss and every value step, the entropy, the clipping.
    """
    world_size, results = ranks_updates
    reference = Reference(case)
    expected = reference.result
    if case.optimizer == "sgd":
        parameter_tolerance = sgd_tolerance(reference, case.options.get("max_grad_norm"))
        state_tolerance: dict[str, th.Tensor] = {}
    else:
        parameter_tolerance, state_tolerance = adam_tolerances(reference)
    logged_tolerance = logged_tolerances(reference, case)
    for rank, result in enumerate(results):
        actual = result[case.name]
        where = f"{world_size} ranks, rank {rank}: "
        assert_within(actual["parameters"], expected["parameters"], parameter_tolerance, where)
        assert actual["optimizer"].keys() == expected["optimizer"].keys()
        assert_within(actual["optimizer"], expected["optimizer"], state_tolerance, where)
        assert set(actual["logged"]) == set(expected["logged"])
        for key, tolerance in logged_tolerance.items():
            assert abs(actual["logged"][key] - expected["logged"][key]) <= tolerance, (where, key)


def test_one_ranks_part_alone_is_another_update() -> None:
    """The check above can fail: a rank's update on its own part (m, baseline and normalisation its own) is not it."""
    case = Case("box", dict(reward_to_go=True, baseline="mean", normalize_advantage=True))
    reference = Reference(case)
    alone = make_model(case)
    fill(alone, episodes(case.kind)[0::2])
    tolerance = sgd_tolerance(reference, None)
    with pytest.raises(AssertionError):
        assert_within(update(alone)["parameters"], reference.result["parameters"], tolerance)


def test_ranks_hold_identical_parameters_after_training(tmp_path: Path) -> None:
    """
    ``learn()`` on 2 ranks of CartPole with VecNormalize: after it every rank holds the same parameters, bit for bit,
    the same timesteps (every rank's steps together) and the same VecNormalize statistics, which are those of all the
    ranks' observations and returns, as one RunningMeanStd fed all of them would hold.
    """
    torchrun(2, "train", tmp_path)
    ranks = [th.load(tmp_path / f"train-{rank}.pt", weights_only=False) for rank in range(2)]
    first, second = ranks
    assert first["n_updates"] == second["n_updates"] >= 3
    assert all(th.equal(first["parameters"][name], second["parameters"][name]) for name in first["parameters"])
    steps = sum(rank["steps"] for rank in ranks)
    assert first["num_timesteps"] == second["num_timesteps"] == steps
    for key in ("obs", "ret"):
        # One RunningMeanStd fed every batch that the ranks' VecNormalize fed theirs (each starts fresh).
        one = RunningMeanStd(shape=first["stats"][key]["mean"].shape)
        for rank in ranks:
            for batch in rank["samples"][key]:
                one.update(batch)
        for rank in ranks:
            assert rank["stats"][key]["count"] == pytest.approx(one.count, rel=1e-12)
            np.testing.assert_allclose(rank["stats"][key]["mean"], one.mean, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(rank["stats"][key]["var"], one.var, rtol=1e-9, atol=1e-12)
            np.testing.assert_array_equal(rank["stats"][key]["mean"], first["stats"][key]["mean"])
            np.testing.assert_array_equal(rank["stats"][key]["var"], first["stats"][key]["var"])


def test_a_rank_that_dies_ends_the_job_naming_it(tmp_path: Path) -> None:
    """
    Rank 1 is killed (SIGKILL) after its 3rd update: the job ends with a non-zero status, torchrun naming rank 1 and
    the signal, and rank 0 saying which collective it could not complete, with 2 processes and with 2 "nodes".
    """
    # torchrun tears the other workers down at its first look after a worker dies (every 0.1 s by default), which on
    # a loaded machine can come before rank 0 has met the dead rank at its next collective (a few milliseconds of
    # work here): looking every 5 s leaves rank 0 that long to fail, and say so, first.
    monitor = "--monitor-interval=5"
    result = run_torchrun(2, "die", tmp_path, monitor)
    assert result.returncode != 0
    assert "rank      : 1 (local_rank: 1)" in result.stdout and "Signal 9 (SIGKILL)" in result.stdout
    assert "CollectiveError: Rank 0 of 2:" in result.stdout
    nodes = run_two_agents("die", tmp_path, monitor)
    assert all(agent.returncode != 0 for agent in nodes)
    output = "".join(agent.stdout for agent in nodes)
    assert "Signal 9 (SIGKILL)" in output and "CollectiveError: Rank 0 of 2:" in output


def test_a_stalled_rank_makes_the_others_fail_after_the_timeout(tmp_path: Path) -> None:
    """
    Rank 1 stops (SIGSTOP, as a process stuck in a hung env does) after its 3rd update, with collective_timeout=3:
    rank 0 raises CollectiveError, naming itself, what it waited for and the bound, no sooner than 3 s after, and the
    job ends non-zero, with 2 processes (torchrun then stops rank 1, within its own 30 s grace) and with 2 "nodes" (the
    two jobs run at once).
    """
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            start = time.monotonic()
            processes = pool.submit(run_torchrun, 2, "stall", tmp_path / "processes")
            # On 2 agents, the agent of rank 0 ends with its error. The other waits for its stopped worker: torchrun's
            # agents do not watch each other once the rendezvous is over, so it ends by itself only when the agent
            # that ended held the rendezvous store (else the cluster's job control stops it: the docs say so). It
            # gets 5 s.
            nodes = pool.submit(run_two_agents, "stall", tmp_path / "nodes", settle=5)
            result = processes.result()
            assert result.returncode != 0
            assert "CollectiveError: Rank 0 of 2:" in result.stdout and "within 3 s" in result.stdout
            assert time.monotonic() - start >= 3
            agents = nodes.result()
    finally:
        # torchrun starts each worker in a session of its own, and an agent that ends leaves a stopped worker behind
        for output in (tmp_path / "processes", tmp_path / "nodes"):
            kill_workers(output)
    waited = [agent for agent in agents if agent.returncode is not None and "CollectiveError: Rank 0 of 2:" in agent.stdout]
    assert len(waited) == 1 and waited[0].returncode != 0 and "within 3 s" in waited[0].stdout
    assert all(agent.returncode != 0 for agent in agents)


def kill_workers(output: Path) -> None:
    """SIGKILL every process that is still a worker writing to ``output``."""
    for pid in _workers(output):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_job_past_its_bound_is_killed_with_its_workers(tmp_path: Path) -> None:
    """
    A job that outlasts its bound fails the test and leaves no worker behind, although torchrun starts each worker in
    a session of its own, beyond its agent's process group: with 2 processes and with 2 "nodes" (at once). Whatever
    stage the bound finds the job in, nothing of it is left; the workers are up within seconds (7-8 s here beside two
    busy torch processes), so the bound finds them asleep.
    """
    bound = 20
    jobs = {
        "processes": lambda output: run_torchrun(2, "hang", output, timeout=bound),
        "nodes": lambda output: run_two_agents("hang", output, timeout=bound),
    }
    outputs = [tmp_path / name for name in jobs]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(job, output) for job, output in zip(jobs.values(), outputs, strict=True)]

    def left() -> list[int]:
        return [pid for output in outputs for pid in _workers(output)]

    try:
        for future in futures:
            with pytest.raises(AssertionError, match=f"outlasted its bound of {bound} s"):
                future.result()
        # SIGKILL ends a process within moments; one without a parent to reap it stays a zombie, with an empty command
        deadline = time.monotonic() + 10
        while left() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left()
    finally:
        for output in outputs:
            kill_workers(output)


def _workers(output: Path) -> list[int]:
    """The processes that are (still) workers writing to ``output``, found by their commands in /proc."""
    return [pid for pid in (int(path.name) for path in Path("/proc").glob("[0-9]*")) if _is_worker(pid, output)]


def _is_worker(pid: int, output: Path) -> bool:
    """Whether process ``pid`` is (still) a worker writing to ``output``."""
    try:
        return str(output).encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # it has ended
        return False


def assert_resumed_from_the_checkpoint(output: Path, world_size: int) -> None:
    """
    The job of ``resume``: its first run (killed after update 6) left a checkpoint of update 5; the second resumed
    from it on every rank and finished the budget, training update 6 again. Every batch of every rank and run holds
    whole 5-step episodes, each once in its run; the updates of the finished model are those of the first run up to
    the checkpoint and those of the second, each counted once.
    """
    for rank in range(world_size):
        final = json.loads((output / f"final-{rank}.json").read_text())
        runs: list[dict] = []
        for line in (output / f"batches-{rank}.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "start" in record:
                runs.append(dict(start=record["start"], batches=[]))
            else:
                runs[-1]["batches"].append(record)
        assert [run["start"] for run in runs] == [0, 5] and final["num_timesteps"] >= 400, rank
        for run in runs:
            episodes = [episode for batch in run["batches"] for episode in batch["episodes"]]
            assert len(episodes) == len(set(episodes)), rank
            assert all(steps == list(range(5)) for batch in run["batches"] for steps in batch["episodes"].values())
        first, second = runs
        lineage = [batch["update"] for batch in first["batches"] if batch["update"] <= second["start"]]
        lineage += [batch["update"] for batch in second["batches"]]
        assert lineage == list(range(1, final["n_updates"] + 1)), (rank, lineage)


def test_a_killed_worker_restarts_the_job_from_its_last_checkpoint(tmp_path: Path) -> None:
    """
    ``examples/distributed_training.py`` under ``torchrun --max-restarts 1``, its last rank killed mid-training: the
    job restarts and resumes from rank 0's last checkpoint (SB3's zip and VecNormalize), with 2 processes on one
    agent and with 2 "nodes" (launched with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, as the docs say for several machines).
    """
    torchrun(2, "resume", tmp_path / "processes", "--max-restarts=1")
    assert_resumed_from_the_checkpoint(tmp_path / "processes", 2)
    nodes = run_two_agents("resume", tmp_path / "nodes", "--max-restarts=1", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
    assert all(agent.returncode == 0 for agent in nodes), "".join(agent.stdout for agent in nodes)
    assert_resumed_from_the_checkpoint(tmp_path / "nodes", 2)


@pytest.mark.skipif(th.cuda.device_count() < 2, reason="the NCCL path needs two GPUs (one per rank)")
def test_nccl_ranks_on_their_gpus_hold_identical_parameters(tmp_path: Path) -> None:
    """With device="cuda", each rank takes its LOCAL_RANK's GPU and the ranks use NCCL; after training they agree."""
    torchrun(2, "train-cuda", tmp_path)
    first, second = (th.load(tmp_path / f"train-{rank}.pt", weights_only=False) for rank in range(2))
    assert first["device"] == "cuda:0" and second["device"] == "cuda:1" and first["backend"] == "nccl"
    assert all(th.equal(first["parameters"][name], second["parameters"][name]) for name in first["parameters"])


def test_without_a_launcher_one_process_is_the_whole_world(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's env:// variables say what the launcher started; without them, one process, rank 0, on its own device."""
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    assert distributed.device_for("cuda") == "cuda" and distributed.device_for("cpu") == "cpu"
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (3, 4, False)
    expected = th.device("cuda", 1) if th.cuda.is_available() else "cuda"
    assert distributed.device_for("cuda") == expected and distributed.device_for("cpu") == "cpu"


def test_a_model_loaded_without_env_under_a_launcher_joins_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``VPG.load(path)`` to predict, on one rank of a launched job, neither joins the process group nor waits."""
    VPG("MlpPolicy", "CartPole-v1", n_steps=8).save(tmp_path / "model")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    model = VPG.load(tmp_path / "model")
    assert model._collectives.world_size == 1 and not th.distributed.is_initialized()
    model.predict(np.zeros(4, dtype=np.float32))
