"""The ib simulator: everything only it uses."""
