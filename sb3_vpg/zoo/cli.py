"""
The command line: ``python -m sb3_vpg.zoo COMMAND [rl-zoo3 options]`` (or ``sb3-vpg-zoo``).

Every option goes to rl-zoo3 unchanged. For ``--algo vpg`` a few defaults are put before them, where the user gave
none: the package's ``vpg.yml`` as ``--conf-file``; for ``-optimize``, a SQLite ``--storage`` in the log folder and
a ``--study-name``; for ``enjoy``/``record_video``/``record_training``, the ``logs`` folder that ``train`` writes to
(rl-zoo3's default folder would download pretrained agents, and there are none for VPG).
"""

import argparse
import contextlib
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import rl_zoo3.train
from rl_zoo3.enjoy import enjoy
from torch.distributed.elastic.multiprocessing.errors import record

from sb3_vpg import distributed
from sb3_vpg.zoo import ALGO, DEFAULT_CONFIG, register
from sb3_vpg.zoo.distributed import DistributedExperimentManager


@contextlib.contextmanager
def _experiment_manager_of_this_rank() -> Iterator[None]:
    """
    While it lasts, rl-zoo3's ``train`` builds its experiment with :class:`DistributedExperimentManager` when torchrun
    (or another launcher) started several processes; in one process, rl-zoo3's own.
    """
    if distributed.world_size() <= 1:
        yield
        return
    built = rl_zoo3.train.ExperimentManager
    rl_zoo3.train.ExperimentManager = DistributedExperimentManager  # type: ignore[misc]
    try:
        yield
    finally:
        rl_zoo3.train.ExperimentManager = built  # type: ignore[misc]


def train() -> None:
    """rl-zoo3's ``train``, on one rank of a torchrun job when launched by torchrun."""
    with _experiment_manager_of_this_rank():
        rl_zoo3.train.train()


def record_video() -> None:
    """rl-zoo3's ``record_video`` script, which has no function to call."""
    runpy.run_module("rl_zoo3.record_video", run_name="__main__")


#: How rl-zoo3's ``record_training`` records each checkpoint: a new process that would not know VPG
RECORD_VIDEO_PROCESS = ["python", "-m", "rl_zoo3.record_video"]


@contextlib.contextmanager
def _record_video_through_this_entry_point() -> Iterator[None]:
    """
    While it lasts, ``subprocess.call`` runs the processes that rl-zoo3's ``record_training`` starts for
    ``rl_zoo3.record_video`` as this entry point's ``record_video`` instead, with this interpreter, so that they know VPG.
    """
    call = subprocess.call

    def call_entry_point(args: Any, *more: Any, **kwargs: Any) -> int:
        if list(args[: len(RECORD_VIDEO_PROCESS)]) == RECORD_VIDEO_PROCESS:
            args = [sys.executable, "-m", "sb3_vpg.zoo", "record_video", *args[len(RECORD_VIDEO_PROCESS) :]]
        return call(args, *more, **kwargs)

    subprocess.call = call_entry_point
    try:
        yield
    finally:
        subprocess.call = call


@contextlib.contextmanager
def _ffmpeg_on_path() -> Iterator[None]:
    """
    While it lasts, ``ffmpeg`` is on the PATH: the system's, or else the one that moviepy (rl-zoo3's video recorder)
    uses, from imageio-ffmpeg. ``record_training`` joins the videos with ``ffmpeg`` commands.
    """
    if shutil.which("ffmpeg") is not None:
        yield
        return
    import imageio_ffmpeg  # moviepy's dependency, which rl-zoo3's recorders need anyway

    with tempfile.TemporaryDirectory() as folder:
        os.symlink(imageio_ffmpeg.get_ffmpeg_exe(), Path(folder) / "ffmpeg")
        path = os.environ["PATH"]
        os.environ["PATH"] = f"{folder}{os.pathsep}{path}"
        try:
            yield
        finally:
            os.environ["PATH"] = path


def record_training() -> None:
    """rl-zoo3's ``record_training`` script: a video of every checkpoint of a run, then of the final model, joined."""
    with _record_video_through_this_entry_point(), _ffmpeg_on_path():
        runpy.run_module("rl_zoo3.record_training", run_name="__main__")


