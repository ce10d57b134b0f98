"""Where repository objects live: one small interface and its implementations and wrappers."""
