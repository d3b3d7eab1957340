"""Code shared by every runbook's Lambda functions: typed errors, AWS clients, notices.

Depends only on the Lambda runtime (boto3) and the Powertools layer.
"""
