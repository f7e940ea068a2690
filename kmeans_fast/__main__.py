"""``python -m kmeans_fast``: the same as the ``kmeans-fast`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="kmeans-fast")
