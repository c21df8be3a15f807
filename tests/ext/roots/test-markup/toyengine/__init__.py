"""A toy engine whose file names and lines hold characters that mean something in HTML."""
