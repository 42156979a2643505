"""``python -m r1omni``: the same command line as the ``r1omni`` script."""

from r1omni.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
