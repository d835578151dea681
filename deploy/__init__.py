"""Kubernetes packaging: the Helm chart's generated files and the plain manifests (not installed)."""
