"""
Screenshot of TensorBoard showing a VPG run's scalars, for the docs: trains a short VPG run with
``tensorboard_log`` (or uses ``--logdir``), serves it with a real ``tensorboard --logdir`` on localhost, and has
headless Chromium (Debian's ``chromium``: ``apt-get install -y chromium``) take the picture.

    python -m benchmarks tensorboard --out docs/images/tensorboard.png
"""

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchmarks.common import VALUE_BASELINE, add_seed_argument
from sb3_vpg import VPG

#: Headless Chromium, offline and without any state of its own
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def train_run(logdir: Path, env_id: str, timesteps: int, seed: int) -> None:
    """
    Train VPG with a learned baseline (so that every scalar it logs is there), logging it for TensorBoard.

    :param logdir: The ``tensorboard_log`` folder
    :param env_id: The gymnasium id of the env
    :param timesteps: Training timesteps
    :param seed: The seed of the env and the model
    """
    VPG("MlpPolicy", env_id, seed=seed, tensorboard_log=str(logdir), **VALUE_BASELINE).learn(timesteps)


def free_port() -> int:
    """A TCP port that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_scalars(url: str, timeout: float) -> None:
    """
    Wait until TensorBoard serves scalars of at least one run.

    :param url: TensorBoard's address
    :param timeout: Seconds to wait at most
    :raises TimeoutError: If it serves none in time
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/data/plugin/scalars/tags", timeout=5) as response:
                if json.load(response):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"TensorBoard at {url} served no scalars within {timeout:.0f} s")


def screenshot(url: str, out: Path, width: int, height: int, chromium: str, render_ms: int) -> None:
    """
    Have headless Chromium load a page and write what it shows to a PNG.

    :param url: The page
    :param out: The PNG to write
    :param width: The window's width in pixels
    :param height: The window's height in pixels
    :param chromium: The Chromium binary
    :param render_ms: The virtual time Chromium gives the page to render, in milliseconds
    """
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={render_ms}",
            f"--screenshot={out.resolve()}",
            url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``tensorboard``.

    :param parser: Its parser
    """
    parser.add_argument("--out", type=Path, default=Path("docs/images/tensorboard.png"), help="the PNG to write")
    parser.add_argument("--logdir", type=Path, help="TensorBoard logs to show (default: train a VPG run first)")
    parser.add_argument("--env", default="CartPole-v1", help="env of the VPG run trained when --logdir is not given")
    parser.add_argument("--timesteps", type=int, default=50_000, help="timesteps of that run")
    add_seed_argument(parser, of="that run")
    parser.add_argument("--tag-filter", default="train/|rollout/ep_rew_mean", help="regex of the scalars shown")
    parser.add_argument("--size", type=int, nargs=2, default=(1400, 1600), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--render-ms", type=int, default=20_000, help="virtual time Chromium gives the page to render")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium", help="the Chromium binary")


def main(args: argparse.Namespace) -> None:
    """
    Train a run (unless ``--logdir`` is given), serve it with TensorBoard, and take the screenshot.

    :param args: The options of ``tensorboard``
    """
    with tempfile.TemporaryDirectory() as workdir:
        logdir = args.logdir or Path(workdir)
        if args.logdir is None:
            train_run(logdir, args.env, args.timesteps, args.seed)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        tensorboard = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_scalars(url, timeout=120)
            page = f"{url}/?darkMode=false#scalars&tagFilter={urllib.parse.quote(args.tag_filter, safe='')}"
            width, height = args.size
            screenshot(page, args.out, width, height, args.chromium, args.render_ms)
        finally:
            tensorboard.terminate()
            tensorboard.wait(timeout=30)
    print(f"Wrote {args.out}")
