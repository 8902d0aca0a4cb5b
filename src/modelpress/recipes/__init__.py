"""Example recipes that ship with modelpress (`modelpress run <name>`)."""
