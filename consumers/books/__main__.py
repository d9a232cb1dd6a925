"""`python -m tickmesh.consumers.books`: the order-book builder (`builder.main`)."""

from __future__ import annotations

from tickmesh.consumers.books.builder import main

if __name__ == "__main__":
    main()
