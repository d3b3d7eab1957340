"""IAM enforcement for the local engine."""
