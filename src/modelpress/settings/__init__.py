"""The recipe's blocks that validate alone (gate thresholds, registry:, search:, training, cron).

Rules that span blocks live one layer up, in ``modelpress.recipe``.
"""
