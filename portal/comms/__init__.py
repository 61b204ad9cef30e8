"""Communications during an event: the update cadence and the communication metrics."""
