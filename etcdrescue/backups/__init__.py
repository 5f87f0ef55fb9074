"""Backups the operator can trust: taken to the bastion with a checksum and a sidecar (`take`), checked there
(`files`), rotated (`rotation`), proved by a drill (`drill`), and brought back to the seed by a recovery."""
