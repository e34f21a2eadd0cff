"""Object types, defaults, validation, selectors and patch logic.

Everything in this package is pure: no I/O, no imports from other pocketkube
packages. The API server, the client and every component build on it, so it
must stay importable anywhere (tests, CLI, node agents) at no cost.
Objects are plain JSON-shaped dicts, exactly as they travel on the wire.
"""
