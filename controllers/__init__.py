"""Controllers run by `pocketkube controller-manager`: endpoints, node IPAM, taints by node condition."""