COMMANDS: dict[str, Callable[[], None]] = {
    "train": train,
    "enjoy": enjoy,
    "record_video": record_video,
    "record_training": record_training,
}


def _parse_known(args: Sequence[str], *options: tuple[str, ...], flags: tuple[str, ...] = ()) -> argparse.Namespace | None:
    """
    Read a few of rl-zoo3's options from ``args`` as rl-zoo3 will, ignoring the others.

    :param args: The options given to rl-zoo3
    :param options: The option strings of each option that takes a value
    :param flags: The option strings of one ``store_true`` option
    :return: The options read (``None`` when absent), or ``None`` if they are malformed: rl-zoo3 will say so
    """
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    for option_strings in options:
        parser.add_argument(*option_strings)
    if flags:
        parser.add_argument(*flags, action="store_true")
    try:
        return parser.parse_known_args(args)[0]
    except argparse.ArgumentError:
        return None


def train_defaults(args: Sequence[str]) -> list[str]:
    """
    The options added before the user's for ``train --algo vpg``: ``--conf-file`` (the package's ``vpg.yml``) and,
    with ``-optimize``, ``--storage`` (a SQLite file ``<log folder>/vpg/optuna.db``) and ``--study-name``
    (``vpg-<env>``, so that a second worker on the same command joins the same study). Each only where not given.

    :param args: The options given to rl-zoo3's ``train``
    :return: The options to put before them
    """
    known = _parse_known(
        args,
        ("--algo",),
        ("--env",),
        ("-f", "--log-folder"),
        ("-conf", "--conf-file"),
        ("--storage",),
        ("--study-name",),
        flags=("-optimize", "--optimize-hyperparameters"),
    )
    if known is None or known.algo != ALGO:
        return []
    if known.optimize_hyperparameters and distributed.world_size() > 1:
        raise SystemExit(
            "-optimize runs without torchrun: each trial is one process; run several workers on one --storage "
            "(or --n-jobs) to use more cores."
        )
    defaults = [] if known.conf_file else ["--conf-file", str(DEFAULT_CONFIG)]
    if known.optimize_hyperparameters and not known.storage:
        database = Path(known.log_folder or "logs", ALGO, "optuna.db").resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
        defaults += ["--storage", f"sqlite:///{database}"]
        if not known.study_name:
            defaults += ["--study-name", f"{ALGO}-{known.env or 'CartPole-v1'}"]
    return defaults


def replay_defaults(args: Sequence[str]) -> list[str]:
    """
    The options added before the user's for ``enjoy``/``record_video``/``record_training --algo vpg``: ``--folder logs``
    where no folder is given, so that the agents ``train`` saved are replayed and nothing is downloaded.

    :param args: The options given to rl-zoo3's ``enjoy``, ``record_video`` or ``record_training``
    :return: The options to put before them
    """
    known = _parse_known(args, ("--algo",), ("-f", "--folder"))
    if known is None or known.algo != ALGO or known.folder:
        return []
    return ["--folder", "logs"]


DEFAULTS: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "train": train_defaults,
    "enjoy": replay_defaults,
    "record_video": replay_defaults,
    "record_training": replay_defaults,
}


@record  # under torchrun, a rank's exception reaches torchrun's summary of the failure
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> None:
    """
    Register VPG with rl-zoo3, then run one of its scripts with the given options.

    :param argv: The command and its rl-zoo3 options (default: ``sys.argv[1:]``)
    :param prog: The program name shown in messages (default: from ``sys.argv[0]``)
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="rl-zoo3 with sb3-vpg's VPG registered as --algo vpg. "
        "Run `COMMAND -h` for rl-zoo3's options, which are passed through unchanged.",
    )
    parser.add_argument("command", choices=list(COMMANDS), help="the rl-zoo3 script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="rl-zoo3 options")
    parsed = parser.parse_args(argv)

    register()
    saved_argv = sys.argv
    sys.argv = [f"{parser.prog} {parsed.command}", *DEFAULTS[parsed.command](parsed.args), *parsed.args]
    try:
        COMMANDS[parsed.command]()
    finally:
        sys.argv = saved_argv
