"""``python -m modelpress.cli`` runs the command line, as the ``modelpress`` script does."""

from modelpress.cli.main import main

main()
