"""gengate's user-facing surface: the `gengate` command line (and, later, the Python client)."""
