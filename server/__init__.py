"""The model server: HTTP front, model registry, worker processes and their routing."""
