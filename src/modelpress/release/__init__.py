"""Releasing a gated candidate: registering (publish), promoting, scheduling retraining."""
