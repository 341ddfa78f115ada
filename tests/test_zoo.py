"""rl-zoo3 integration, with the real rl-zoo3, Optuna and SQLite, run the way a user runs them."""

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import optuna
import pytest
import torch as th
import yaml
from optuna.trial import TrialState
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3 import A2C

from sb3_vpg import VPG
from sb3_vpg.estimators import ESTIMATORS
from sb3_vpg.zoo import DEFAULT_CONFIG, convert_vpg_params, register, sample_vpg_params
from sb3_vpg.zoo.cli import main
from sb3_vpg.zoo.distributed import split_envs
from sb3_vpg.zoo.sampler import LOG_STD_INITS

pytestmark = pytest.mark.integration

#: rl-zoo3 options that keep a run short and quiet
QUICK = ["--eval-freq", "-1", "--verbose", "0"]
#: The environment of the subprocesses: offline (huggingface_hub raises instead of downloading, and enjoy must not
#: need to), and one torch thread each, as two workers share the test machine's cores
SUBPROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m sb3_vpg.zoo ARGS`` in ``cwd`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "sb3_vpg.zoo", *args], cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300
    )


def saved_args(run_folder: Path, env_id: str = "CartPole-v1") -> dict:
    """The command-line arguments rl-zoo3 saved for a training run."""
    return dict(yaml.load((run_folder / env_id / "args.yml").read_text(), Loader=yaml.UnsafeLoader))


def test_train_enjoy_record_video_cartpole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = zoo("train", "--algo", "vpg", "--env", "CartPole-v1", "-n", "1000", "--seed", "0", *QUICK, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    run = tmp_path / "logs" / "vpg" / "CartPole-v1_1"
    assert saved_args(run)["conf_file"] == str(DEFAULT_CONFIG)

    model = VPG.load(run / "CartPole-v1.zip")
    cartpole = yaml.safe_load(DEFAULT_CONFIG.read_text())["CartPole-v1"]
    assert (model.n_episodes, model.baseline, model.reward_to_go) == (
        cartpole["n_episodes"],
        cartpole["baseline"],
        cartpole["reward_to_go"],
    )
    assert model.num_timesteps >= 1000

    # No --folder: enjoy replays what train saved in ./logs, offline.
    enjoy = zoo("enjoy", "--algo", "vpg", "--env", "CartPole-v1", "--no-render", "-n", "200", cwd=tmp_path)
    assert enjoy.returncode == 0, enjoy.stderr
    assert "Mean reward" in enjoy.stdout

    monkeypatch.chdir(tmp_path)
    main(["record_video", "--algo", "vpg", "--env", "CartPole-v1", "-n", "50", "-o", "videos"])
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1


def test_record_training_through_the_entry_point(tmp_path: Path) -> None:
    """
    rl-zoo3's record_training records every checkpoint in a new ``python -m rl_zoo3.record_video`` process, which would
    not know VPG: through the entry point those processes know it, and the videos are joined with an ffmpeg found.
    """
    train = zoo("train", "--algo", "vpg", "--env", "CartPole-v1", "-n", "1000", "--save-freq", "500", *QUICK, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    record = zoo("record_training", "--algo", "vpg", "--env", "CartPole-v1", "-n", "20", cwd=tmp_path)
    assert record.returncode == 0, record.stderr
    videos = tmp_path / "logs" / "vpg" / "CartPole-v1_1" / "videos"
    assert sorted(path.name.split("-vpg")[0] for path in videos.glob("*-vpg-*.mp4")) == [
        "checkpoint-1000",
        "checkpoint-500",
        "final-model",
    ]
    assert (videos / "training.mp4").stat().st_size > 0


#: rl-zoo3's entries for a family of envs, and an env of the family
FAMILIES = {"atari": "PongNoFrameskip-v4"}


@pytest.mark.parametrize("entry", sorted(set(yaml.safe_load(DEFAULT_CONFIG.read_text())) - {"default"}))
def test_packaged_hyperparameters_build_a_vpg(entry: str, tmp_path: Path) -> None:
    """Every entry of vpg.yml builds a VPG through rl-zoo3 (skipped where the env's simulator is not installed)."""
    env_id = FAMILIES.get(entry, entry)
    if entry == "atari" and importlib.util.find_spec("ale_py") is None:
        pytest.skip("Atari needs ale-py")
    try:
        gym.make(env_id).close()
    except gym.error.DependencyNotInstalled as error:
        pytest.skip(str(error))
    register()
    manager = ExperimentManager(argparse.Namespace(), "vpg", env_id, str(tmp_path), config=str(DEFAULT_CONFIG), verbose=0)
    model, _ = manager.setup_experiment()
    assert isinstance(model, VPG)
    model.env.close()


def test_conf_file_overrides_packaged_hyperparameters(tmp_path: Path) -> None:
    conf = tmp_path / "mine.yml"
    conf.write_text(yaml.safe_dump({"CartPole-v1": {"n_timesteps": 300, "policy": "MlpPolicy", "n_steps": 100}}))
    main(["train", "--algo", "vpg", "--conf-file", str(conf), "-f", str(tmp_path), "--seed", "0", *QUICK])
    model = VPG.load(tmp_path / "vpg" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert (model.n_steps, model.n_episodes) == (100, None)


def test_other_algorithms_through_the_same_entry_point(tmp_path: Path) -> None:
    main(["train", "--algo", "a2c", "-n", "200", "-f", str(tmp_path), "--seed", "0", *QUICK])
    run = tmp_path / "a2c" / "CartPole-v1_1"
    assert isinstance(A2C.load(run / "CartPole-v1.zip"), A2C)
    assert saved_args(run)["conf_file"] is None  # rl-zoo3's own a2c.yml


@pytest.mark.parametrize("command", ["train", "enjoy", "record_video"])
def test_unknown_algorithm(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--algo", "vpgg"])
    assert exit_info.value.code == 2
    assert "argument --algo: invalid choice: 'vpgg'" in capsys.readouterr().err


def test_unknown_env(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CartPol-v1 not found in gym registry, you maybe meant CartPole-v1"):
        main(["train", "--algo", "vpg", "--env", "CartPol-v1", "-f", str(tmp_path)])


def test_unknown_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fly", "--algo", "vpg"])
    assert "invalid choice: 'fly'" in capsys.readouterr().err


def test_enjoy_without_a_trained_agent_does_not_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="logs/vpg folder was not found"):
        main(["enjoy", "--algo", "vpg", "--no-render"])


def test_sampled_hyperparameters_are_valid_over_any_config() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    # An entry with the other batch unit and a GAE λ: each sample must fully replace them.
    config = {"policy": "MlpPolicy", "n_episodes": 8, "reward_to_go": True, "baseline": "value", "gae_lambda": 0.9}
    env = gym.make("CartPole-v1")
    for _ in range(20):
        trial = study.ask()
        sampled = sample_vpg_params(trial, n_actions=0, n_envs=1, additional_args={})
        assert convert_vpg_params(trial.params) == sampled  # what --trial-id reloads
        VPG(env=env, **{**config, **sampled})
        study.tell(trial, 0.0)
    assert {t.params["batch_unit"] for t in study.trials} == {"episodes", "steps"}
    assert {t.params["estimator"] for t in study.trials} == {estimator.name for estimator in ESTIMATORS}


def test_sampler_samples_the_initial_noise_of_continuous_actions_only() -> None:
    """rl-zoo3 passes the size of a Box action space as ``n_actions`` and 0 for the others."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for n_actions in (0, 1):
        trial = study.ask()
        sampled = sample_vpg_params(trial, n_actions=n_actions, n_envs=1, additional_args={})
        assert convert_vpg_params(trial.params) == sampled
        assert ("log_std_init" in trial.params) == (n_actions > 0) == ("log_std_init" in sampled["policy_kwargs"])
        study.tell(trial, 0.0)
    log_std_inits = set()
    for _ in range(12):
        trial = study.ask()
        sampled = sample_vpg_params(trial, n_actions=1, n_envs=1, additional_args={})
        model = VPG(env=gym.make("Pendulum-v1"), policy="MlpPolicy", **sampled)
        log_std_init = trial.params["log_std_init"]
        assert th.equal(model.policy.log_std.detach().cpu(), th.full((1,), log_std_init))
        log_std_inits.add(log_std_init)
        study.tell(trial, 0.0)
    assert log_std_inits == set(LOG_STD_INITS)


def optimize(*args: str) -> list[str]:
    """
    A tiny ``-optimize`` run of VPG on CartPole: random sampler, no pruning, no plots. (With the random sampler, the
    seeds used below sample small batches: a few episodes, or 256 steps.)
    """
    return ["train", "--algo", "vpg", "-optimize", "-n", "500", "--eval-episodes", "2", "--sampler", "random",
            "--pruner", "none", "--no-optim-plots", *args]  # fmt: skip


def test_optimize_defaults_to_a_sqlite_study(tmp_path: Path) -> None:
    main([*optimize("--n-trials", "1", "--seed", "5", "-f", str(tmp_path)), "--verbose", "0"])
    study = optuna.load_study(storage=f"sqlite:///{tmp_path / 'vpg' / 'optuna.db'}", study_name="vpg-CartPole-v1")
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE]


def test_two_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    storage, name, n_trials = f"sqlite:///{tmp_path / 'sweep.db'}", "sweep", 2
    optuna.create_study(storage=storage, study_name=name, direction="maximize")
    sweep = optimize("--storage", storage, "--study-name", name, "--n-trials", str(n_trials), "-f", "logs")
    workers = [
        subprocess.Popen([sys.executable, "-m", "sb3_vpg.zoo", *sweep, "--seed", str(seed)], cwd=tmp_path, env=SUBPROCESS_ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for seed in (3, 5)
    ]  # fmt: skip
    for worker in workers:
        output = worker.communicate(timeout=300)[0]
        assert worker.returncode == 0, output

    trials = optuna.load_study(storage=storage, study_name=name).trials
    assert [trial.number for trial in trials] == list(range(2 * n_trials))  # none lost, none duplicated
    assert all(trial.state == TrialState.COMPLETE for trial in trials)
    by_worker = {}
    for trial in trials:
        by_worker.setdefault(trial.user_attrs["worker"], []).append(trial.number)
    assert sorted(len(numbers) for numbers in by_worker.values()) == [n_trials, n_trials]
    assert {f"{os.uname().nodename}:{worker.pid}" for worker in workers} == set(by_worker)


def test_train_under_torchrun_writes_one_run_and_enjoy_replays_it(tmp_path: Path) -> None:
    """
    ``torchrun --nproc-per-node 2 -m sb3_vpg.zoo train``: one model trained on 2 ranks, one run folder (rank 0's
    model, config, monitor file and evaluations), one TensorBoard run; the entry's 4 envs split 2 and 2, evaluations
    counted in all ranks' steps; ``enjoy`` replays the run as any other.
    """
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1", "--nproc-per-node=2"]
    options = ["--algo", "vpg", "--env", "Pendulum-v1", "-n", "3200", "--seed", "3", "--verbose", "0"]
    options += ["--eval-freq", "1600", "--eval-episodes", "1", "--tensorboard-log", "tb"]
    result = subprocess.run(
        [*torchrun, "-m", "sb3_vpg.zoo", "train", *options],
        cwd=tmp_path,
        env={**SUBPROCESS_ENV, "GLOO_SOCKET_IFNAME": "lo"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout
    assert [path.name for path in (tmp_path / "logs" / "vpg").iterdir()] == ["Pendulum-v1_1"]
    run = tmp_path / "logs" / "vpg" / "Pendulum-v1_1"
    assert [path.name for path in (tmp_path / "tb" / "Pendulum-v1").iterdir()] == ["VPG_1"]
    # Rank 0's 2 envs, 1,600 of the 3,200 steps: 4 episodes of 200 steps each (rank 1's went to a scratch folder).
    monitors = sorted(run.glob("*.monitor.csv"))
    assert [path.name for path in monitors] == ["0.monitor.csv", "1.monitor.csv"]
    assert all(len(path.read_text().splitlines()) == 2 + 4 for path in monitors)
    model = VPG.load(run / "Pendulum-v1.zip")
    assert model.n_envs == 2 and model.num_timesteps >= 3200
    evaluations = np.load(run / "evaluations.npz")["timesteps"]
    assert len(evaluations) == 2 and 1600 <= evaluations[0] < 1600 + 4 * 200  # every rank's steps, within a rollout
    enjoy = zoo("enjoy", "--algo", "vpg", "--env", "Pendulum-v1", "--no-render", "-n", "200", cwd=tmp_path)
    assert enjoy.returncode == 0, enjoy.stderr


@pytest.mark.parametrize(
    ("n_envs", "batch_in_steps", "world_size", "shares"),
    [(4, True, 2, [2, 2]), (5, True, 2, [3, 2]), (4, True, 4, [1, 1, 1, 1]), (1, False, 3, [1, 1, 1])],
)
def test_the_entrys_envs_are_split_across_the_ranks(n_envs: int, batch_in_steps: bool, world_size: int, shares: list) -> None:
    assert [split_envs(n_envs, batch_in_steps, rank, world_size) for rank in range(world_size)] == shares


def test_a_batch_in_steps_over_fewer_envs_than_ranks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"n_envs=2 envs, which cannot be shared by 4 ranks"):
        split_envs(2, True, 0, 4)


def test_optimize_under_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="-optimize runs without torchrun"):
        main(optimize("--n-trials", "1"))
