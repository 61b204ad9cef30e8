"""Post-mortems (复盘): the six-step review of an event, with facts pulled from it."""
