"""Builds (export formats), one module each, registered with ``modelpress.registry.register_build``."""
