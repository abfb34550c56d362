"""The GitOps reconciler: read actual rows, diff (pure), plan (pure), apply (one transaction)."""
