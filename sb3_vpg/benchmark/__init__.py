"""
The benchmark behind the README's results table and learning curves: ``python -m sb3_vpg.benchmark``.

It trains plain VPG (Eq. 4), VPG with its best variance reductions, and SB3's A2C and PPO with rl-zoo3's tuned
hyperparameters on the same envs, several seeds each, in separate processes, and measures the rollout-collection
ceiling (SB3's loop of ``env.step`` and policy forward, without learning) alongside. See the README, "Benchmark".

Modules: :mod:`~sb3_vpg.benchmark.suite` (what runs), :mod:`~sb3_vpg.benchmark.runs` (one run, in its process),
:mod:`~sb3_vpg.benchmark.report` (CSV, plots, markdown), :mod:`~sb3_vpg.benchmark.cli` (the command),
:mod:`~sb3_vpg.benchmark.measure` (fresh processes, peak RSS, the ceiling's loop, the
:class:`~sb3_vpg.benchmark.measure.StepTimer` of the time in ``env.step``).

``python -m sb3_vpg.benchmark.throughput`` (:mod:`~sb3_vpg.benchmark.throughput`, the README, "Throughput and memory") measures
training fps and memory of VPG against the ceiling and A2C with the same envs.
"""
