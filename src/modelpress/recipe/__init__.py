"""The recipe: its schema with the rules that span blocks, YAML loading, and the plan built from it."""
