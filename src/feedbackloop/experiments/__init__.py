"""Test: experiment design, hashed assignment and exposures, analysis, bandits and off-policy
evaluation, on top of the pure numerics in :mod:`feedbackloop.stats.experiments`."""
