"""The staff dashboard, the language switch and the development commands."""
