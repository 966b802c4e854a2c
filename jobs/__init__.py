"""The job domain shared by the API and the workers: records, states, Redis keys, atomic store."""
