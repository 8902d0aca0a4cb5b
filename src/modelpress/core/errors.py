"""Errors a user can act on: each names the field or file at fault."""

from __future__ import annotations


class ModelpressError(Exception):
    """Base class for errors caused by user input rather than by a bug."""


class RecipeError(ModelpressError):
    """A recipe failed to load or validate; holds every problem found, each with its field path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class DataValidationError(ModelpressError):
    """The data failed its great-expectations suite; the message shows the failing rows."""


class GateFailed(ModelpressError):
    """The candidate did not pass the accuracy gate."""
