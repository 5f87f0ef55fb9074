"""`etcdrescue diagnose`: what is wrong with each member, and which procedure fits (read-only)."""
