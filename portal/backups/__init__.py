"""Backups: one archive holding a consistent copy of the database and the instance files."""
