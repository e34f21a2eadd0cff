"""One module per resource kind: its strategy (see base.py), named by its row in api/resources.py."""
