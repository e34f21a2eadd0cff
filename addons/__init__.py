"""Add-on processes (cluster DNS)."""
