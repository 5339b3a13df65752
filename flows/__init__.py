"""Prefect flows of the factory (thin: the work is in `nares/` and `tasks/`)."""
