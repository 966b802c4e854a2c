"""The HTTP producer: validates, creates jobs, enqueues; never calls a provider."""
