"""
The measurement harness of sb3-vpg: the benchmarks behind the docs' results (Benchmark page), run from the repository root as
``python -m benchmarks <subcommand> [options]`` (:mod:`benchmarks.cli`). It is not part of the ``sb3_vpg`` package
nor of its wheel; ``pip install -e ".[bench]"`` installs what it needs.

Subcommands and their modules:

- ``suite`` (:mod:`~benchmarks.suite`): VPG plain and best, rl-zoo3's A2C and PPO and the rollout-collection ceiling,
  several seeds each, learning curves and a results table. One run in its process: :mod:`~benchmarks.runs`; the
  report (CSV, plots, markdown): :mod:`~benchmarks.report`.
- ``throughput`` (:mod:`~benchmarks.throughput`): training fps and memory of VPG against the ceiling and A2C with the
  same envs.
- ``variance`` (:mod:`~benchmarks.variance`), ``value-fitting`` (:mod:`~benchmarks.value_fitting`), ``trial``
  (:mod:`~benchmarks.trial`), ``defaults`` (:mod:`~benchmarks.defaults`), ``tensorboard``
  (:mod:`~benchmarks.tensorboard`), ``update-cost`` (:mod:`~benchmarks.update_cost`), ``pong`` (:mod:`~benchmarks.pong`).

What they share (report headers, markdown and CSV, fresh processes, peak memory, the deterministic evaluation):
:mod:`~benchmarks.common`. Their results are in ``benchmarks/results/``; their tests in ``benchmarks/tests/``.
"""
