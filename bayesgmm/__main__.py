"""``python -m bayesgmm``: the same command line as the ``bayesgmm`` entry point."""

from .cli import main

if __name__ == "__main__":
    main()
