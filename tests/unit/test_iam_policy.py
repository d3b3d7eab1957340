"""The IAM identity-policy evaluator, on the examples the AWS IAM User Guide documents.

Every docstring names the page its example comes from; they are all under
https://docs.aws.amazon.com/IAM/latest/UserGuide/.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from opsflow.engine.iam.policy import (
    ALLOWED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    Decision,
    PolicyError,
    Request,
    evaluate,
    evaluate_all,
)

ACCOUNT = "123456789012"


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        document["Version"] = version
    return document


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(
    statements: dict[str, Any] | list[dict[str, Any]],
    action: str = "s3:ListBucket",
    resource: str = "*",
    context: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Decision:
    statements = statements if isinstance(statements, list) else [statements]
    return evaluate([("p", doc(*statements))], Request(action, resource, context or {}), **kwargs)


def holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    """Whether an Allow statement holding only this Condition block allows the request."""
    return decide(allow(Condition=condition), context=context).allowed


# ------------------------------------------------------------------------ allow, deny, default
INTERPLAY = doc(
    {
        "Sid": "AllowGetList",
        "Effect": "Allow",
        "Action": ["iam:Get*", "iam:List*"],
        "Resource": "*",
    },
    {"Sid": "DenyReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"},
)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("iam:GetUser", Decision(True, ALLOWED, "iam-read", "AllowGetList")),
        ("iam:ListRoles", Decision(True, ALLOWED, "iam-read", "AllowGetList")),
        (
            "iam:GetOrganizationsAccessReport",
            Decision(False, EXPLICIT_DENY, "iam-read", "DenyReports"),
        ),
        ("iam:CreatePolicy", Decision(False, IMPLICIT_DENY, None, None)),
    ],
)
def test_allowed_implicitly_and_explicitly_denied_actions(action: str, expected: Decision) -> None:
    """The difference between explicit and implicit denies
    (reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html): AllowGetList
    allows iam:Get*/List*, DenyReports explicitly denies *Report, everything else is implicitly
    denied."""
    assert evaluate([("iam-read", INTERPLAY)], Request(action, "*", {})) == expected


def test_explicit_deny_in_another_policy_beats_an_allow() -> None:
    """ "If someone adds another policy to this principal to grant them access to IAM reports
    ... the reports are still denied because of the explicit deny" (same page)."""
    grant = ("grant-reports", doc(allow("iam:GenerateCredentialReport")))
    decision = evaluate(
        [grant, ("iam-read", INTERPLAY)], Request("iam:GenerateCredentialReport", "*")
    )
    assert decision == Decision(False, EXPLICIT_DENY, "iam-read", "DenyReports")
    alone = evaluate([grant], Request("iam:GenerateCredentialReport", "*"))
    assert alone == Decision(True, ALLOWED, "grant-reports", "#0")


def test_no_policy_is_an_implicit_deny() -> None:
    """By default all requests are implicitly denied (reference_policies_evaluation-logic.html)."""
    assert evaluate([], Request("s3:ListBucket", "arn:aws:s3:::b")) == Decision(
        False, IMPLICIT_DENY, None, None
    )


def test_statement_labels_are_sid_or_index_and_statement_may_be_an_object() -> None:
    """Statement is an object or a list of them (reference_policies_grammar.html); a statement
    without a Sid is reported by its position."""
    single = {"Version": "2012-10-17", "Statement": allow("s3:*")}
    assert evaluate([("one", single)], Request("s3:GetObject", "*")).statement == "#0"
    two = doc(allow("ec2:*"), deny("s3:DeleteBucket"))
    assert evaluate([("two", two)], Request("s3:DeleteBucket", "*")).statement == "#1"


# ---------------------------------------------------------------------- NotAction, NotResource
def test_not_action_with_allow_allows_everything_else() -> None:
    """NotAction with Allow (reference_policies_elements_notaction.html): "allows ... all of the
    actions in all of the services except IAM"."""
    statement = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert decide(statement, "s3:ListAllMyBuckets").allowed
    assert decide(statement, "iam:CreateUser").reason == IMPLICIT_DENY


@pytest.mark.parametrize(
    ("action", "mfa", "reason"),
    [
        ("s3:GetObject", "false", EXPLICIT_DENY),
        ("s3:GetObject", None, EXPLICIT_DENY),
        ("s3:GetObject", "true", ALLOWED),
        ("iam:ChangePassword", "false", ALLOWED),
    ],
)
def test_not_action_with_deny_denies_everything_else(
    action: str, mfa: str | None, reason: str
) -> None:
    """NotAction with Deny (same page): deny every action outside IAM unless signed in with MFA,
    with BoolIfExists so a missing aws:MultiFactorAuthPresent also denies."""
    statements = [
        allow(),
        {
            "Sid": "DenyAllUsersNotUsingMFA",
            "Effect": "Deny",
            "NotAction": "iam:*",
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ]
    context = {} if mfa is None else {"aws:MultiFactorAuthPresent": mfa}
    assert decide(statements, action, context=context).reason == reason


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        ("arn:aws:s3:::amzn-s3-demo-bucket", ALLOWED),
        ("arn:aws:s3:::amzn-s3-demo-bucket/report.csv", ALLOWED),
        ("arn:aws:s3:::another-bucket/report.csv", EXPLICIT_DENY),
    ],
)
def test_not_resource_with_deny(resource: str, reason: str) -> None:
    """NotResource with Deny (reference_policies_elements_notresource.html): deny S3 everywhere
    except the named bucket and its objects."""
    statements = [
        allow("s3:*"),
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "NotResource": [
                "arn:aws:s3:::amzn-s3-demo-bucket",
                "arn:aws:s3:::amzn-s3-demo-bucket/*",
            ],
        },
    ]
    assert decide(statements, "s3:GetObject", resource).reason == reason


