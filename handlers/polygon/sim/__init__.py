"""The polygon simulator: everything only it uses."""
