"""Pure functions over bytes: authenticated encryption, key derivation, key wrapping."""
