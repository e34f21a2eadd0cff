"""Cluster DNS (`pocketkube dns`): service discovery by name from informer caches; see addons.dns.main."""
