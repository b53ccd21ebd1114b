"""Bluesky protocol plans: how a sample is made and measured."""
