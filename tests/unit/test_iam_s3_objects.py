"""IAM evaluation of S3 object calls: HeadObject is authorized as s3:GetObject, and an object
request names its object's ARN (``arn:aws:s3:::bucket/key``) from Bucket and Key."""

from __future__ import annotations

from opsflow.engine.iam import catalog, resources


def test_head_object_is_authorized_as_get_object() -> None:
    assert catalog.action("s3", "HeadObject").iam_name == "s3:GetObject"


def test_an_object_request_names_the_object() -> None:
    found = resources.authorizations(
        "s3", "s3", "PutObject", {"Bucket": "shop-failover", "Key": "opsflow/serving"},
        "us-east-1", resources.Account("123456789012"),
    )
    assert found[0].action == "s3:PutObject"
    assert [t.arn for t in found[0].targets] == ["arn:aws:s3:::shop-failover/opsflow/serving"]
