"""gengate's user-facing surface: the `gengate` command line and the Python client (`gengate.client`)."""
