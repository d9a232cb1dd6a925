"""Tiny child processes for the supervisor's tests, run as `python -m tests.children.<name>`."""
