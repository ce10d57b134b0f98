"""What the store charges: price tables (prices), the arithmetic of a bill (bill), the
steady-state model behind the defaults (model, docs/cost.md), and the estimates for a
repository as it stands (report)."""
