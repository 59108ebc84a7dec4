"""The knowledge base (§9): articles in the store, deflection figures, export for a docs site."""
