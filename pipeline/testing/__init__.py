"""Test harnesses that run the real job (fault injection)."""
