"""Model sources: where a recipe's model comes from (``model.source``), one module each.

See ``base.py`` for what a source declares; each module registers its config class with
:func:`modelpress.registry.register_source`.
"""

from __future__ import annotations

from .base import Artifact, Source, SourceFacts

__all__ = ["Artifact", "Source", "SourceFacts"]
