"""Built-in task plugins. Every module here is imported by the registry; each registers its tasks."""
