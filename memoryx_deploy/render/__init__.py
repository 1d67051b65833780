"""Stage 3, what is made from the model for people and roles: the plan, the client config,
Prometheus's files, the certificate's expiry report."""
