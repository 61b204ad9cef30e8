"""The append-only, hash-chained audit trail every state change writes to."""
