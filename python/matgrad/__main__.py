"""``python -m matgrad``: the lecture example, as the engine records and differentiates it;
``python -m matgrad train``: the lecture's network trained on handwritten digits."""

from __future__ import annotations

import argparse
import math
import os
import sys

import matgrad as mg


def lecture_graph(x0: float) -> list[tuple[str, mg.Tensor, str]]:
    """f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2)) at x0, recorded with its named
    intermediates [(name, tensor, definition), ...] from x to f, after f.backward() (every
    intermediate retains its adjoint)."""
    x = mg.tensor(x0, requires_grad=True)
    a = x**2
    b = mg.exp(a)
    c = a + b
    d = mg.sqrt(c)
    e = mg.cos(c)
    f = d + e
    nodes = [
        ("x", x, "input"),
        ("a", a, "x^2"),
        ("b", b, "exp(a)"),
        ("c", c, "a + b"),
        ("d", d, "sqrt(c)"),
        ("e", e, "cos(c)"),
        ("f", f, "d + e"),
    ]
    for _, t, _ in nodes[1:]:
        t.retain_grad()
    f.backward()
    return nodes


def lecture(x0: float, graph: str | None = "lecture-graph.svg") -> int:
    """Print the lecture example's nodes, values and adjoints, and df/dx against the closed form."""
    nodes = lecture_graph(x0)
    x, f = nodes[0][1], nodes[-1][1]

    print(f"matgrad {mg.__version__}: the lecture example at x = {x0}")
    print("  f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2))")
    print()
    print(f"  {'node':<4} {'op':<9} {'definition':<10} {'value':>22} {'adjoint df/dnode':>22}")
    for name, t, definition in nodes:
        adj = t.grad.item() if t.grad is not None else float("nan")
        print(f"  {name:<4} {t.op:<9} {definition:<10} {t.item():>22.16g} {adj:>22.16g}")

    cv = x0**2 + math.exp(x0**2)
    closed = 2 * x0 * (1 / (2 * math.sqrt(cv)) - math.sin(cv)) * (1 + math.exp(x0**2))
    assert x.grad is not None  # f.backward() filled it
    got = x.grad.item()
    print()
    print(f"  df/dx (reverse sweep)  = {got:.17g}")
    print(f"  df/dx (closed form)    = {closed:.17g}")
    print("    closed form: 2x (1/(2 sqrt(c)) - sin c)(1 + exp(x^2)),  c = x^2 + exp(x^2)")
    rel = abs(got - closed) / abs(closed)
    print(f"  relative difference    = {rel:.2e}")
    if graph:
        print()
        names = {name: t for name, t, _ in nodes}
        title = f"f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2)) at x = {x0}: value and adjoint df/dnode"
        try:
            mg.draw(f, graph, names=names, title=title)
            print(f"  the graph, with every value and adjoint: {graph}")
        except RuntimeError as e:  # no Graphviz: write the DOT text instead
            dot_path = os.path.splitext(graph)[0] + ".dot"
            with open(dot_path, "w") as fh:
                fh.write(mg.to_dot(f, names=names, title=title))
            print(f"  the graph as Graphviz DOT text: {dot_path} ({e})")
    return 0 if rel < 1e-14 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m matgrad",
        description="matgrad: reverse-mode automatic differentiation for matrix programs.",
    )
    parser.add_argument("--version", action="version", version=f"matgrad {mg.__version__}")
    parser.add_argument(
        "--cmakedir",
        action="store_true",
        help="print the folder of matgradConfig.cmake, for cmake -Dmatgrad_DIR=..., and exit",
    )
    parser.add_argument(
        "--includedir",
        action="store_true",
        help="print the folder of the C++ headers (matgrad/matgrad.hpp; Eigen's in eigen3/), and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_lec = sub.add_parser(
        "lecture", help="the lecture's scalar example with every node's value and adjoint (the default)"
    )

    def lecture_options(p: argparse.ArgumentParser, sub: bool) -> None:
        # the subcommand's copies only set what is given (an option before the word "lecture" stays)
        def d(value: object) -> object:
            return argparse.SUPPRESS if sub else value

        p.add_argument("--x", type=float, default=d(0.7), help="where to evaluate (default 0.7)")
        p.add_argument(
            "--graph",
            default=d("lecture-graph.svg"),
            help="where to draw the computation graph (.svg, .png or .pdf; default lecture-graph.svg)",
        )
        p.add_argument("--no-graph", action="store_true", default=d(False), help="do not draw the graph")

    # the default command takes its options with or without the word "lecture"
    lecture_options(parser, sub=False)
    lecture_options(p_lec, sub=True)
    p_train = sub.add_parser(
        "train",
        help="train the lecture's network by backpropagation on scikit-learn's "
        'handwritten digits (needs the train extra: pip install ".[train]" in a clone)',
        description="Train the lecture's network f_i = sigma(A f_{i-1} + b) on the 8 x 8 "
        "digits shipped inside scikit-learn: progress bar with the running "
        "loss, test accuracy, time per epoch, a loss-curve PNG.",
    )
    from . import train as _train

    _train.add_arguments(p_train)
    args = parser.parse_args(argv)
    if args.cmakedir or args.includedir:
        try:
            paths = ([mg.get_cmake_dir()] if args.cmakedir else []) + (
                [mg.get_include()] if args.includedir else []
            )
        except FileNotFoundError as e:
            print(f"python -m matgrad: {e}", file=sys.stderr)
            return 2
        print("\n".join(paths))
        return 0
    if args.command == "train":
        try:
            return _train.run(args)
        except ImportError as e:  # a missing extra: the message says what to install
            if "install the train extra" not in str(e):
                raise
            print(f"python -m matgrad train: {e}", file=sys.stderr)
            return 2
    if args.command in (None, "lecture"):
        return lecture(args.x, None if args.no_graph else args.graph)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
