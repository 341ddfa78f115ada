"""The swap test: a pipeline written for PPO runs unchanged with VPG, the class being the only difference."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO

from sb3_vpg import VPG

EXAMPLE = Path(__file__).parents[1] / "examples" / "ppo_pipeline_swap.py"
TINY_BUDGET = {"total_timesteps": 512, "n_envs": 2, "n_steps": 64, "net_arch": (8,), "eval_freq": 256, "n_eval_episodes": 2}


def load_example():
    spec = importlib.util.spec_from_file_location("ppo_pipeline_swap", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("algo", [PPO, VPG])
def test_ppo_pipeline_runs_unchanged_with_vpg(algo: type, tmp_path: Path) -> None:
    """
    The same pipeline function (make_vec_env + VecNormalize + EvalCallback + CheckpointCallback + TensorBoard +
    save/load + evaluate_policy), run with PPO and with VPG, produces the same artefacts and a working reloaded model.
    """
    example = load_example()
    assert example.ALGO is VPG
    result = example.run_pipeline(algo, workdir=tmp_path, **TINY_BUDGET)
    name = algo.__name__
    model, loaded, eval_env = result["model"], result["loaded"], result["eval_env"]
    assert type(model) is algo and type(loaded) is algo
    assert model.num_timesteps == 512

    # TensorBoard run, evaluations at 256 and 512 steps, the best model, checkpoints with their VecNormalize stats.
    (run,) = (tmp_path / "tensorboard").iterdir()
    assert run.name == f"{name}_1" and any(run.glob("events.out.tfevents.*"))
    np.testing.assert_array_equal(np.load(tmp_path / "eval" / "evaluations.npz")["timesteps"], [256, 512])
    assert (tmp_path / "best" / "best_model.zip").is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(
        f"{name.lower()}_{kind}{steps}_steps.{ext}"
        for steps in (256, 512)
        for kind, ext in (("", "zip"), ("vecnormalize_", "pkl"))
    )

    # The reloaded model and statistics act as the trained ones, and evaluate_policy gave a real CartPole return.
    np.testing.assert_array_equal(eval_env.obs_rms.mean, model.get_vec_normalize_env().obs_rms.mean)
    obs = eval_env.reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert result["mean_reward"] >= 8.0 and np.isfinite(result["std_reward"])


def test_swap_example_runs_as_a_script(tmp_path: Path) -> None:
    """``examples/ppo_pipeline_swap.py`` runs from the command line (VPG by default) on a tiny budget."""
    command = [sys.executable, str(EXAMPLE), "--timesteps", "256", "--n-envs", "2", "--n-steps", "32", "--net-arch", "8"]
    command += ["--eval-freq", "128", "--eval-episodes", "2", "--workdir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "VPG on CartPole-v1:" in result.stdout
    assert (tmp_path / "model.zip").is_file() and (tmp_path / "vecnormalize.pkl").is_file()
    assert [p.name for p in (tmp_path / "tensorboard").iterdir()] == ["VPG_1"]
