"""Data sources: where a recipe's data comes from (``data.source``), one module each.

See ``base.py`` for what a data source declares and does; each module registers its config class
with :func:`modelpress.core.registry.register_dataset` under the name the YAML uses. This package
imports none of them itself (the registry does, on first use), so that ``modelpress.lm.corpus``
can read the shipped sets without importing the text source that reads corpora through it.
"""
