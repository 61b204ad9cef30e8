"""The public site: published notices, their PDFs and the Atom feed. No login, no staff data."""
