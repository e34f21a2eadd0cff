"""REST client, typed errors, informers, cache and work queue shared by every component."""
