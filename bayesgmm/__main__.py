"""Command line entry point: ``python -m bayesgmm demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bayesgmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="compare EM and Bayesian mixtures on the bundled Old Faithful data")
    demo.add_argument("--out", default="demo-output", help="folder for the figures")
    demo.add_argument("--max-components", type=int, default=4,
                      help="largest number of components of the grid (default 4)")
    demo.add_argument("--em-only", action="store_true",
                      help="classical criteria only (no PyMC; seconds)")
    demo.add_argument("--draws", type=int, default=300, help="NUTS draws per chain")
    demo.add_argument("--tune", type=int, default=300, help="NUTS warm-up steps per chain")
    demo.add_argument("--chains", type=int, default=2, help="NUTS chains")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo_main

        demo_main(args.out, max_components=args.max_components, bayes=not args.em_only,
                  draws=args.draws, tune=args.tune, chains=args.chains,
                  random_state=args.seed, progressbar=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
