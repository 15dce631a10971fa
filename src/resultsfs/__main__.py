"""``python -m resultsfs``: the command line."""

from resultsfs.cli import main

main()
