"""Admin pages for staff accounts; the rules live in ``portal.auth.services``."""
