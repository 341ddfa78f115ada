import copy
import io
import math
import pathlib
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from sb3_vpg import distributed
from sb3_vpg.buffers import MAX_EPISODE_STEPS, DictEpisodeRolloutBuffer, EpisodeRolloutBuffer
from sb3_vpg.checks import (
    check_arguments,
    check_episodes_per_rank,
    check_finite,
    check_policy,
    check_saved_algorithm,
    check_spaces,
    refuse_keywords,
)
from sb3_vpg.estimators import estimator_for
from sb3_vpg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

SelfVPG = TypeVar("SelfVPG", bound="VPG")

#: Episodes per update when neither ``n_steps`` nor ``n_episodes`` is given (measured: see the docs, "Defaults").
DEFAULT_N_EPISODES = 8

#: Observations (as the float32 the networks take) per chunk of the update when ``chunk_size`` is not given:
#: 32 MiB, so a batch of vectors is one chunk and a batch of 84×84×4 frames is cut every 297 steps.
CHUNK_BYTES = 32 * 2**20


class VPG(OnPolicyAlgorithm):
    """
    Vanilla Policy Gradient (REINFORCE, Williams 1992), as Algorithm 1 of the docs' "Key equations" states it.

    Each update samples m whole trajectories τ_i with π_θ and takes one optimiser step on

        Loss(θ) = −(1/m) Σ_i Σ_t log π_θ(a_t|s_t) R(τ_i)        (Eq. 4)

    where R(τ_i) = Σ_t γ^t r_t is the return of the whole trajectory, counted from its first step. Episodes are
    never cut by the end of a rollout: one still running is carried over and enters, whole, the update in which it
    ends. A time-limit truncation ends τ (finite horizon H); no value estimate ever enters R(τ).

    The classic variance reductions are opt-in: ``reward_to_go``, ``baseline`` (batch mean or learned state value,
    with GAE(λ) through ``gae_lambda``), ``normalize_advantage`` and ``ent_coef``.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy or an ``ActorCriticPolicy`` class)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate, it can be a function of the current progress remaining (from 1 to 0)
    :param n_steps: Batch given in steps: the number of steps to run for each env per update. Only the episodes that
        end during a rollout are trained on; the rest are carried over. Give this or ``n_episodes``, not both. With
        the batch in episodes, ``n_steps`` is set to ⌈n_episodes / n_envs⌉ × H, the most steps per env that a batch
        can take when no episode lasts more than H steps (H: the env's time limit, else ``max_episode_steps``), so
        that code which sizes its work from ``n_steps`` (imitation's GAIL, ...) can.
    :param n_episodes: Batch given in episodes (the m of Algorithm 1): collect until at least this many episodes have
        ended. With neither ``n_steps`` nor ``n_episodes``, ``n_episodes`` is 8 (:data:`DEFAULT_N_EPISODES`). Under
        several processes, m is the whole batch's: rank r collects its share, ⌊m / N⌋, one more for r < m mod N.
    :param gamma: Discount factor in [0, 1]; 1 (the default) is the undiscounted return of Eq. (4)
    :param reward_to_go: Weight log π(a_t|s_t) by the reward-to-go Σ_{t'≥t} γ^(t'-t) r_{t'} instead of R(τ)
    :param baseline: What is subtracted from the returns: ``None`` (Eq. 4), ``"mean"`` (the batch's mean over its m
        episodes of the same return: of R(τ), or of the reward-to-go from the same step t, an episode already over
        counting 0; it includes the sample itself, so E[ĝ] is ((m−1)/m) times the estimator's expectation without
        it) or ``"value"`` (the learned state value V(s_t) of the policy's value head)
    :param gae_lambda: λ of GAE(λ) over whole episodes; below 1 it needs ``reward_to_go=True, baseline="value"``
    :param normalize_advantage: Whether to normalise the weights of log π over the batch (mean 0, std 1); a batch of
        one step is left as it is, as in PPO
    :param ent_coef: Entropy coefficient, as in A2C: ``ent_coef * (−mean entropy)`` is added to the loss
    :param vf_coef: Value function coefficient, used with ``baseline="value"`` only
    :param n_value_steps: With ``baseline="value"``, this many more optimiser steps on the value loss alone after each
        update, so that V(s) is fitted closer than one joint step can (Spinning Up's ``train_v_iters``). They move the
        value head, and any layer it shares with the policy, after the batch's weights were computed from V.
    :param max_grad_norm: The maximum norm for gradient clipping; ``None`` (the default) does not clip
    :param chunk_size: Steps per forward/backward pass of an update. The gradients of the chunks add up to the
        gradient of the whole batch, so it sets the update's memory, not its result. ``None``: as many steps as
        32 MiB of observations hold (:data:`CHUNK_BYTES`).
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of action noise exploration
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE (-1: once per rollout)
    :param collective_timeout: Under several processes (:mod:`sb3_vpg.distributed`), the seconds a rank waits for the
        others at each collective of the update before it raises :class:`~sb3_vpg.distributed.CollectiveError`
    :param max_episode_steps: The longest episode VPG accepts. Every step is kept until its episode ends, so an
        episode that never ends would grow memory forever: past this length collection raises ``RuntimeError``.
    :param rollout_buffer_class: Rollout buffer class to use, a subclass of
        :class:`~sb3_vpg.buffers.EpisodeRolloutBuffer`. If ``None``, it is selected from the observation space.
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation (``optimizer_class``, ...)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    rollout_buffer: EpisodeRolloutBuffer

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 5e-4,
        n_steps: int | None = None,
        n_episodes: int | None = None,
        gamma: float = 1.0,
        reward_to_go: bool = False,
        baseline: str | None = None,
        gae_lambda: float = 1.0,
        normalize_advantage: bool = False,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        n_value_steps: int = 0,
        max_grad_norm: float | None = None,
        chunk_size: int | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        collective_timeout: float = distributed.DEFAULT_TIMEOUT,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        **unsupported_kwargs: Any,
    ):
        refuse_keywords(unsupported_kwargs)
        check_policy(policy, self.policy_aliases)
        if n_steps is None and n_episodes is None:
            n_episodes = DEFAULT_N_EPISODES
        check_arguments(
            learning_rate=learning_rate,
            n_steps=n_steps,
            n_episodes=n_episodes,
            gamma=gamma,
            reward_to_go=reward_to_go,
            baseline=baseline,
            gae_lambda=gae_lambda,
            vf_coef=vf_coef,
            n_value_steps=n_value_steps,
            max_grad_norm=max_grad_norm,
            chunk_size=chunk_size,
            max_episode_steps=max_episode_steps,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            collective_timeout=collective_timeout,
        )
        if env is not None:  # VPG.load() without an env builds the model first, then restores the saved spaces
            env = maybe_make_env(env, verbose)
            check_spaces(env.observation_space, env.action_space)  # before SB3 wraps the env, which fails less clearly
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,  # type: ignore[arg-type]
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=distributed.device_for(device),
            _init_setup_model=False,
        )
        self.n_episodes = n_episodes
        self.reward_to_go = reward_to_go
        self.baseline = baseline
        self.normalize_advantage = normalize_advantage
        self.max_episode_steps = max_episode_steps
        self.n_value_steps = n_value_steps
        self.chunk_size = chunk_size
        self.collective_timeout = collective_timeout
        self._n_skipped_updates = 0

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # Resolved here, after VPG.load() has restored the saved hyperparameters: the keywords select one estimator,
        # and the ranks (one, without a launcher) join.
        self.estimator = estimator_for(self.reward_to_go, self.baseline)
        rank, world_size = distributed.rank(), distributed.world_size()
        check_episodes_per_rank(self.n_episodes, world_size)
        self._join_ranks()
        #: Where this rank's envs stand among all ranks' (env i here is env ``_env_offset + i`` of all) and how many
        #: there are: as if every rank had this one's, until the first ``learn()`` counts them (see _synchronize_ranks)
        self._env_offset, self._n_envs_global = rank * self.n_envs, world_size * self.n_envs
        if self.n_episodes is not None:  # this rank's share of the batch's m episodes
            share, remainder = divmod(self.n_episodes, world_size)
            self._rank_episodes = share + int(rank < remainder)
        if self.n_steps is None:  # the batch in episodes (and models saved by 0.1.0, which kept None)
            self.n_steps = math.ceil(self._rank_episodes / self.n_envs) * self._horizon()
        if self.chunk_size is None:
            self.chunk_size = max(1, CHUNK_BYTES // (4 * _flattened_dim(self.observation_space)))
        if self.rollout_buffer_class is None:
            is_dict = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = DictEpisodeRolloutBuffer if is_dict else EpisodeRolloutBuffer
        self.rollout_buffer_kwargs = {**self.rollout_buffer_kwargs, "max_episode_steps": self.max_episode_steps}
        super()._setup_model()

    def _join_ranks(self) -> None:
        """
        The collectives of this model: those of the ranks when a launcher started several processes (joining torch's
        process group unless the program has), else those of one process. A model without env (``VPG.load`` to
        predict) joins nothing until it learns. Joining exchanges nothing: the ranks first do at ``learn()``.
        """
        launched = self.env is not None and distributed.world_size() > 1
        self._collectives = distributed.join(self.device, self.collective_timeout) if launched else distributed.Collectives()

    def set_random_seed(self, seed: int | None = None) -> None:
        """
        Seed the random number generators, the action space and the envs, as SB3 does. Under several processes, rank
        r's envs are seeded as the envs of all ranks, in rank order, would be in one process (env i of rank r with
        ``seed`` plus its index among all), and rank r's generators with its first env's seed, so that no two ranks
        sample alike; rank 0 is seeded as a single process is.

        :param seed: The seed (nothing is seeded if ``None``)
        """
        super().set_random_seed(None if seed is None else seed + getattr(self, "_env_offset", 0))

    def _horizon(self) -> int:
        """H, the longest an episode can last: the envs' time limit (from their spec), else ``max_episode_steps``."""
        try:
            specs = self.env.get_attr("spec") if self.env is not None else [None]
        except AttributeError:
            specs = [None]
        limits = [limit for spec in specs if (limit := getattr(spec, "max_episode_steps", None)) is not None]
        if len(limits) < len(specs):
            return self.max_episode_steps
        return min(max(limits), self.max_episode_steps)

    def _excluded_save_params(self) -> list[str]:
        # Derived when the model is set up again: the estimator from the saved keywords, the ranks from the launcher.
        derived = ["estimator", "_collectives", "_n_envs_global", "_env_offset", "_rank_episodes"]
        return [*super()._excluded_save_params(), *derived]

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if self._collectives.world_size == 1:
            self._join_ranks()  # (a model loaded without env, given one since)
        if self._collectives.rank != 0:  # rank 0 logs for all: no other rank writes a TensorBoard run or prints
            self.set_logger(Logger(folder=None, output_formats=[]))
            progress_bar = False
        self._synchronize_ranks()
        total_timesteps, callback = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        # The first observation is checked like every later one (a reset does not go through collect_rollouts).
        check_finite(self._last_obs, None, self.num_timesteps)  # type: ignore[arg-type]
        return total_timesteps, callback

    def _synchronize_ranks(self) -> None:
        """
        Under several processes, before ``learn()`` goes on: every rank holds the same update count (an interrupt can
        land after one rank's commit and before another's), then rank 0's parameters, and normalises from rank 0's
        ``VecNormalize`` statistics, which the ranks' own samples then add to and each rollout's end merges. The
        ranks' envs are counted; a rank whose envs do not stand where equal counts would put them is seeded again.
        """
        if self._collectives.world_size == 1:
            return
        counts = self._collectives.gather_counts(self._n_updates)
        if len(set(counts)) > 1:
            raise RuntimeError(
                f"The ranks hold different updates (update counts by rank: {counts}): an interrupt stopped some ranks "
                "after their update's commit and others before it. Resume every rank from the same checkpoint."
            )
        n_envs = self._collectives.gather_counts(self.n_envs)
        offset, self._n_envs_global = sum(n_envs[: self._collectives.rank]), sum(n_envs)
        if offset != self._env_offset:
            self._env_offset = offset
            self.set_random_seed(self.seed)
        self._collectives.broadcast_parameters(self.policy)
        self._collectives.share_running_stats(self._normalization_statistics())

    def _normalization_statistics(self) -> list[RunningMeanStd]:
        """The running statistics of the envs' ``VecNormalize``, if any: of the observations (each key's) and returns."""
        normalizer = self.get_vec_normalize_env()
        if normalizer is None:
            return []
        if not normalizer.norm_obs:  # (SB3 keeps no statistics of the observations then)
            return [normalizer.ret_rms]
        observations = normalizer.obs_rms if isinstance(normalizer.obs_rms, dict) else {"": normalizer.obs_rms}
        return [*(observations[key] for key in sorted(observations)), normalizer.ret_rms]

    def _rollout_is_complete(self, n_collected_steps: int) -> bool:
        """
        The batch is full: ``n_steps`` per env collected in this rollout, or ``n_episodes`` episodes ended; or the
        budget of ``learn()`` is spent (the episodes still running then wait for the next call).

        :param n_collected_steps: Steps per env collected so far in this rollout
        """
        if self.num_timesteps >= self._total_timesteps:
            return True
        if self.n_episodes is not None:
            return self.rollout_buffer.n_episodes >= self._rank_episodes
        return n_collected_steps >= self.n_steps

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """
        Collect whole episodes with the current policy into the rollout buffer.

        Unlike SB3's version, nothing is bootstrapped: a time-limit truncation ends the episode (finite horizon), and
        an episode still running at the end of the rollout stays in the buffer for the update in which it ends. A
        step is all or nothing: if anything fails between ``env.step`` and the end of ``add`` (an env exception, an
        interrupt), the envs are reset at the next ``learn()`` and the buffer drops their running episodes, whole.

        :param env: The training environment
        :param callback: Callback that will be called at each step (and at the beginning and end of the rollout)
        :param rollout_buffer: Buffer to fill with rollouts, an :class:`~sb3_vpg.buffers.EpisodeRolloutBuffer`
        :param n_rollout_steps: Unused: the batch is ``n_steps`` per env or ``n_episodes`` episodes
        :return: True if the batch was collected, False if the callback stopped training
        """
        assert isinstance(rollout_buffer, EpisodeRolloutBuffer)
        assert self._last_obs is not None, "No previous observation was provided"
        # Switch to eval mode (this affects batch norm / dropout)
        self.policy.set_training_mode(False)
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        if rollout_buffer.batch_trained:  # kept readable since the last update, as SB3 keeps its last rollout
            rollout_buffer.discard_batch()

        callback.on_rollout_start()

        start_timesteps, n_steps = self.num_timesteps, 0
        while not self._rollout_is_complete(n_steps):
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions = self._sample_actions(obs_tensor).cpu().numpy()

            try:
                new_obs, rewards, dones, infos = env.step(self._env_actions(actions))
                check_finite(new_obs, rewards, self.num_timesteps)  # type: ignore[arg-type]
                self.num_timesteps += self._n_envs_global  # every rank's envs, as if they stepped with these
                rollout_buffer.add(self._last_obs, actions, rewards, self._last_episode_starts, done=dones)  # type: ignore[arg-type]
                self._last_obs, self._last_episode_starts = new_obs, dones  # type: ignore[assignment]
            except BaseException:
                # The envs may be a step ahead of the buffer: the next learn() resets them (their running episodes
                # are dropped, whole); the complete episodes stay for the next update.
                self._last_obs = None
                raise
            n_steps += 1
            self._update_info_buffer(infos, dones)

            callback.update_locals(locals())
            if not callback.on_step():
                self._end_rollout(start_timesteps, n_steps, stopped=True)
                return False

        if not self._end_rollout(start_timesteps, n_steps, stopped=False):
            return False
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _end_rollout(self, start_timesteps: int, n_steps: int, stopped: bool) -> bool:
        """
        Where every rank's rollout ends: the timesteps become those all ranks took, the ``VecNormalize`` statistics
        those of all ranks' samples, and training goes on only if no rank's callback stopped it. In one process, the
        rollout's own.

        :param start_timesteps: ``num_timesteps`` when the rollout started
        :param n_steps: Steps per env of this rank's rollout
        :param stopped: Whether this rank's callback stopped training
        :return: Whether every rank goes on
        """
        assert self.env is not None
        what = "the end of the rollout (every rank's steps, and whether a callback stopped)"
        steps, n_stopped = self._collectives.total(np.array([n_steps * self.env.num_envs, stopped]), what=what)
        self.num_timesteps = start_timesteps + int(steps)
        self._collectives.merge_running_stats(self._normalization_statistics())
        return n_stopped == 0

    def _sample_actions(self, obs: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
        """
        a_t ~ π(·|s_t), for collection. VPG needs neither log π(a_t|s_t) nor V(s_t) here (both are computed at update
        time, with the parameters that the update differentiates), so SB3's own policy only samples from its
        distribution; a policy whose ``forward`` is not SB3's (wrapped by ``torch.compile``, or overridden in a
        subclass) is called through ``forward``, as PPO's collection does, so that what it does takes effect. Both
        draw the same actions.

        :param obs: The observations of every env, as tensors
        :return: The sampled actions, shaped as the action space
        """
        if type(self.policy).forward is ActorCriticPolicy.forward:
            actions = self.policy.get_distribution(obs).get_actions()
            return actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]  # as ActorCriticPolicy.forward
        actions, _, _ = self.policy(obs)
        return actions

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        """The actions sent to the env: Box actions unsquashed or clipped to the bounds, as A2C and PPO do."""
        if not isinstance(self.action_space, spaces.Box):
            return actions
        if self.policy.squash_output:
            return self.policy.unscale_action(actions)
        return np.clip(actions, self.action_space.low, self.action_space.high)

    # Gradients are enabled here, not assumed: an interrupt as a `with th.no_grad()` block ends can skip its __exit__
    # (CPython, bpo-29988) and leave them off.
    @th.enable_grad()
    def train(self) -> None:
        """
        One gradient step on Eq. (4) (or its opt-in variance reductions) over the complete episodes collected. The
        update is all or nothing: until it ends, the batch stays in the buffer, and an exception or an interrupt
        puts the policy and optimiser back as they were.

        Under several processes each rank holds a part of the batch, and every sum over the batch (m, the steps, the
        weights' means and std, the gradient, the logged values) is the sum of the ranks' parts: the update is the one
        a single process computes over all ranks' episodes.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.rollout_buffer
        batch = (0, 0) if buffer.batch_trained else (buffer.n_episodes, buffer.size())
        counts = self._collectives.total(np.array([*batch, buffer.n_dropped_episodes]), what="the count of the batch")
        n_episodes, n_batch_steps, n_dropped_episodes = (int(count) for count in counts)
        self.logger.record("train/n_episodes", n_episodes)
        self.logger.record("train/n_dropped_episodes", n_dropped_episodes)
        if n_episodes == 0:
            # No trajectory has ended since the last update: Eq. (4) has no sample to average over.
            self._n_skipped_updates += 1
            self.logger.record("train/n_skipped_updates", self._n_skipped_updates)
            return

        values = self._batch_values() if self.estimator.needs_values else None
        total = self._collectives.total
        buffer.compute_advantages(self.estimator, values, self.normalize_advantage, total, (n_episodes, n_batch_steps))

        # The loss is a sum over steps: the gradients of the chunks (and of the ranks) add up to that of the batch.
        self.policy.optimizer.zero_grad()
        policy_gradient_loss_sum = entropy_loss_sum = value_loss_sum = 0.0
        for rollout_data in buffer.get(self.chunk_size):
            actions = rollout_data.actions
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.long().flatten()
            chunk_values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)

            # Eq. (4): Loss(θ) = −(1/m) Σ_i Σ_t log π_θ(a_t|s_t) R(τ_i)   (R(τ_i) or an opt-in weight, per step)
            policy_gradient_loss = -(log_prob * rollout_data.advantages).sum() / n_episodes
            entropy_loss = -(-log_prob if entropy is None else entropy).sum() / n_batch_steps
            loss = policy_gradient_loss + self.ent_coef * entropy_loss
            if self.estimator.needs_values:
                # V(s_t) regresses on the reward-to-go it estimates.
                value_loss = F.mse_loss(chunk_values.flatten(), rollout_data.returns, reduction="sum") / n_batch_steps
                loss = loss + self.vf_coef * value_loss
                value_loss_sum += value_loss.item()
            loss.backward()
            policy_gradient_loss_sum += policy_gradient_loss.item()
            entropy_loss_sum += entropy_loss.item()
        self._collectives.sum_gradients(self.policy.parameters())

        losses = [policy_gradient_loss_sum, entropy_loss_sum, value_loss_sum]
        statistics = total(np.array(losses + _batch_sums(buffer, values)), what="the sums behind train/*")
        policy_gradient_loss_sum, entropy_loss_sum, value_loss_sum = statistics[:3]
        total_loss = policy_gradient_loss_sum + self.ent_coef * entropy_loss_sum + self.vf_coef * value_loss_sum
        grad_norm = self._clip_gradients(total_loss)
        self._step_all_or_nothing(n_batch_steps)

        return_mean, return_std, advantage_mean, advantage_std, explained = _batch_statistics(
            statistics[3:], n_episodes, n_batch_steps
        )
        if values is not None:
            self.logger.record("train/value_loss", value_loss_sum)
            self.logger.record("train/explained_variance", explained)
        self.logger.record("train/policy_gradient_loss", policy_gradient_loss_sum)
        self.logger.record("train/entropy", -entropy_loss_sum)
        self.logger.record("train/loss", total_loss)
        self.logger.record("train/return_mean", return_mean)
        self.logger.record("train/return_std", return_std)
        self.logger.record("train/advantage_mean", advantage_mean)
        self.logger.record("train/advantage_std", advantage_std)
        self.logger.record("train/grad_norm", grad_norm)
        self.logger.record("train/n_updates", self._n_updates)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def _batch_values(self) -> np.ndarray:
        """V(s_t) of every step of the batch, chunk by chunk, for the weights of an estimator that subtracts it."""
        with th.no_grad():
            values = [
                self.policy.predict_values(observations).flatten().cpu().numpy()
                for observations in self.rollout_buffer.observation_chunks(self.chunk_size)
            ]
        return np.concatenate(values) if values else np.zeros(0, dtype=np.float32)

    def _fit_value(self, n_steps: int) -> None:
        """
        ``n_value_steps`` optimiser steps on ``vf_coef`` × the value loss alone, over the batch chunk by chunk. The
        policy's own parameters get no gradient (``zero_grad`` leaves them ``None``), so the optimiser leaves them.

        :param n_steps: The steps of the whole batch (of every rank's part)
        """
        for _ in range(self.n_value_steps):
            self.policy.optimizer.zero_grad()
            loss = 0.0
            for rollout_data in self.rollout_buffer.get(self.chunk_size):
                values = self.policy.predict_values(rollout_data.observations).flatten()
                value_loss = self.vf_coef * F.mse_loss(values, rollout_data.returns, reduction="sum") / n_steps
                value_loss.backward()
                loss += value_loss.item()
            self._collectives.sum_gradients(self.policy.parameters())
            self._clip_gradients(loss)
            self.policy.optimizer.step()

    def _clip_gradients(self, loss: float) -> float:
        """
        Clip the gradient norm to ``max_grad_norm`` when one is given; return the norm before clipping. A gradient that
        is not finite stops the update before any parameter moves.

        :param loss: The loss whose gradient this is, for the message when it is not finite
        """
        max_norm = float("inf") if self.max_grad_norm is None else self.max_grad_norm
        grad_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm).item()
        if not math.isfinite(grad_norm):
            raise ValueError(self._non_finite_gradient_message(grad_norm, loss))
        return grad_norm

    def _non_finite_gradient_message(self, grad_norm: float, loss: float) -> str:
        """What a non-finite gradient comes from: the policy's outputs, or the weights of log π that scale them."""
        buffer = self.rollout_buffer
        message = (
            f"The gradient of the update is not finite (norm {grad_norm}, loss {loss:.3g}); the batch's observations and "
            f"rewards are finite, its returns reach |R(τ)| = {np.abs(buffer.episode_returns).max():.3g} and the weights "
            f"of log π(a_t|s_t) |w| = {np.abs(buffer.advantages).max():.3g}. "
        )
        if not all(th.isfinite(parameter).all() for parameter in self.policy.parameters()):
            return message + "The policy's parameters are not finite: an earlier update diverged; lower the learning rate."
        if math.isfinite(loss):
            return message + (
                "The loss is finite, its gradient is not: the weights scale it past float32's range. Scale the rewards "
                "down (VecNormalize(norm_reward=True), or a wrapper such as gymnasium.wrappers.TransformReward), or set "
                "normalize_advantage=True."
            )
        return message + (
            "The policy's outputs (log π, its entropy or V) are not finite for these observations: normalise the "
            "observations (VecNormalize), lower the learning rate, or bound the step with max_grad_norm."
        )

    def _step_all_or_nothing(self, n_batch_steps: int) -> None:
        """
        The optimiser step, the value steps and the commit: the update count goes up and the batch is marked trained.
        Whatever is raised before the commit puts the policy, the optimiser and the update count back as they were; the
        commit is one assignment, and whatever is raised after it finishes it, never undoes it.

        :param n_batch_steps: The steps of the whole batch, for the value steps' loss
        """
        policy_state = copy.deepcopy(self.policy.state_dict())
        optimizer_state = copy.deepcopy(self.policy.optimizer.state_dict())
        n_updates = self._n_updates
        try:
            self.policy.optimizer.step()
            self._fit_value(n_batch_steps)
            self._n_updates = n_updates + 1  # the commit
            self.rollout_buffer.mark_trained()
        except BaseException:
            if self._n_updates == n_updates:
                self.policy.load_state_dict(policy_state)
                self.policy.optimizer.load_state_dict(optimizer_state)
            else:
                self.rollout_buffer.mark_trained()
            raise

    def learn(
        self: SelfVPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "VPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfVPG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfVPG],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfVPG:
        """
        Load a VPG model saved with :meth:`save`, as SB3's ``load`` does; a zip saved by another algorithm is refused
        with a message naming that algorithm and how to load just its policy into VPG.
        """
        check_saved_algorithm(path)
        return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)


def _batch_sums(buffer: EpisodeRolloutBuffer, values: np.ndarray | None) -> list[float]:
    """
    The sums over the batch (this rank's part) that the logged statistics come from: of R(τ) and R(τ)² over the
    episodes, of the weights and their squares over the steps, and, with V(s_t), of the reward-to-go G_t, G_t², the
    residual G_t − V(s_t) and its square.
    """
    n_steps = buffer.size()
    returns, weights = buffer.episode_returns.astype(np.float64), buffer.advantages[:n_steps].astype(np.float64)
    residuals = np.zeros(0) if values is None else buffer.returns[:n_steps] - values
    to_go = buffer.returns[:n_steps].astype(np.float64) if values is not None else np.zeros(0)
    arrays = (returns, weights, to_go, residuals.astype(np.float64))
    return [float(total) for array in arrays for total in (array.sum(), np.square(array).sum())]


def _batch_statistics(sums: np.ndarray, n_episodes: int, n_steps: int) -> tuple[float, float, float, float, float]:
    """
    The logged statistics of the whole batch, from the sums of :func:`_batch_sums` over the ranks: R(τ)'s mean and
    std, the weights' mean and std (ddof 1; 0 for one step), and the value head's explained variance
    1 − Var(G_t − V(s_t)) / Var(G_t) (NaN when Var(G_t) is 0, as SB3's ``explained_variance``).
    """

    def mean_and_variance(total: float, total_of_squares: float, n: int, ddof: int = 0) -> tuple[float, float]:
        mean = total / n
        return mean, max(total_of_squares - n * mean**2, 0.0) / (n - ddof)

    return_mean, return_variance = mean_and_variance(sums[0], sums[1], n_episodes)
    weight_mean, weight_variance = mean_and_variance(sums[2], sums[3], n_steps, ddof=1) if n_steps > 1 else (sums[2], 0.0)
    _, to_go_variance = mean_and_variance(sums[4], sums[5], n_steps)
    _, residual_variance = mean_and_variance(sums[6], sums[7], n_steps)
    explained = float("nan") if to_go_variance == 0 else 1 - residual_variance / to_go_variance
    return return_mean, math.sqrt(return_variance), weight_mean, math.sqrt(weight_variance), explained


def _flattened_dim(observation_space: spaces.Space) -> int:
    """The number of floats an observation becomes in the networks (a Dict observation: all its keys)."""
    if isinstance(observation_space, spaces.Dict):
        return sum(get_flattened_obs_dim(space) for space in observation_space.spaces.values())
    return get_flattened_obs_dim(observation_space)
