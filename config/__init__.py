"""Configuration: settings from `GENGATE_*` environment variables and the model catalog."""
