"""``python -m swapd.cli``: the same as the ``swapd`` command."""

from swapd.cli import main

main()
