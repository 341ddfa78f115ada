"""sb3-vpg: vanilla policy gradient (REINFORCE) for Stable-Baselines3."""

from pathlib import Path

from sb3_vpg.vpg import VPG

__version__ = (Path(__file__).parent / "version.txt").read_text().strip()

__all__ = ["VPG", "__version__"]
