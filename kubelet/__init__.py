"""The node agent: runs the pods bound to one node (DESIGN.md "Kubelet runtime")."""
