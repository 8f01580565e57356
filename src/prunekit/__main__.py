"""``python -m prunekit``: the same command as the ``prunekit`` console script."""

from prunekit.cli import main

if __name__ == "__main__":
    main()
