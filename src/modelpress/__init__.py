"""modelpress: compress PyTorch models inside ZenML pipelines, gate them, ship them.

Importing the package is cheap on purpose (the CLI starts fast): torch, ZenML, MLflow and
friends are imported inside the functions that need them.
"""

__version__ = "0.1.0"
