"""Refund and compensation cases: worked by customer service, signed off above a threshold,
paid exactly once."""
