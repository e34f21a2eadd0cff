"""The node agent: runs the pods bound to one node (docs/design.md "Kubelet runtime")."""
