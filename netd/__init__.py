"""netd: the per-node network agent (flannel's role): host-gw routes or a VXLAN overlay between nodes."""
