"""
Tolerances for comparing two computations of the same update, derived from the rounding error of a sum.

An update sums per-step terms into each parameter's gradient: g = Σ_k x_k over K terms (every step's contribution,
in every backward pass of the update). Two computations that add the same terms in another order (in chunks, or as
partial sums across processes) differ, element by element, by at most 2 γ_K Σ_k |x_k|, with γ_K = K u / (1 − K u)
and u the unit roundoff (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, §4.2): the bound holds on
every CPU, whatever order its kernels add in, and it grows with cancellation (Σ|x_k| ≫ |Σ x_k|) as the error does.

The tests take u of float32 (2⁻²⁴), the precision users train in, and compute the updates in float64
(:func:`in_float64`): each per-step term is itself a sum (over a convolution's positions, over a layer's inputs) whose
own terms the hooks do not see, and in float64 the rounding of all of them stays 2⁻²⁹ times below the float32
bound of the per-step terms, so no cancellation inside a step can make a test fail on another CPU. Each test also
checks that one chunk's (or one rank's) contribution exceeds the tolerance, so that a term dropped or counted twice
fails.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

#: The unit roundoff of float32 (round to nearest)
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
#: The unit roundoff of float64
FLOAT64_UNIT_ROUNDOFF = 2.0**-53


def gamma(n_terms: int | th.Tensor, unit_roundoff: float = FLOAT32_UNIT_ROUNDOFF) -> Any:
    """γ_n = n u / (1 − n u): the relative error bound of a sum of n terms, in any order."""
    return n_terms * unit_roundoff / (1 - n_terms * unit_roundoff)


def in_float64(extractor_class: type[th.nn.Module]) -> type[th.nn.Module]:
    """
    A features extractor class that casts its (float32) observations to float64, for a policy made float64 by
    :func:`make_float64`; what comes out of the extractor is then computed in float64 to the loss.

    :param extractor_class: An SB3 features extractor class
    """

    class Float64Extractor(extractor_class):  # type: ignore[valid-type, misc]
        def forward(self, observations: Any) -> th.Tensor:
            if isinstance(observations, dict):
                return super().forward({key: value.double() for key, value in observations.items()})
            return super().forward(observations.double())

    Float64Extractor.__name__ = f"Float64{extractor_class.__name__}"
    return Float64Extractor


def make_float64(model: BaseAlgorithm) -> BaseAlgorithm:
    """Convert the model's policy to float64 in place (its optimiser keeps the same parameter objects)."""
    model.policy.double()
    return model


class TermMagnitudes:
    """
    While it records, Σ_k |x_k| and the number of terms K of every parameter's gradient: each backward pass's gradient
    of a parameter is one term (run the update with ``chunk_size=1`` for one term per step), and each is also kept,
    for the check that one chunk's contribution is above the tolerance.

    :param model: The model whose policy's parameters are watched
    """

    def __init__(self, model: BaseAlgorithm) -> None:
        self.parameters = dict(model.policy.named_parameters())
        # Every name a parameter has in the state dict (a shared features extractor has two), by its own name.
        names = {id(parameter): name for name, parameter in self.parameters.items()}
        self.aliases = {
            alias: names[id(tensor)]
            for alias, tensor in model.policy.state_dict(keep_vars=True).items()
            if id(tensor) in names
        }
        self.absolute_sums: dict[str, th.Tensor] = {}
        self.n_terms: dict[str, int] = {}
        self.terms: dict[str, list[th.Tensor]] = {}

    def _record(self, name: str, gradient: th.Tensor) -> None:
        self.absolute_sums[name] = self.absolute_sums.get(name, th.zeros_like(gradient)) + gradient.detach().abs()
        self.n_terms[name] = self.n_terms.get(name, 0) + 1
        self.terms.setdefault(name, []).append(gradient.detach().clone())

    @contextmanager
    def recording(self) -> Iterator["TermMagnitudes"]:
        """Watch every backward pass of the policy's parameters while the block runs."""
        handles = [
            parameter.register_hook(lambda gradient, name=name: self._record(name, gradient))
            for name, parameter in self.parameters.items()
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def update_tolerance(self, learning_rate: float, before: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        """
        The bound on how much two SGD updates made of these terms may differ, element by element:
        ``learning_rate × 2 γ_K Σ_k |x_k|``, plus the float64 rounding of writing each parameter (2 u |θ|).

        :param learning_rate: SGD's learning rate, which scales every term
        :param before: The parameters before the update
        """
        return {
            alias: learning_rate * 2 * gamma(self.n_terms[name]) * self.absolute_sums[name]
            + 2 * FLOAT64_UNIT_ROUNDOFF * 2 * before[alias].abs()
            for alias, name in self.aliases.items()
            if name in self.absolute_sums
        }


def assert_within(
    first: dict[str, th.Tensor], second: dict[str, th.Tensor], tolerance: dict[str, th.Tensor], what: str = ""
) -> None:
    """Every element of ``first`` and ``second`` differs by at most its tolerance (parameters without one: equal)."""
    for name, value in first.items():
        difference = (value - second[name]).abs()
        allowed = tolerance.get(name, th.zeros_like(value))
        worst = int(th.argmax(difference - allowed))
        assert bool((difference <= allowed).all()), (
            f"{what}{name}: element {worst} differs by {float(difference.flatten()[worst]):.3g}, "
            f"allowed {float(allowed.flatten()[worst]):.3g}"
        )


def assert_each_term_detectable(magnitudes: "TermMagnitudes", learning_rate: float, tolerance: dict[str, th.Tensor]) -> None:
    """
    Each term that moves a parameter at all moves it by more than the tolerance somewhere: an update without it, or
    with it twice, would fail :func:`assert_within`.

    :param magnitudes: The terms, recorded in the run to check (one per chunk: ``chunk_size`` steps)
    :param learning_rate: SGD's learning rate, which scales every term
    :param tolerance: The tolerance of each parameter
    """
    for name, terms in magnitudes.terms.items():
        for index, term in enumerate(terms):  # (the parameter's own name is among its aliases)
            if bool(term.any()):
                assert bool((learning_rate * term.abs() > tolerance[name]).any()), f"{name}: term {index} is below it"


def as_float64_array(tensors: dict[str, th.Tensor]) -> dict[str, np.ndarray]:
    """The tensors as float64 arrays (for results written by other processes)."""
    return {name: value.detach().cpu().double().numpy() for name, value in tensors.items()}
