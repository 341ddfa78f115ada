"""
The tables of the docs that are generated from the code at build time, so that they cannot drift from it: the
keywords of ``A2C``, ``PPO`` and ``VPG`` (signatures, defaults, the refused keywords and their reasons) and the
estimators of :data:`sb3_vpg.estimators.ESTIMATORS`. Each function returns a Markdown table.

This module needs no Sphinx (``tests/test_keywords.py`` imports it); the Sphinx directives that show the tables are in
``sb3_vpg_docs.py``. What needs words is here too: :data:`KEYWORD_NOTES`, one note per accepted keyword.
"""

import inspect
import re

from stable_baselines3 import A2C, PPO

from sb3_vpg import VPG
from sb3_vpg.checks import REFUSED_KEYWORDS
from sb3_vpg.estimators import ESTIMATORS
from sb3_vpg.vpg import DEFAULT_N_EPISODES

#: What VPG does with a keyword of A2C or PPO that it accepts
SAME, VPG_MEANING, VPG_ONLY, REFUSED = "same", "VPG meaning", "VPG only", "refused"

#: Every keyword VPG accepts: whether it means what it means in A2C/PPO (``SAME``), something the note spells out
#: (``VPG_MEANING``), or is VPG's own (``VPG_ONLY``), with the note shown in the table. The refused keywords are not
#: here: their reasons are VPG's own error messages (``sb3_vpg.checks.REFUSED_KEYWORDS``).
KEYWORD_NOTES: dict[str, tuple[str, str]] = {
    "policy": (SAME, '`"MlpPolicy"`, `"CnnPolicy"`, `"MultiInputPolicy"` or an `ActorCriticPolicy` subclass.'),
    "env": (SAME, "A gymnasium env, a `VecEnv` or an env id."),
    "learning_rate": (SAME, "A float or a schedule of the progress remaining (1 → 0)."),
    "n_steps": (
        SAME,
        "Steps per env per update. Only the episodes that end in a rollout are trained on; one still running is carried "
        "over, whole, to the update in which it ends. Give `n_steps` or `n_episodes`, not both. With `n_episodes`, "
        "`n_steps` is set to ⌈n_episodes / n_envs⌉ × H (H: the env's time limit, else `max_episode_steps`).",
    ),
    "gamma": (SAME, "Discount of the return; `1.0` is the undiscounted R(τ) of Eq. (4)."),
    "gae_lambda": (
        VPG_MEANING,
        'λ of GAE(λ), over whole episodes, nothing bootstrapped. Below 1 it needs `reward_to_go=True, baseline="value"` '
        "(else `ValueError`): drop PPO's `0.95`, or add those two.",
    ),
    "ent_coef": (SAME, "`ent_coef` × (−mean entropy) is added to the loss."),
    "vf_coef": (VPG_MEANING, 'Weight of the value loss, which exists only with `baseline="value"`; ignored otherwise.'),
    "max_grad_norm": (SAME, "Gradient-norm clipping; `None` does not clip (Algorithm 1 as written)."),
    "normalize_advantage": (SAME, "Standardise the weights of log π over the batch (mean 0, std 1)."),
    "use_sde": (SAME, "gSDE, Box actions only."),
    "sde_sample_freq": (SAME, "Resample the gSDE noise every n steps (`-1`: once per rollout)."),
    "rollout_buffer_class": (
        VPG_MEANING,
        "A subclass of `EpisodeRolloutBuffer` (whole episodes); SB3's `RolloutBuffer` is refused with a `TypeError`.",
    ),
    "rollout_buffer_kwargs": (SAME, "Passed to the buffer; give `max_episode_steps` to `VPG` itself."),
    "stats_window_size": (SAME, "Episodes averaged in the `rollout/` logs."),
    "tensorboard_log": (SAME, "Runs are named `VPG_1`, `VPG_2`, …"),
    "policy_kwargs": (
        SAME,
        "`net_arch`, `activation_fn`, `optimizer_class`, …. A2C's optimiser is RMSprop, VPG's SB3's default, Adam: "
        "`optimizer_class=th.optim.RMSprop` keeps A2C's.",
    ),
    "verbose": (SAME, ""),
    "seed": (SAME, "A fixed seed reproduces training on the CPU."),
    "device": (SAME, ""),
    "_init_setup_model": (SAME, "Internal (used by `load`)."),
    "n_episodes": (
        VPG_ONLY,
        "The batch in episodes (the m of Eq. 4): collect until at least this many have ended (under several processes, "
        "of all of them together).",
    ),
    "reward_to_go": (VPG_ONLY, "Weight log π(a_t\\|s_t) by the reward-to-go G_t instead of R(τ) (Eq. 5)."),
    "baseline": (VPG_ONLY, '`None`, `"mean"` (the batch\'s mean return) or `"value"` (the learned V(s_t)) (Eq. 6).'),
    "n_value_steps": (
        VPG_ONLY,
        'With `baseline="value"`: this many optimiser steps on the value loss alone after each update '
        "(Spinning Up's `train_v_iters`).",
    ),
    "chunk_size": (
        VPG_ONLY,
        "Steps per forward/backward pass of an update: bounds its memory, not its result (the chunks' gradients add up "
        "to the batch's). `None`: as many steps as 32 MiB of observations hold.",
    ),
    "collective_timeout": (
        VPG_ONLY,
        "Under several processes (torchrun): the seconds a rank waits for the others at each collective of the update "
        "before it raises `CollectiveError`, naming itself and what it waited for.",
    ),
    "max_episode_steps": (
        VPG_ONLY,
        "The longest episode accepted: VPG keeps every step until its episode ends, so a longer one raises `RuntimeError`.",
    ),
}


