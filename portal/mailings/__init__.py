"""Mailings: one approved notice version e-mailed to an event's customers, in chunks of RQ jobs
over one SMTP connection each. The recipient rows are the truth; jobs only carry the work."""
