"""Helpers for end-to-end tests against real hosts (Open WebUI, the Pipelines request shape)."""
