"""The command centre: one event's page, reading every domain that works on the event."""
