"""REST client, typed errors, informers, cache and work queue shared by every component."""
from client import httpx_nocli as _httpx_nocli

_httpx_nocli.install()
