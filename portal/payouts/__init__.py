"""Payouts by finance: batches of approved cases (maker–checker), bank files (CSV, ISO 20022
pain.001), the bank's results, and reconciliation to the cent."""
