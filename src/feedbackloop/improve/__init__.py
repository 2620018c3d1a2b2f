"""Improve: datasets built from feedback, trainers, the model registry and toggles."""
