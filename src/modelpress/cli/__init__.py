"""The ``modelpress`` command line (``main``), its error handling and its lifecycle commands."""
