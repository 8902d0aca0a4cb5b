"""Model sources: where a recipe's model comes from (``model.source``), one module each.

See ``base.py`` for what a source declares; each module registers its config class with
:func:`modelpress.core.registry.register_source`.
"""

from __future__ import annotations

from modelpress.core.facts import SourceFacts
from modelpress.sources.base import Artifact, Source

__all__ = ["Artifact", "Source", "SourceFacts"]
