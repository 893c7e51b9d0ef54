"""Reusable test helpers that are not fixtures: local servers and the like (nothing here leaves this machine)."""
