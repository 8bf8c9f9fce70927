"""Command line entry point: ``python -m bayesgmm demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bayesgmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the bundled Old Faithful data and compare models")
    demo.add_argument("--out", default="demo-output", help="folder for the figure")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo_main

        demo_main(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
