"""Personalised letters: one print-ready PDF per run, one letter per customer."""
