"""Evaluation metrics: each declared once in a registry (see registry.py)."""
