"""The `audiorag` command line."""