def keywords(algo: type) -> dict[str, inspect.Parameter]:
    """The named keywords of an algorithm's constructor (not ``self``, not ``**kwargs``)."""
    parameters = inspect.signature(algo.__init__).parameters
    return {
        name: parameter
        for name, parameter in parameters.items()
        if name != "self" and parameter.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }


def format_default(value: object) -> str:
    """A default as the table shows it: ``—`` for none, floats as written in code (``7e-4``), strings in double quotes."""
    if value is inspect.Parameter.empty:
        return "—"
    if isinstance(value, float) and value != 0 and abs(value) < 1e-2:
        mantissa, exponent = f"{value:e}".split("e")
        return f"`{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}`"
    return f"`{value!r}`".replace("'", '"')


def keyword_rows() -> dict[str, list[str]]:
    """
    One row per keyword of A2C, PPO and VPG, in the order of VPG's signature, then the refused ones: the keyword, its
    default in A2C, PPO, what VPG does with it, its default in VPG, the note. Raises ``ValueError`` when a keyword VPG
    accepts has no note, or a note names a keyword that no longer exists.
    """
    a2c, ppo, vpg = keywords(A2C), keywords(PPO), keywords(VPG)
    refused = [name for name in {**a2c, **ppo} if name not in vpg]
    missing = sorted(set(vpg) - set(KEYWORD_NOTES))
    stale = sorted(set(KEYWORD_NOTES) - set(vpg))
    unexplained = sorted(set(refused) - set(REFUSED_KEYWORDS))
    if missing or stale or unexplained:
        raise ValueError(
            "The keyword table is out of date: "
            f"no note in KEYWORD_NOTES for {missing}, notes for keywords VPG does not take {stale}, "
            f"keywords of A2C/PPO that VPG neither takes nor refuses with a reason {unexplained}."
        )
    rows = {}
    for name in [*vpg, *refused]:
        if name in vpg:
            status, note = KEYWORD_NOTES[name]
            default = format_default(vpg[name].default)
            if name == "n_episodes":
                default += f", {DEFAULT_N_EPISODES} without `n_steps`"
        else:
            status, note, default = REFUSED, REFUSED_KEYWORDS[name] + ".", "—"
        rows[name] = [
            f"`{name}`",
            format_default(a2c[name].default) if name in a2c else "—",
            format_default(ppo[name].default) if name in ppo else "—",
            status,
            default,
            note,
        ]
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown pipe table; ``|`` in a cell must already be escaped."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def keyword_table() -> str:
    """The keyword table of the swap-in guide, as Markdown."""
    header = ["Keyword", "A2C default", "PPO default", "VPG", "VPG default", "Notes"]
    return markdown_table(header, list(keyword_rows().values()))


def _plain(docstring: str | None) -> str:
    """The first line of a docstring as Markdown: Sphinx roles become code, ``|`` is escaped for a table cell."""
    first = (docstring or "").strip().splitlines()[0] if docstring else ""
    first = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", first)
    return first.replace("|", "\\|")


def _selected_by(reward_to_go: bool, baseline: str | None) -> str:
    return f"`reward_to_go={reward_to_go}, baseline={baseline!r}`".replace("'", '"')


def _yes(value: bool) -> str:
    return "✔️" if value else "—"


def estimator_table() -> str:
    """
    The estimators of :data:`sb3_vpg.estimators.ESTIMATORS`, as Markdown: name, the keywords that select it, the
    weight of log π(a_t|s_t) (its function's docstring), its expectation, whether it needs V(s_t), takes λ, and the
    fewest episodes per batch it needs.
    """
    header = ["Name", "Selected by", "Weight of log π(a_t\\|s_t)", "E[ĝ]", "Needs V", "Takes λ", "Min episodes"]
    rows = [
        [
            f"`{estimator.name}`",
            _selected_by(estimator.reward_to_go, estimator.baseline),
            _plain(estimator.weights.__doc__),
            estimator.expectation,
            _yes(estimator.needs_values),
            _yes(estimator.takes_gae_lambda),
            str(estimator.min_episodes),
        ]
        for estimator in ESTIMATORS
    ]
    return markdown_table(header, rows)


def benchmark_subcommands() -> str:
    """The subcommands of ``python -m benchmarks`` (``benchmarks.cli.SUBCOMMANDS``), as Markdown."""
    from benchmarks.cli import SUBCOMMANDS

    rows = [[f"`{name}`", summary] for name, summary in SUBCOMMANDS.items()]
    return markdown_table(["Subcommand", "What it measures"], rows)
