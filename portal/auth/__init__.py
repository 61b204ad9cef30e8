"""Staff accounts, roles, sign-in and the per-account and per-IP lockouts."""
