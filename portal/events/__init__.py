"""Events: the incident or shutdown every notice and case belongs to."""
