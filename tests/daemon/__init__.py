"""Tests of `reconciler run`: config, windows, scheduling, and the daemon end to end."""
