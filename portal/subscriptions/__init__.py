"""Public subscribers: e-mail updates of an event or of all notices, in a language."""
