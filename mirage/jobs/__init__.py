"""RQ jobs and their registration: thin shells that load state, call mirage.engine, and act."""
