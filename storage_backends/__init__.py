"""Django Storage classes: one module per provider and the fallback chain."""
