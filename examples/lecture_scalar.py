"""The lecture's scalar example, three ways: eager backward, mg.grad, and the closed form.

    f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2))
    df/dx = 2x (1/(2 sqrt(c)) - sin c)(1 + exp(x^2)),  c = x^2 + exp(x^2)

Run: python examples/lecture_scalar.py
"""

import math

import numpy as np

import matgrad as mg


def f(x):
    c = x**2 + mg.exp(x**2)
    return mg.sqrt(c) + mg.cos(c)


def closed_form(x: float) -> float:
    c = x**2 + math.exp(x**2)
    return 2 * x * (1 / (2 * math.sqrt(c)) - math.sin(c)) * (1 + math.exp(x**2))


def main() -> None:
    for x0 in (-1.0, 0.0, 0.7, 1.3):
        x = mg.tensor(x0, requires_grad=True)
        f(x).backward()
        assert x.grad is not None  # backward() filled it
        eager = x.grad.item()
        functional = float(mg.grad(f)(x0))
        second = float(mg.grad(mg.grad(f))(x0))
        print(
            f"x = {x0:5.2f}: df/dx eager {eager: .16f}, grad {functional: .16f}, "
            f"closed form {closed_form(x0): .16f}; d2f/dx2 {second: .6f}"
        )
        assert np.isclose(eager, closed_form(x0), rtol=1e-14, atol=1e-15)


if __name__ == "__main__":
    main()
