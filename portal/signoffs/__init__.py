"""Legal sign-off: one mechanism for everything legal approves (notice versions now; case
decisions and post-mortems later). A request binds an immutable snapshot by its SHA-256."""
