"""
Episodes are never cut by the end of a rollout: every step enters exactly one update, inside its whole episode.

The scripted envs name every step by its observation (env tag, episode, step), so the batches handed to the
update can be read back and checked: whole episodes only, none twice, none lost, m counted right.
"""

from collections import Counter

import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_vpg import VPG
from tests.helpers_sb3 import RecordedBatch, record_batches
from tests.scripted_episodes import ScriptedEpisodes

# Three envs with episodes of different lengths, so that rollouts end in the middle of episodes at different places.
SCRIPTS = [[[1.0] * 3, [1.0] * 5], [[1.0] * 7], [[1.0] * 2, [1.0] * 4, [1.0] * 6]]


def episodes_in(batch: RecordedBatch) -> dict[tuple[int, int], list[int]]:
    """The steps of each (env tag, episode) in the batch."""
    steps: dict[tuple[int, int], list[int]] = {}
    for tag, episode, t in batch.observations.cpu().numpy().astype(int):
        steps.setdefault((tag, episode), []).append(t)
    return steps


def episode_length(tag: int, episode: int) -> int:
    return len(SCRIPTS[tag][episode % len(SCRIPTS[tag])])


@pytest.mark.parametrize("batch", [dict(n_steps=4), dict(n_episodes=2)])
def test_every_step_in_exactly_one_update_with_its_whole_episode(batch: dict) -> None:
    env = DummyVecEnv([lambda tag=tag: ScriptedEpisodes(SCRIPTS[tag], tag=tag) for tag in range(len(SCRIPTS))])
    model = VPG("MlpPolicy", env, policy_kwargs=dict(net_arch=[8]), seed=0, **batch)
    batches = record_batches(model)
    model.learn(total_timesteps=120)

    assert model.num_timesteps == 120  # collection stops at the budget
    seen: Counter = Counter()
    for update, batch_ in enumerate(batches):
        episodes = episodes_in(batch_)
        assert batch_.n_episodes == len(episodes)
        if "n_episodes" in batch and update < len(batches) - 1:  # the last batch holds what ended by the budget
            assert batch_.n_episodes >= batch["n_episodes"]
        for (tag, episode), steps in episodes.items():
            # A whole episode, each step once, however many rollouts it spanned.
            assert sorted(steps) == list(range(episode_length(tag, episode)))
            seen[(tag, episode)] += 1
    assert max(seen.values()) == 1

    # Nothing lost: every episode that ended before the last update was trained on.
    # Each env's episodes are counted from its reset, so an env that played k episodes has indices 0..k-1.
    for tag in range(len(SCRIPTS)):
        trained = sorted(episode for (t, episode) in seen if t == tag)
        assert trained == list(range(len(trained)))
    steps_trained = sum(len(batch_.actions) for batch_ in batches)
    buffer = model.rollout_buffer
    waiting = 0 if buffer.batch_trained else buffer.size()  # the last batch stays readable once trained
    assert steps_trained + waiting + buffer.n_running_steps == model.num_timesteps


def test_one_env_batch_in_episodes_uses_exactly_m_fresh_episodes() -> None:
    """
    Algorithm 1 with one env: each update gets the next m episodes, all sampled after the previous update. Episodes of
    2, 4 and 6 steps: 12 steps per batch of m = 3, so 8 updates take 96 steps; the budget of 100 ends the 9th rollout
    with episode 24 (2 steps) ended, which the last update trains on, and 2 steps of episode 25 waiting.
    """
    model = VPG("MlpPolicy", ScriptedEpisodes(SCRIPTS[2]), n_episodes=3, policy_kwargs=dict(net_arch=[8]), seed=0)
    batches = record_batches(model)
    model.learn(total_timesteps=100)
    assert model.num_timesteps == 100 and len(batches) == 9
    for update, batch in enumerate(batches[:-1]):
        assert batch.n_episodes == 3
        assert sorted(episode for _, episode in episodes_in(batch)) == [3 * update, 3 * update + 1, 3 * update + 2]
    assert list(episodes_in(batches[-1])) == [(0, 24)]
    # A full rollout stops as the m-th episode ends: only the episode that the budget interrupted waits.
    assert model.rollout_buffer.batch_trained and model.rollout_buffer.n_running_steps == 2
