"""MLflow and ZenML plumbing: tracking URIs, the stack, stale runs, the MLflow model registry, alias locks."""
