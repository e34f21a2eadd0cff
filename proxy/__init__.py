"""The service proxy: desired ruleset (rules) -> minimal diff -> one iptables-restore (proxier)."""
