"""Affected customers of an event: imported from CSV or added by hand."""