def test_not_resource_with_allow() -> None:
    """NotResource with Allow matches every resource except those listed (same page)."""
    statement = {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}
    assert decide(statement, "s3:GetObject", "arn:aws:s3:::public/a").allowed
    assert not decide(statement, "s3:GetObject", "arn:aws:s3:::secret/a").allowed


# ---------------------------------------------------------------------- permissions boundary
IDENTITY = [("CreateUser", doc(allow("iam:CreateUser"), allow("s3:*")))]
S3_BOUNDARY = [("AmazonS3FullAccess", doc(allow("s3:*")))]


def test_boundary_that_does_not_allow_the_action_denies_it() -> None:
    """Permissions boundaries (access_policies_boundaries.html): the identity policy allows
    iam:CreateUser, the boundary allows only S3, so "the operation fails"."""
    request = Request("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/ana")
    assert evaluate(IDENTITY, request) == Decision(True, ALLOWED, "CreateUser", "#0")
    assert evaluate(IDENTITY, request, S3_BOUNDARY) == Decision(False, IMPLICIT_DENY, None, None)
    s3 = evaluate(IDENTITY, Request("s3:PutObject", "arn:aws:s3:::b/k"), S3_BOUNDARY)
    assert s3 == Decision(True, ALLOWED, "CreateUser", "#1")


def test_boundary_grants_nothing_by_itself() -> None:
    """The boundary only limits: an action it allows but no identity policy allows is denied."""
    decision = evaluate([("empty", doc(allow("ec2:*")))], Request("s3:PutObject", "*"), S3_BOUNDARY)
    assert decision.reason == IMPLICIT_DENY


def test_explicit_deny_in_the_boundary_and_empty_boundary() -> None:
    """An explicit deny in any policy, boundary included, denies; an empty boundary allows
    nothing (reference_policies_evaluation-logic.html)."""
    boundary = [("guard", doc(allow("s3:*"), {**deny("s3:DeleteBucket"), "Sid": "NoDelete"}))]
    decision = evaluate(IDENTITY, Request("s3:DeleteBucket", "arn:aws:s3:::b"), boundary)
    assert decision == Decision(False, EXPLICIT_DENY, "guard", "NoDelete")
    assert evaluate(IDENTITY, Request("s3:PutObject", "*"), []).reason == IMPLICIT_DENY


# --------------------------------------------------------------------- actions and resources
def test_action_names_are_case_insensitive() -> None:
    """Action element (reference_policies_elements_action.html): "iam:ListAccessKeys is the same
    as IAM:listaccesskeys"; wildcards match case-insensitively too."""
    assert decide(allow("IAM:listaccesskeys"), "iam:ListAccessKeys").allowed
    assert decide(allow("iam:ListAccessKeys"), "IAM:LISTACCESSKEYS").allowed
    assert decide(allow("IAM:*accesskey*"), "iam:CreateAccessKey").allowed
    assert decide(allow("iam:List?ccessKeys"), "iam:ListAccessKeys").allowed
    assert not decide(allow("iam:List?AccessKeys"), "iam:ListAccessKeys").allowed
    assert not decide(allow("iam:ListAccessKeys"), "iam:ListAccessKey").allowed


def test_resources_are_case_sensitive() -> None:
    """Resource element (reference_policies_elements_resource.html): "In the Resource element,
    the IAM user name is case sensitive"."""
    statement = allow("iam:*", f"arn:aws:iam::{ACCOUNT}:user/Bob")
    assert decide(statement, "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/Bob").allowed
    assert not decide(statement, "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/bob").allowed


@pytest.mark.parametrize(
    ("key", "matches"),
    [
        ("1/test/object.jpg", True),
        ("1/2/test/object.jpg", True),
        ("1/2/test/3/object.jpg", True),
        ("1/2/3/test/4/object.jpg", True),
        ("1///test///object.jpg", True),
        ("1/test/.jpg", True),
        ("/test/object.jpg", True),
        ("1/test/", True),
        ("1-test/object.jpg", False),
        ("test/object.jpg", False),
        ("1/2/test.jpg", False),
    ],
)
def test_resource_wildcards_span_slashes(key: str, matches: bool) -> None:
    """Using wildcards in resource ARNs (reference_policies_elements_resource.html): the lists of
    objects arn:aws:s3:::amzn-s3-demo-bucket/*/test/* does and does not match."""
    statement = allow("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*")
    resource = f"arn:aws:s3:::amzn-s3-demo-bucket/{key}"
    assert decide(statement, "s3:GetObject", resource).allowed is matches


