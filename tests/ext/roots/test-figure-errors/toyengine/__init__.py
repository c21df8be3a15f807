"""A toy engine for the figure tests."""
