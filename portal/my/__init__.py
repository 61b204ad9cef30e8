"""The customer page (``/my``): what an affected customer sees and does without an account."""
