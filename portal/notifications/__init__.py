"""E-mails to staff about their own work: a sign-off asked of legal (a digest when several
come at once), a decision on one's request, a case assigned to one."""
