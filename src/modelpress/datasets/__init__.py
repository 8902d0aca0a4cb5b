"""Data: splitting, validation with great-expectations, image preprocessing."""
