"""A toy engine for the extension's tests."""
