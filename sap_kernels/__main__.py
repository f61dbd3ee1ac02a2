"""Command line: ``python -m sap_kernels <subcommand>`` (also installed as ``sap-kernels``).

Subcommands:
    demo    repair a CNN trained on noisy scikit-learn digits with SAP and compare baselines.

A subcommand is a ``(name, help, add_arguments, run)`` entry of :data:`SUBCOMMANDS`; its module
is imported only when that subcommand runs, so optional dependencies stay optional.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# name -> (help, module defining add_arguments(parser) and run(args) -> int)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "SAP on scikit-learn digits with noisy labels: vanilla vs SAP vs finetune vs retrain",
        "sap_kernels.demo.cli",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="sap-kernels",
        description="Scaled Activation Projection (SAP): one-shot repair of models trained on noisy labels.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (help_text, module_name) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the chosen subcommand."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
