"""`shiftover serve`: the long-lived process — deployments, the failover monitor and the read-only HTTP endpoint."""
