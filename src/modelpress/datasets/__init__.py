"""Data sources: where a recipe's data comes from (``data.source``), one module each.

``shipped``, ``csv``, ``parquet``, ``text`` and ``image_folder`` each register their config class
with :func:`modelpress.core.registry.register_dataset` under the name the YAML uses; ``base.py``
says what a data source declares and does. Beside them sits what every source shares: splitting
(``splits``), great-expectations validation (``validation``), the reference profile
(``profile``), and image decoding and preprocessing (``images``, ``pixels``). This package
imports none of them itself; the registry does, on first use.
"""
