"""A child that never finishes being imported (a mistake: a server loop at the top level
instead of in main()): importing it starts tests.children.starts_at_import's sleeper, then
sleeps forever."""

import time

import tests.children.starts_at_import  # noqa: F401 (starts and records the sleeper)

while True:
    time.sleep(1)
