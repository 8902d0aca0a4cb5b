"""The leaf layer: errors, strict pydantic fields, the plugin registries, the typed hand-offs.

Nothing here imports another modelpress layer, so every layer above may import it.
"""