def test_resource_wildcards_and_arn_segments() -> None:
    """Same page: wildcards work within a segment, and "If the * wildcard is the last character of
    a resource ARN segment, it can expand to match beyond the colon boundaries"."""
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abc"
    assert decide(
        allow("ec2:*", "arn:aws:ec2:us-east-?:*:instance/*"), "ec2:StopInstances", instance
    ).allowed
    assert decide(allow("ec2:*", "arn:aws:ec2:*:instance/*"), "ec2:StopInstances", instance).allowed
    # a * inside a segment stops at its colon: u*2 can't run from the region into the account
    assert not decide(
        allow("ec2:*", "arn:aws:ec2:u*2:instance/*"), "ec2:StopInstances", instance
    ).allowed
    assert decide(
        allow("ec2:*", "arn:aws:ec2:u*:instance/*"), "ec2:StopInstances", instance
    ).allowed
    assert not decide(
        allow("ec2:*", f"arn:aws:ec2:*:{ACCOUNT}:volume/*"), "ec2:StopInstances", instance
    ).allowed
    assert decide(allow("ec2:*", "*"), "ec2:DescribeInstances", "*").allowed
    assert not decide(allow("ec2:*", "arn:aws:ec2:*:*:*"), "ec2:DescribeInstances", "*").allowed


# --------------------------------------------------------------------------- condition logic
MULTI = {
    "StringEquals": {
        "aws:PrincipalTag/department": ["finance", "hr", "legal"],
        "aws:PrincipalTag/role": ["audit", "security"],
    },
    "ArnLike": {
        "aws:PrincipalArn": [
            "arn:aws:iam::222222222222:user/Ana",
            "arn:aws:iam::222222222222:user/Mary",
        ]
    },
}
NEGATED = {**MULTI, "ArnNotLike": MULTI["ArnLike"]}
del NEGATED["ArnLike"]


def principal(name: str, department: str | None = None, role: str | None = None) -> dict[str, Any]:
    context = {"aws:PrincipalArn": f"arn:aws:iam::222222222222:user/{name}"}
    if department:
        context["aws:PrincipalTag/department"] = department
    if role:
        context["aws:PrincipalTag/role"] = role
    return context


@pytest.mark.parametrize(
    ("context", "match"),
    [
        (principal("Mary", "legal", "audit"), True),
        (principal("Nikki", "hr", "audit"), False),
        (principal("Mary", "hr", "payroll"), False),
        (principal("Mary", "hr"), False),
        (principal("Mary"), False),
    ],
)
def test_operators_and_keys_are_anded_values_ored(context: dict[str, Any], match: bool) -> None:
    """Evaluation logic for multiple context keys or values
    (reference_policies_condition-logic-multiple-context-keys-or-values.html): the table for
    StringEquals on department and role plus ArnLike on aws:PrincipalArn."""
    assert holds(MULTI, context) is match


@pytest.mark.parametrize(
    ("context", "match"),
    [
        (principal("Nikki", "legal", "audit"), True),
        (principal("Mary", "hr", "audit"), False),
        (principal("Nikki", "hr", "payroll"), False),
        (principal("Nikki", "hr"), False),
        (principal("Nikki"), False),
    ],
)
def test_negated_operator_values_are_nored(context: dict[str, Any], match: bool) -> None:
    """Evaluation logic for negated matching condition operators (same page): with ArnNotLike the
    principal ARN must match none of the listed ARNs."""
    assert holds(NEGATED, context) is match


