"""Outgoing mail, and the local SMTP server used in development and tests."""
