"""kubelet: not built yet (see the open issues); the package exists so the layout matches DESIGN.md."""
