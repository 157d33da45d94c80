"""Thin adapters between the host WebUIs (A1111, Forge) and the core. Imported lazily."""
