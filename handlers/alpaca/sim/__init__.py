"""The alpaca simulator: everything only it uses."""
