"""Experiment planning: search spaces, objectives and the BoTorch planner."""
