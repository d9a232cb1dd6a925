"""The child runtime."""
