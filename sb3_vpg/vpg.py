from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from sb3_vpg.buffers import MAX_EPISODE_STEPS, DictEpisodeRolloutBuffer, EpisodeBatch, EpisodeRolloutBuffer, WholeEpisodeMixin
from sb3_vpg.checks import check_finite, check_policy, check_spaces, refuse_keywords
from sb3_vpg.estimators import (
    generalized_advantages,
    mean_return_by_step,
    returns_from_reward_to_go,
    reward_to_go,
    steps_since_start,
)
from sb3_vpg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

SelfVPG = TypeVar("SelfVPG", bound="VPG")

#: Episodes per update when neither ``n_steps`` nor ``n_episodes`` is given (measured: see the README).
DEFAULT_N_EPISODES = 8

BASELINES = (None, "mean", "value")


class VPG(OnPolicyAlgorithm):
    """
    Vanilla Policy Gradient (REINFORCE): Algorithm 1 of the policy-gradient lecture, after Williams (1992).

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
        end during a rollout are trained on; the rest are carried over. Give this or ``n_episodes``, not both.
    :param n_episodes: Batch given in episodes (the m of Algorithm 1): collect until at least this many episodes have
        ended. With neither ``n_steps`` nor ``n_episodes``, ``n_episodes`` is :data:`DEFAULT_N_EPISODES`.
    :param gamma: Discount factor in [0, 1]; 1 (the default) is the lecture's undiscounted return
    :param reward_to_go: Weight log π(a_t|s_t) by the reward-to-go Σ_{t'≥t} γ^(t'-t) r_{t'} instead of R(τ)
    :param baseline: What is subtracted from the returns: ``None`` (Eq. 4), ``"mean"`` (the batch's mean over its m
        episodes of the same return: of R(τ), or of the reward-to-go from the same step t, an episode already over
        counting 0; it includes the sample itself, so E[ĝ] is ((m−1)/m) times the estimator's expectation without
        it) or ``"value"`` (the learned state value V(s_t) of the policy's value head)
    :param gae_lambda: λ of GAE(λ) over whole episodes; below 1 it needs ``reward_to_go=True, baseline="value"``
    :param normalize_advantage: Whether to normalise the weights of log π over the batch (mean 0, std 1)
    :param ent_coef: Entropy coefficient, as in A2C: ``ent_coef * (−mean entropy)`` is added to the loss
    :param vf_coef: Value function coefficient, used with ``baseline="value"`` only
    :param n_value_steps: With ``baseline="value"``, this many more optimiser steps on the value loss alone after each
        update, so that V(s) is fitted closer than one joint step can (Spinning Up's ``train_v_iters``). They move the
        value head, and any layer it shares with the policy, after the batch's weights were computed from V.
    :param max_grad_norm: The maximum norm for gradient clipping; ``None`` (the default) does not clip
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of action noise exploration
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE (-1: once per rollout)
    :param max_episode_steps: The longest episode VPG accepts. Every step is kept until its episode ends, so an
        episode that never ends would grow memory forever: past this length collection raises ``RuntimeError``.
    :param rollout_buffer_class: Rollout buffer class to use, a subclass of
        :class:`~sb3_vpg.buffers.EpisodeRolloutBuffer` or :class:`~sb3_vpg.buffers.DictEpisodeRolloutBuffer`.
        If ``None``, it is selected from the observation space.
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
    rollout_buffer: EpisodeRolloutBuffer | DictEpisodeRolloutBuffer  # type: ignore[assignment]

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
        use_sde: bool = False,
        sde_sample_freq: int = -1,
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
        _check_arguments(
            learning_rate=learning_rate,
            n_steps=n_steps,
            n_episodes=n_episodes,
            gamma=gamma,
            baseline=baseline,
            reward_to_go=reward_to_go,
            gae_lambda=gae_lambda,
            vf_coef=vf_coef,
            n_value_steps=n_value_steps,
            max_grad_norm=max_grad_norm,
            max_episode_steps=max_episode_steps,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
        )
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
            device=device,
            _init_setup_model=False,
        )
        if env is not None:  # VPG.load() without an env builds the model first, then restores the saved spaces
            check_spaces(self.observation_space, self.action_space)
        self.n_episodes = n_episodes
        self.reward_to_go = reward_to_go
        self.baseline = baseline
        self.normalize_advantage = normalize_advantage
        self.max_episode_steps = max_episode_steps
        self.n_value_steps = n_value_steps
        self._n_skipped_updates = 0

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None:
            is_dict = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = DictEpisodeRolloutBuffer if is_dict else EpisodeRolloutBuffer
        self.rollout_buffer_kwargs = {**self.rollout_buffer_kwargs, "max_episode_steps": self.max_episode_steps}
        super()._setup_model()

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if reset_num_timesteps or self._last_obs is None:
            # SB3 resets the envs now: the episodes running in them can never end, so they are forgotten.
            self.rollout_buffer.reset()
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    def _rollout_is_complete(self, n_collected_steps: int) -> bool:
        """
        The batch is full: ``n_steps`` per env collected in this rollout, or ``n_episodes`` episodes ended.

        :param n_collected_steps: Steps per env collected so far in this rollout
        """
        if self.n_episodes is not None:
            return self.rollout_buffer.n_complete_episodes >= self.n_episodes
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
        an episode still running at the end of the rollout stays in the buffer for the update in which it ends. Each
        step is stored before the callback is called, so a callback that stops training leaves a consistent buffer.

        :param env: The training environment
        :param callback: Callback that will be called at each step (and at the beginning and end of the rollout)
        :param rollout_buffer: Buffer to fill with rollouts, a :class:`~sb3_vpg.buffers.WholeEpisodeMixin`
        :param n_rollout_steps: Unused: the batch is ``n_steps`` per env or ``n_episodes`` episodes
        :return: True if the batch was collected, False if the callback stopped training
        """
        assert isinstance(rollout_buffer, WholeEpisodeMixin)
        assert self._last_obs is not None, "No previous observation was provided"
        # Switch to eval mode (this affects batch norm / dropout)
        self.policy.set_training_mode(False)
        rollout_buffer.discard_consumed()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)

        callback.on_rollout_start()

        n_steps = 0
        while not self._rollout_is_complete(n_steps):
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                # Only the actions: log π(a_t|s_t) is computed at update time, and no value is read while collecting.
                actions = self.policy.get_distribution(obs_tensor).get_actions()
            actions = actions.cpu().numpy().reshape((-1, *self.action_space.shape))

            try:
                new_obs, rewards, dones, infos = env.step(self._env_actions(actions))
                check_finite(new_obs, rewards, self.num_timesteps)
            except BaseException:
                # The envs are in an unknown state: the next learn() resets them and forgets the running episodes.
                self._last_obs = None
                raise
            self.num_timesteps += env.num_envs
            n_steps += 1

            rollout_buffer.add(self._last_obs, actions, rewards, self._last_episode_starts, dones)
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
            self._update_info_buffer(infos, dones)

            callback.update_locals(locals())
            if not callback.on_step():
                return False

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        """The actions sent to the env: Box actions unsquashed or clipped to the bounds, as A2C and PPO do."""
        if not isinstance(self.action_space, spaces.Box):
            return actions
        if self.policy.squash_output:
            return self.policy.unscale_action(actions)
        return np.clip(actions, self.action_space.low, self.action_space.high)

    def train(self) -> None:
        """One gradient step on Eq. (4) (or its opt-in variance reductions) over the complete episodes collected."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        batch = self.rollout_buffer.complete_episodes()
        self.logger.record("train/n_episodes", batch.n_episodes)
        if batch.n_episodes == 0:
            # No trajectory has ended: Eq. (4) has no sample to average over.
            self._n_skipped_updates += 1
            self.logger.record("train/n_skipped_updates", self._n_skipped_updates)
            return

        actions = batch.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        values, log_prob, entropy = self.policy.evaluate_actions(batch.observations, actions)
        values = values.flatten()

        # The reward-to-go, once: R(τ), the opt-in weights and the value target all come from it.
        to_go = reward_to_go(batch.rewards, batch.dones, self.gamma)
        returns = returns_from_reward_to_go(to_go, batch.episode_starts)
        weights = self._weights(batch, to_go, returns, values.detach().cpu().numpy())
        weights_tensor = th.as_tensor(weights, dtype=th.float32, device=self.device)
        if self.normalize_advantage:
            weights_tensor = (weights_tensor - weights_tensor.mean()) / (weights_tensor.std() + 1e-8)

        # Eq. (4): Loss(θ) = −(1/m) Σ_i Σ_t log π_θ(a_t|s_t) R(τ_i)   (R(τ_i) or an opt-in weight, per step)
        policy_gradient_loss = -(log_prob * weights_tensor).sum() / batch.n_episodes
        entropy_loss = -th.mean(-log_prob if entropy is None else entropy)
        loss = policy_gradient_loss + self.ent_coef * entropy_loss

        if self.baseline == "value":
            # V(s_t) regresses on the reward-to-go it estimates.
            value_target = to_go[batch.mask]
            value_target_tensor = th.as_tensor(value_target, dtype=th.float32, device=self.device)
            value_loss = F.mse_loss(values, value_target_tensor)
            loss = loss + self.vf_coef * value_loss
            self.logger.record("train/value_loss", value_loss.item())
            self.logger.record("train/explained_variance", explained_variance(values.detach().cpu().numpy(), value_target))

        self.policy.optimizer.zero_grad()
        loss.backward()
        grad_norm = self._clip_gradients()
        self.policy.optimizer.step()
        self._n_updates += 1
        if self.baseline == "value":
            self._fit_value(batch.observations, value_target_tensor)

        episode_returns = returns[batch.mask & (batch.episode_starts > 0)]
        self.logger.record("train/policy_gradient_loss", policy_gradient_loss.item())
        self.logger.record("train/entropy", -entropy_loss.item())
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/return_mean", float(np.mean(episode_returns)))
        self.logger.record("train/return_std", float(np.std(episode_returns)))
        self.logger.record("train/advantage_mean", weights_tensor.mean().item())
        self.logger.record("train/advantage_std", weights_tensor.std().item() if len(weights_tensor) > 1 else 0.0)
        self.logger.record("train/grad_norm", grad_norm)
        self.logger.record("train/n_updates", self._n_updates)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def _weights(self, batch: EpisodeBatch, to_go: np.ndarray, returns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """
        The weight of each log π(a_t|s_t) in the batch (flat): R(τ), or the reward-to-go, less the chosen baseline.

        :param batch: The complete episodes of this update
        :param to_go: The reward-to-go of every step, time-major
        :param returns: R(τ) of every step's episode, time-major
        :param values: V(s_t) of the batch's steps (flat), read only with ``baseline="value"``
        """
        if self.baseline == "value" and self.reward_to_go:
            values_by_step = np.zeros(batch.rewards.shape)
            values_by_step[batch.mask] = values
            return generalized_advantages(batch.rewards, values_by_step, batch.dones, self.gamma, self.gae_lambda)[batch.mask]
        batch_to_go = to_go[batch.mask]
        weights = batch_to_go if self.reward_to_go else returns[batch.mask]
        if self.baseline == "mean":
            # b_t: the mean over the m episodes of the return from step t; b_0 is the mean return R(τ).
            steps = steps_since_start(batch.episode_starts)[batch.mask]
            means = mean_return_by_step(batch_to_go, steps, batch.n_episodes)
            return weights - (means[steps] if self.reward_to_go else means[0])
        if self.baseline == "value":
            return weights - values
        return weights

    def _fit_value(self, observations: th.Tensor | dict[str, th.Tensor], value_target: th.Tensor) -> None:
        """
        ``n_value_steps`` optimiser steps on ``vf_coef`` × the value loss alone. The policy's own parameters get no
        gradient (``zero_grad`` leaves them ``None``), so the optimiser leaves them as they are.

        :param observations: The batch's observations
        :param value_target: The reward-to-go of each of them, the regression target
        """
        for _ in range(self.n_value_steps):
            value_loss = F.mse_loss(self.policy.predict_values(observations).flatten(), value_target)
            self.policy.optimizer.zero_grad()
            (self.vf_coef * value_loss).backward()
            self._clip_gradients()
            self.policy.optimizer.step()

    def _clip_gradients(self) -> float:
        """Clip the gradient norm to ``max_grad_norm`` when one is given; return the norm before clipping."""
        max_norm = float("inf") if self.max_grad_norm is None else self.max_grad_norm
        return th.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm).item()

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


def _check_arguments(
    learning_rate: float | Schedule,
    n_steps: int | None,
    n_episodes: int | None,
    gamma: float,
    baseline: str | None,
    reward_to_go: bool,
    gae_lambda: float,
    vf_coef: float,
    n_value_steps: int,
    max_grad_norm: float | None,
    max_episode_steps: int,
    rollout_buffer_class: type[RolloutBuffer] | None,
    rollout_buffer_kwargs: dict[str, Any] | None,
) -> None:
    """Raise a ``ValueError`` or ``TypeError`` naming the first argument that VPG cannot use."""
    if n_steps is not None and n_episodes is not None:
        raise ValueError(
            f"Give the batch either in steps or in episodes, not both: got n_steps={n_steps} and n_episodes={n_episodes}."
        )
    for name, value in (("n_steps", n_steps), ("n_episodes", n_episodes), ("max_episode_steps", max_episode_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not callable(learning_rate) and not learning_rate >= 0:
        raise ValueError(f"learning_rate must be a non-negative number or a schedule, got {learning_rate!r}.")
    for name, value in (("gamma", gamma), ("gae_lambda", gae_lambda)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}.")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}.")
    if baseline == "mean" and n_episodes == 1:
        raise ValueError(
            "baseline='mean' needs n_episodes >= 2: the mean over one episode is that episode's own return, "
            "so every weight would be 0."
        )
    if gae_lambda != 1.0 and not (reward_to_go and baseline == "value"):
        raise ValueError(
            f"gae_lambda={gae_lambda} needs reward_to_go=True and baseline='value' (GAE discounts the reward-to-go "
            f"against a learned V(s)); got reward_to_go={reward_to_go}, baseline={baseline!r}."
        )
    if not vf_coef >= 0:
        raise ValueError(f"vf_coef must be non-negative, got {vf_coef!r}.")
    if isinstance(n_value_steps, bool) or not isinstance(n_value_steps, int | np.integer) or n_value_steps < 0:
        raise ValueError(f"n_value_steps must be a non-negative integer, got {n_value_steps!r}.")
    if n_value_steps > 0 and baseline != "value":
        raise ValueError(
            f"n_value_steps={n_value_steps} fits the value head, which only baseline='value' uses; got baseline={baseline!r}."
        )
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None (no clipping), got {max_grad_norm!r}.")
    if rollout_buffer_class is not None and not issubclass(rollout_buffer_class, WholeEpisodeMixin):
        raise TypeError(
            f"rollout_buffer_class must be a subclass of sb3_vpg.buffers.EpisodeRolloutBuffer or DictEpisodeRolloutBuffer "
            f"(VPG trains on whole episodes), got {rollout_buffer_class.__name__}."
        )
    if rollout_buffer_kwargs is not None and "max_episode_steps" in rollout_buffer_kwargs:
        raise ValueError("Give max_episode_steps to VPG itself, not in rollout_buffer_kwargs.")
