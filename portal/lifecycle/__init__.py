"""Data lifecycle of a closed event: the export archive, retention and erasure."""
