"""
rl-zoo3 integration without a fork: VPG in rl-zoo3's algorithm table and hyperparameter sampler, and a command line
(``python -m sb3_vpg.zoo`` or ``sb3-vpg-zoo``) that registers it and then hands over to rl-zoo3's own scripts.
"""

from pathlib import Path

try:
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("sb3_vpg.zoo needs rl-zoo3 and optuna: pip install 'sb3-vpg[zoo]'") from error

from sb3_vpg.vpg import VPG
from sb3_vpg.zoo.sampler import convert_vpg_params, sample_vpg_params

#: rl-zoo3's name for VPG (``--algo vpg``)
ALGO = "vpg"
#: The hyperparameters used when ``-conf``/``--conf-file`` is not given
DEFAULT_CONFIG = Path(__file__).parents[1] / "hyperparams" / f"{ALGO}.yml"


def register() -> None:
    """
    Add VPG to rl-zoo3's algorithm table, hyperparameter samplers and converters (used by ``-optimize`` and
    ``--trial-id``). rl-zoo3 reads these tables when its scripts run, so this must come first. Calling it again
    changes nothing.
    """
    ALGOS[ALGO] = VPG
    HYPERPARAMS_SAMPLER[ALGO] = sample_vpg_params
    HYPERPARAMS_CONVERTER[ALGO] = convert_vpg_params


__all__ = ["ALGO", "DEFAULT_CONFIG", "convert_vpg_params", "register", "sample_vpg_params"]
