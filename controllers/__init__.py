"""Controllers run by `pocketkube controller-manager` (wave 1: the endpoints controller)."""
