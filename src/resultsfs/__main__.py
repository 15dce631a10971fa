"""``python -m resultsfs``: the command line.

Named ``resultsfs`` as the installed script is, so that help texts agree and shell completion
answers to the same ``_RESULTSFS_COMPLETE`` variable.
"""

from resultsfs.cli import main

main(prog_name="resultsfs")
