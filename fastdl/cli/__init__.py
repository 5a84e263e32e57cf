"""Command line: ``fastdl info``; the other subcommands are registered by their modules
(train, eval, data here; bench in :mod:`fastdl.bench`)."""
from __future__ import annotations

import argparse
import sys

from .. import bench
from . import data, evaluate, train


def _cmd_info(args: argparse.Namespace) -> int:
    import fastdl
    from .. import distributed

    fastdl.show_config()
    reason = distributed.unavailable_reason()
    if reason is None:
        print(f"distributed: rank {distributed.rank()} of {distributed.world_size()} (MPI)")
    else:
        print(f"distributed: unavailable: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastdl", description="Deep Learning from Scratch, fast.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="show versions, backends and threads")
    p.set_defaults(func=_cmd_info)
    bench.register(sub)
    train.register(sub)
    evaluate.register(sub)
    data.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
