"""Autonomous campaigns: the scheduler that keeps every furnace busy, and its operator tools."""