def test_string_not_equals_with_several_values_is_nor() -> None:
    """Same page: "a logical NOR ... returns true only if all values evaluate to false" - not an
    OR, which would make StringNotEquals over two values always true."""
    condition = {"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}
    assert not holds(condition, {"aws:PrincipalTag/role": "audit"})
    assert not holds(condition, {"aws:PrincipalTag/role": "security"})
    assert holds(condition, {"aws:PrincipalTag/role": "payroll"})


NEGATED_OPERATORS = [
    ("StringNotEquals", "x"),
    ("StringNotEqualsIgnoreCase", "x"),
    ("StringNotLike", "x*"),
    ("NumericNotEquals", "1"),
    ("DateNotEquals", "2020-01-01T00:00:00Z"),
    ("NotIpAddress", "203.0.113.0/24"),
    ("ArnNotEquals", "arn:aws:sns:us-east-1:123456789012:topic"),
    ("ArnNotLike", "arn:aws:sns:*:*:*"),
]


@pytest.mark.parametrize(("operator", "value"), NEGATED_OPERATORS)
def test_negated_operator_holds_when_the_key_is_missing(operator: str, value: str) -> None:
    """Condition operators (reference_policies_elements_condition_operators.html): "If the policy
    condition requires that the key is not matched, such as StringNotLike or ArnNotLike, and the
    right key is not present, the condition is true"."""
    assert holds({operator: {"aws:SomeKey": value}}, {})
    positive = operator.replace("Not", "", 1)
    assert not holds({positive: {"aws:SomeKey": value}}, {})


def test_deny_with_negated_operator_denies_when_the_key_is_missing() -> None:
    """...IfExists (same page): "If you are using an Effect: Deny element with a negated condition
    operator like StringNotEqualsIfExists, the request is still denied even if the tag is
    missing"."""
    statements = [
        allow(),
        deny(Condition={"StringNotEqualsIfExists": {"aws:ResourceTag/team": "blue"}}),
    ]
    assert decide(statements, context={}).reason == EXPLICIT_DENY
    assert decide(statements, context={"aws:ResourceTag/team": "red"}).reason == EXPLICIT_DENY
    assert decide(statements, context={"aws:ResourceTag/team": "blue"}).reason == ALLOWED


@pytest.mark.parametrize(
    ("operator", "instance_type", "allowed"),
    [
        ("StringLike", None, False),
        ("StringLikeIfExists", None, True),
        ("StringLikeIfExists", "t2.micro", True),
        ("StringLikeIfExists", "m5.large", False),
        ("StringLike", "t2.micro", True),
    ],
)
def test_if_exists(operator: str, instance_type: str | None, allowed: bool) -> None:
    """Example using IfExists (same page): RunInstances touches images, key pairs... that have no
    ec2:InstanceType, so THISPOLICYDOESNOTWORK with StringLike; StringLikeIfExists fixes it."""
    statement = allow(
        "ec2:RunInstances",
        Condition={operator: {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
    )
    context = {} if instance_type is None else {"ec2:InstanceType": instance_type}
    assert decide(statement, "ec2:RunInstances", context=context).allowed is allowed


def test_string_like_wildcards_and_case() -> None:
    """String condition operators (same page): StringLike is case-sensitive, * and ? anywhere;
    StringEquals has no wildcards; the IgnoreCase forms ignore case."""
    like = {"StringLike": {"s3:prefix": ["", "home/", "home/*/", "logs/20??-*"]}}
    assert holds(like, {"s3:prefix": ""})
    assert holds(like, {"s3:prefix": "home/ana/"})
    assert holds(like, {"s3:prefix": "logs/2024-05"})
    assert not holds(like, {"s3:prefix": "logs/199-05"})
    assert not holds(like, {"s3:prefix": "Home/"})
    assert not holds({"StringEquals": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/ana"})
    assert holds({"StringEquals": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/*"})
    assert holds(
        {"StringEqualsIgnoreCase": {"aws:PrincipalTag/team": "Blue"}},
        {"aws:PrincipalTag/team": "BLUE"},
    )
    assert not holds(
        {"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/team": "Blue"}},
        {"aws:PrincipalTag/team": "blue"},
    )


# --------------------------------------------------------------------------- set operators
FOR_ALL_WITH_NULL = {
    "ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]},
    "Null": {"aws:TagKeys": "false"},
}


@pytest.mark.parametrize(
    ("tag_keys", "match"),
    [
        (["environment"], True),
        (["cost-center"], True),
        (["environment", "cost-center"], True),
        (["environment", "dept"], False),
        (None, False),
    ],
)
def test_for_all_values_with_null_check(tag_keys: list[str] | None, match: bool) -> None:
    """ForAllValues (reference_policies_condition-single-vs-multi-valued-context-keys.html): the
    table for ec2:DeleteTags with ForAllValues:StringEquals and "Null": false."""
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    assert holds(FOR_ALL_WITH_NULL, context) is match


@pytest.mark.parametrize("context", [{}, {"aws:TagKeys": []}, {"aws:TagKeys": None}])
def test_for_all_values_allow_is_permissive_without_the_key(context: dict[str, Any]) -> None:
    """Same page: ForAllValues "also returns true if there are no context keys in the request" -
    the documented pitfall of an Allow without the Null check."""
    condition = {"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}
    assert holds(condition, context)
    assert not holds({**condition, "Null": {"aws:TagKeys": "false"}}, context)


@pytest.mark.parametrize(
    ("tag_keys", "match"),
    [
        (["environment"], True),
        (["cost-center"], True),
        (["environment", "cost-center"], True),
        (["environment", "dept"], True),
        (["dept"], False),
        (None, False),
    ],
)
def test_for_any_value(tag_keys: list[str] | None, match: bool) -> None:
    """ForAnyValue (same page): true if any request value matches; "if the key does not exist,
    the condition returns false"."""
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    assert (
        holds(
            {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}, context
        )
        is match
    )


@pytest.mark.parametrize(
    ("patterns", "tag_keys", "denied"),
    [
        ("key1*", ["key1:legal"], False),
        ("key1*", ["key1:hr", "key1:personnel"], False),
        ("key1*", ["key2:audit"], True),
        ("key1*", None, True),
        (["key1*", "key2*"], ["key1:legal"], False),
        (["key1*", "key2*"], ["key1:hr", "key1:personnel"], False),
        (["key1*", "key2*"], ["key1:hr", "key2:audit"], False),
        (["key1*", "key2*"], ["key3:legal"], True),
        (["key1*", "key2*"], None, True),
    ],
)
def test_deny_with_for_all_values_string_not_like(
    patterns: Any, tag_keys: list[str] | None, denied: bool
) -> None:
    """Deny policy with condition set operator ForAllValues
    (reference_policies_condition_examples-multi-valued-context-keys.html): both tables for
    ForAllValues:StringNotLike on aws:TagKeys in a Deny statement."""
    statements = [
        allow(),
        {
            "Sid": "DenyRestrictedTags",
            "Effect": "Deny",
            "Action": ["iam:Tag*", "iam:UnTag*"],
            "Resource": ["*"],
            "Condition": {"ForAllValues:StringNotLike": {"aws:TagKeys": patterns}},
        },
    ]
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    decision = decide(statements, "iam:TagRole", context=context)
    assert (decision.reason == EXPLICIT_DENY) is denied


@pytest.mark.parametrize(
    ("tag_keys", "denied"),
    [
        (["webserver"], True),
        (["environment", "webserver", "test"], True),
        (["environment", "test"], False),
        (None, False),
    ],
)
def test_deny_with_for_any_value(tag_keys: list[str] | None, denied: bool) -> None:
    """Deny policy with condition set operator ForAnyValue (same page): the table for snapshots
    tagged webserver."""
    statements = [
        allow(),
        deny(
            ["ec2:CreateSnapshot", "ec2:CreateSnapshots"],
            "arn:aws:ec2:us-west-2::snapshot/*",
            Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "webserver"}},
        ),
    ]
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    decision = decide(
        statements, "ec2:CreateSnapshot", "arn:aws:ec2:us-west-2::snapshot/snap-1", context
    )
    assert (decision.reason == EXPLICIT_DENY) is denied


def test_if_exists_with_a_set_operator_and_no_key() -> None:
    """...IfExists (reference_policies_elements_condition_operators.html): "If the key is not
    present, evaluate the condition element as true", set operator or not."""
    assert holds({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "environment"}}, {})
    assert not holds({"ForAnyValue:StringEquals": {"aws:TagKeys": "environment"}}, {})
    assert not holds(
        {"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "environment"}},
        {"aws:TagKeys": ["dept"]},
    )


def test_single_valued_operator_on_a_multivalued_key_does_not_match() -> None:
    """ "Multivalued context keys require a condition set operator"
    (reference_policies_condition-single-vs-multi-valued-context-keys.html). Without one an
    operator matches no multivalued request value, negated or not: StringNotEquals is not
    ForAnyValue:StringNotEquals, which holds as soon as one value differs."""
    two = {"aws:TagKeys": ["environment", "dept"]}
    assert not holds({"StringEquals": {"aws:TagKeys": "environment"}}, two)
    assert holds({"ForAnyValue:StringEquals": {"aws:TagKeys": "environment"}}, two)
    assert not holds({"StringNotEquals": {"aws:TagKeys": "owner"}}, two)
    assert holds({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "environment"}}, two)
    assert not holds({"ForAllValues:StringNotEquals": {"aws:TagKeys": "environment"}}, two)
    # a one-value list is that value
    assert holds({"StringEquals": {"aws:TagKeys": "environment"}}, {"aws:TagKeys": ["environment"]})


# --------------------------------------------------------------------------- operator kinds
def test_null() -> None:
    """Condition operator to check existence of condition keys (condition operators page): allow
    EC2 only without temporary credentials - aws:TokenIssueTime must not exist."""
    condition = {"Null": {"aws:TokenIssueTime": "true"}}
    assert holds(condition, {})
    assert not holds(condition, {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"})
    assert holds(
        {"Null": {"aws:TokenIssueTime": False}}, {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}
    )


@pytest.mark.parametrize(
    ("secure", "reason"),
    [
        ("false", EXPLICIT_DENY),
        (False, EXPLICIT_DENY),
        ("true", ALLOWED),
        (True, ALLOWED),
        ("TRUE", ALLOWED),
    ],
)
def test_bool_with_string_value(secure: Any, reason: str) -> None:
    """Boolean condition operators (condition operators page): deny S3 unless the request is over
    SSL, "aws:SecureTransport": "false" as a string; the context may hold a bool or a string."""
    statements = [
        allow("s3:*"),
        {
            "Sid": "BooleanExample",
            "Action": "s3:*",
            "Effect": "Deny",
            "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]
    context = {"aws:SecureTransport": secure}
    assert (
        decide(statements, "s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/k", context).reason
        == reason
    )
    assert holds({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "true"})


def test_numeric_operators() -> None:
    """Numeric condition operators (condition operators page): s3:max-keys up to 10 with
    NumericLessThanEquals; numbers compare as numbers, not strings."""
    lte = {"NumericLessThanEquals": {"s3:max-keys": "10"}}
    assert holds(lte, {"s3:max-keys": 10})
    assert holds(lte, {"s3:max-keys": "9"})
    assert not holds(lte, {"s3:max-keys": "11"})
    assert not holds(lte, {})
    lt = {"NumericLessThan": {"s3:max-keys": 10}}
    assert holds(lt, {"s3:max-keys": 9.5})
    assert not holds(lt, {"s3:max-keys": 10})
    assert holds({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10.0"})
    assert holds({"NumericGreaterThan": {"s3:max-keys": "100"}}, {"s3:max-keys": 1000})
    assert not holds({"NumericGreaterThanEquals": {"s3:max-keys": "100"}}, {"s3:max-keys": 99})


def test_date_greater_than() -> None:
    """Date condition operators (condition operators page): aws:TokenIssueTime after
    2020-01-01T00:00:01Z; the key is absent for long-term access keys, so those are denied.
    Dates are ISO 8601 or epoch."""
    condition = {"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"}}
    assert holds(condition, {"aws:TokenIssueTime": "2020-06-01T12:00:00Z"})
    assert holds(condition, {"aws:TokenIssueTime": datetime(2021, 1, 1, tzinfo=UTC)})
    assert holds(condition, {"aws:TokenIssueTime": 1_600_000_000})
    assert not holds(condition, {"aws:TokenIssueTime": "2019-12-31T23:59:59Z"})
    assert not holds(condition, {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"})
    assert not holds(condition, {})
    assert holds(
        {"DateLessThan": {"aws:EpochTime": 1_700_000_000}}, {"aws:EpochTime": "1699999999"}
    )
    assert holds(
        {"DateEquals": {"aws:CurrentTime": "2024-05-01"}}, {"aws:CurrentTime": datetime(2024, 5, 1)}
    )


def test_arn_like_matches_segment_by_segment() -> None:
    """ARN condition operators (condition operators page): with the pattern
    arn:aws:someservice:*:111122223333:finance/* StringLike matches the value below, ArnLike
    does not, its first * matching only the region."""
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
    assert holds({"StringLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": value})
    assert not holds({"ArnLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": value})
    own = "arn:aws:someservice:us-east-2:111122223333:finance/document.txt"
    assert holds({"ArnLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": own})
    topic = "arn:aws:sns:us-east-1:123456789012:TOPIC-ID"
    assert holds({"ArnEquals": {"aws:SourceArn": topic}}, {"aws:SourceArn": topic})
    assert not holds({"ArnEquals": {"aws:SourceArn": topic}}, {"aws:SourceArn": topic.lower()})
    assert not holds(
        {"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}, {"aws:SourceArn": topic}
    )


def test_ip_address() -> None:
    """IP address condition operators (condition operators page): 203.0.113.0/24 and an IPv6
    range; an address without a prefix is /32."""
    condition = {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}}
    assert holds(condition, {"aws:SourceIp": "203.0.113.7"})
    assert holds(condition, {"aws:SourceIp": "2001:db8:1234:5678::1"})
    assert not holds(condition, {"aws:SourceIp": "198.51.100.1"})
    assert not holds(condition, {})
    assert holds({"IpAddress": {"aws:SourceIp": "198.51.100.1"}}, {"aws:SourceIp": "198.51.100.1"})
    assert not holds(
        {"IpAddress": {"aws:SourceIp": "198.51.100.1"}}, {"aws:SourceIp": "198.51.100.2"}
    )
    assert holds(
        {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.1"}
    )


def test_binary_equals() -> None:
    """Binary condition operators (condition operators page): the policy value is base-64."""
    value = base64.b64encode(b"BinaryValueInBase64").decode()
    assert holds({"BinaryEquals": {"aws:Key": value}}, {"aws:Key": b"BinaryValueInBase64"})
    assert not holds({"BinaryEquals": {"aws:Key": value}}, {"aws:Key": b"other"})


# ------------------------------------------------------------------ condition key names' case
def test_condition_key_names_are_case_insensitive_tag_key_included() -> None:
    """Condition element (reference_policies_elements_condition.html) and every service's ABAC
    page: "The condition tag key Owner matches both Owner and owner because condition key names
    are not case-sensitive". Tag values still compare case-sensitively."""
    condition = {"StringEquals": {"aws:ResourceTag/Stage": "prod"}}
    assert holds(condition, {"AWS:resourcetag/Stage": "prod"})
    assert holds(condition, {"aws:ResourceTag/stage": "prod"})
    assert not holds(condition, {"aws:ResourceTag/Stage": "Prod"})
    # a key spelled exactly as in the policy wins over one differing in case
    both = {"aws:ResourceTag/stage": "dev", "aws:ResourceTag/Stage": "prod"}
    assert holds(condition, both)


# ------------------------------------------------------------------------- policy variables
HOME = doc(
    allow(
        "s3:ListBucket",
        "arn:aws:s3:::BUCKET-NAME",
        Condition={"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}},
    ),
    allow(
        "s3:*",
        [
            "arn:aws:s3:::BUCKET-NAME/home/${aws:username}",
            "arn:aws:s3:::BUCKET-NAME/home/${aws:username}/*",
        ],
    ),
)


def test_policy_variables_in_resource_and_condition() -> None:
    """String condition operators (condition operators page): the S3 home-directory policy with
    ${aws:username} in StringLike values and in Resource."""
    ana = {"aws:username": "ana"}
    get = "s3:GetObject"
    assert evaluate(
        [("home", HOME)], Request(get, "arn:aws:s3:::BUCKET-NAME/home/ana/notes.txt", ana)
    ).allowed
    assert not evaluate(
        [("home", HOME)], Request(get, "arn:aws:s3:::BUCKET-NAME/home/bob/notes.txt", ana)
    ).allowed
    listing = Request(
        "s3:ListBucket", "arn:aws:s3:::BUCKET-NAME", {**ana, "s3:prefix": "home/ana/"}
    )
    assert evaluate([("home", HOME)], listing).allowed
    other = Request("s3:ListBucket", "arn:aws:s3:::BUCKET-NAME", {**ana, "s3:prefix": "home/bob/"})
    assert not evaluate([("home", HOME)], other).allowed


def test_variable_without_a_value_matches_nothing() -> None:
    """Policy variables with no value (reference_policies_variables.html): a resource holding one
    "will not match any resource"; StringEquals does not match it, StringNotEquals does, so the
    documented Deny denies when aws:PrincipalTag/Team is not set."""
    resource = "arn:aws:s3:::BUCKET-NAME/home/ana/notes.txt"
    assert not evaluate([("home", HOME)], Request("s3:GetObject", resource, {})).allowed
    statements = [
        allow("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/*"),
        deny(
            "s3:GetObject",
            "arn:aws:s3:::amzn-s3-demo-bucket/*",
            Condition={
                "StringNotEquals": {"s3:ExistingObjectTag/Team": "${aws:PrincipalTag/Team}"}
            },
        ),
    ]
    obj = "arn:aws:s3:::amzn-s3-demo-bucket/k"
    tagged = {"s3:ExistingObjectTag/Team": "blue"}
    assert decide(
        statements, "s3:GetObject", obj, {**tagged, "aws:PrincipalTag/Team": "blue"}
    ).allowed
    assert (
        decide(statements, "s3:GetObject", obj, {**tagged, "aws:PrincipalTag/Team": "red"}).reason
        == EXPLICIT_DENY
    )
    assert decide(statements, "s3:GetObject", obj, tagged).reason == EXPLICIT_DENY
    equals = {"StringEquals": {"s3:ExistingObjectTag/owner": "${aws:PrincipalTag/owner}"}}
    assert holds(equals, {"s3:ExistingObjectTag/owner": "ana", "aws:principaltag/OWNER": "ana"})
    assert not holds(equals, {"s3:ExistingObjectTag/owner": "ana"})


def test_variable_default_value_and_special_characters() -> None:
    """Specifying default values and Special characters (reference_policies_variables.html):
    ${aws:PrincipalTag/team, 'company-wide'}, and ${*} ${?} ${$} as literal characters."""
    team = allow(
        "s3:*", "arn:aws:s3:::amzn-s3-demo-bucket-${aws:PrincipalTag/team, 'company-wide'}"
    )
    yellow = "arn:aws:s3:::amzn-s3-demo-bucket-yellow"
    wide = "arn:aws:s3:::amzn-s3-demo-bucket-company-wide"
    assert decide(team, "s3:ListBucket", yellow, {"aws:PrincipalTag/team": "yellow"}).allowed
    assert not decide(team, "s3:ListBucket", wide, {"aws:PrincipalTag/team": "yellow"}).allowed
    assert decide(team, "s3:ListBucket", wide, {}).allowed
    star = allow("s3:GetObject", "arn:aws:s3:::bucket/${*}${?}${$}")
    assert decide(star, "s3:GetObject", "arn:aws:s3:::bucket/*?$").allowed
    assert not decide(star, "s3:GetObject", "arn:aws:s3:::bucket/a?$").allowed


def test_variables_need_version_2012_10_17() -> None:
    """reference_policies_variables.html: without "Version": "2012-10-17" "variables like
    ${aws:username} are treated as literal strings in the policy"."""
    statement = allow("s3:GetObject", "arn:aws:s3:::b/${aws:username}")
    context = {"aws:username": "ana"}
    old = [("old", doc(statement, version=None))]
    assert not evaluate(old, Request("s3:GetObject", "arn:aws:s3:::b/ana", context)).allowed
    assert evaluate(old, Request("s3:GetObject", "arn:aws:s3:::b/${aws:username}", context)).allowed


# ------------------------------------------------------------------------------ evaluate_all
SG = f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-0quarantine"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abc"
PROD = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0prod"
NETWORK = doc(
    {
        "Sid": "Modify",
        "Effect": "Allow",
        "Action": "ec2:ModifyInstanceAttribute",
        "Resource": [
            f"arn:aws:ec2:*:{ACCOUNT}:instance/*",
            f"arn:aws:ec2:*:{ACCOUNT}:security-group/*",
        ],
    },
    {
        "Sid": "NotProd",
        "Effect": "Deny",
        "Action": "ec2:*",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}},
    },
)


def test_evaluate_all_denies_the_call_if_any_resource_is_denied() -> None:
    """A request with several resources is allowed only if every one is
    (reference_policies_evaluation-logic.html: each resource in the request is evaluated)."""
    policies = [("network", NETWORK)]
    ok = [Request("ec2:ModifyInstanceAttribute", r) for r in (INSTANCE, SG)]
    assert evaluate_all(policies, ok) == (Decision(True, ALLOWED, "network", "Modify"), None)
    prod = Request("ec2:ModifyInstanceAttribute", PROD, {"aws:ResourceTag/env": "prod"})
    outside = Request(
        "ec2:ModifyInstanceAttribute", "arn:aws:ec2:us-east-1:999999999999:instance/i-1"
    )
    decision, culprit = evaluate_all(policies, [ok[0], outside, prod, ok[1]])
    assert decision == Decision(False, EXPLICIT_DENY, "network", "NotProd")
    assert culprit is prod
    decision, culprit = evaluate_all(policies, [ok[0], outside, ok[1]])
    assert decision == Decision(False, IMPLICIT_DENY, None, None)
    assert culprit is outside
    with pytest.raises(ValueError):
        evaluate_all(policies, [])


# ---------------------------------------------------------------------------- realistic EC2
ISOLATION = doc(
    {
        "Sid": "IsolateWithTaggedGroups",
        "Effect": "Allow",
        "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"],
        "Resource": "arn:aws:ec2:*:123456789012:security-group/*",
        "Condition": {"StringEquals": {"aws:ResourceTag/opsflow:role": "isolation"}},
    }
)


@pytest.mark.parametrize(
    ("resource", "tags", "allowed"),
    [
        (SG, {"opsflow:role": "isolation"}, True),
        (SG, {"opsflow:role": "isolation", "Name": "quarantine"}, True),
        (SG, {"opsflow:role": "web"}, False),
        (SG, {}, False),
        (
            f"arn:aws:ec2:eu-west-1:{ACCOUNT}:security-group/sg-1",
            {"OpsFlow:Role": "isolation"},
            True,
        ),
        (
            "arn:aws:ec2:us-east-1:999999999999:security-group/sg-1",
            {"opsflow:role": "isolation"},
            False,
        ),
        (INSTANCE, {"opsflow:role": "isolation"}, False),
    ],
)
def test_ec2_tag_condition_on_security_groups(
    resource: str, tags: dict[str, str], allowed: bool
) -> None:
    """Controlling access to AWS resources using tags (access_tags.html): an Allow on
    security groups carrying aws:ResourceTag/opsflow:role = isolation, for a group with and
    without the tag (tag keys compared case-insensitively, as condition key names are)."""
    context = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    request = Request("ec2:RevokeSecurityGroupEgress", resource, context)
    decision = evaluate([("isolation", ISOLATION)], request)
    assert decision.allowed is allowed
    if allowed:
        assert decision == Decision(True, ALLOWED, "isolation", "IsolateWithTaggedGroups")


# ----------------------------------------------------------------------- malformed documents
@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ({"Effect": "allow", "Action": "s3:*", "Resource": "*"}, "Effect"),
        ({"Effect": "Permit", "Action": "s3:*", "Resource": "*"}, "Effect"),
        ({"Effect": "Allow", "Resource": "*"}, "Action"),
        ({"Effect": "Allow", "Action": "s3:*", "NotAction": "iam:*", "Resource": "*"}, "Action"),
        ({"Effect": "Allow", "Action": "s3:*"}, "Resource"),
        ({"Effect": "Allow", "Action": "GetItem", "Resource": "*"}, "service:action"),
        ({"Effect": "Allow", "Action": "s3:*", "Resource": "bucket"}, "ARN"),
        ({"Effect": "Allow", "Action": [], "Resource": "*"}, "Action"),
        ({"Effect": "Allow", "Actions": "s3:*", "Action": "s3:*", "Resource": "*"}, "Actions"),
        ({"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}, "Principal"),
        (allow(Condition={"StringEqualz": {"k": "v"}}), "StringEqualz"),
        (allow(Condition={"ForEveryValue:StringEquals": {"k": "v"}}), "ForEveryValue"),
        (allow(Condition={"NullIfExists": {"k": "true"}}), "Null"),
        (allow(Condition={"Null": {"k": "maybe"}}), "Null"),
        (allow(Condition={"Bool": {"k": "yes"}}), "Bool"),
        (allow(Condition={"NumericLessThan": {"k": "ten"}}), "numeric"),
        (allow(Condition={"DateGreaterThan": {"k": "yesterday"}}), "date"),
        (allow(Condition={"IpAddress": {"k": "300.1.1.1/8"}}), "ip"),
        (allow(Condition={"StringEquals": {"k": []}}), "no condition values"),
        (allow(Condition={"StringEquals": {"k": {"nested": 1}}}), "not a string"),
        (allow(Condition={"StringEquals": "k"}), "condition keys"),
        (allow("s3:*", "arn:aws:s3:::b/${aws:username"), "closing brace"),
        (allow("s3:*", "arn:aws:s3:::b/${aws:username, company}"), "malformed policy variable"),
    ],
)
def test_malformed_documents_raise_policy_error(statement: dict[str, Any], message: str) -> None:
    """Policy grammar (reference_policies_grammar.html) and Access Analyzer's policy checks: each
    document here is one AWS refuses; the error says what is wrong."""
    with pytest.raises(PolicyError, match=message):
        evaluate([("bad", doc(deny("s3:*"), statement))], Request("s3:GetObject", "*"))


def test_malformed_documents_at_policy_level() -> None:
    """A document needs Statement; Version is 2012-10-17 or 2008-10-17."""
    for document, message in [
        ({"Version": "2012-10-17"}, "Statement"),
        ({"Version": "2020-01-01", "Statement": []}, "Version"),
        ({"Version": "2012-10-17", "Statement": "s3:*"}, "Statement"),
        ({"Version": "2012-10-17", "Statement": [], "Statment": []}, "Statment"),
        ("not json", "JSON"),
    ]:
        with pytest.raises(PolicyError, match=message):
            evaluate([("bad", document)], Request("s3:GetObject", "*"))
    assert issubclass(PolicyError, ValueError)


@pytest.mark.parametrize(
    ("glob", "text"),
    [
        ("arn:aws:ec2:*:123456789012:instance/*", "arn:aws:ec2:us-east-1:123456789012:instance/i-1"),
        ("arn:aws:ec2:*:123456789012:instance/*", "arn:aws:ec2:us-east-1:999:instance/i-1"),
        ("arn:aws:s3:::bucket/a?c*", "arn:aws:s3:::bucket/abc/x:y"),
        ("arn:aws:s3:::bucket/a?c*", "arn:aws:s3:::bucket/ac"),
        ("arn:aws:*:*:*:*", "arn:aws:ec2:us-east-1:1:instance/i-1"),
        ("arn:aws:ec2:us-?ast-1:*", "arn:aws:ec2:us-east-1:1:x"),
        ("*", "anything:at:all"),
    ],
)
def test_the_compiled_glob_matches_as_the_walk_does(glob: str, text: str) -> None:
    from opsflow.engine.iam import policy

    tokens = tuple((ch, ch in "*?") for ch in glob)
    for pattern in (policy._resource_glob(tokens), policy._glob(tokens)):
        assert policy._matches(pattern, text) == policy._walk(pattern, text)
