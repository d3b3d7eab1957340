"""What one API request asks IAM for: the actions (the operation's own and the implicit ones AWS
also checks), the resources each is evaluated on (ARNs named by the request, or created by it,
or attached to what it names), and the request's condition keys.

The action, its resource types, their ARN formats and the condition keys each resource type
carries all come from the IAM reference (:mod:`opsflow.engine.iam.catalog`); this module only
knows how a request names its resources, and reads existing resources' tags from the emulated
account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from opsflow.engine.iam import catalog

EC2_ID_PREFIXES = {
    "i": "instance",
    "eni": "network-interface",
    "sg": "security-group",
    "vol": "volume",
    "snap": "snapshot",
    "vpc": "vpc",
    "subnet": "subnet",
    "ami": "image",
}
"""EC2 resource IDs begin with the resource type's prefix (EC2 API reference, "Resource IDs")."""
EC2_ID = re.compile(r"^(" + "|".join(EC2_ID_PREFIXES) + r")-[0-9a-f]{8,17}$")
INTERFACE_CHANGES = {"ModifyNetworkInterfaceAttribute", "DetachNetworkInterface"}
"""Changes to an interface that EC2 also authorizes on the instance it is attached to (the
reference lists ``instance`` for them); CreateSnapshots likewise names the instance's volumes."""
_SKIP_KEYS = {"Filters", "TagSpecifications", "Tags", "Description", "DryRun", "MaxResults", "NextToken"}

EBS_ENCRYPTION_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)
"""What a caller needs on a customer managed key to use EBS encryption (Amazon EBS user guide,
"Requirements for Amazon EBS encryption", permissions for users; ``kms:ReEncrypt*`` is two actions)."""


@dataclass
class Target:
    type: str
    """Resource type in the reference (``""``: the action has none and is evaluated on ``*``)."""
    arn: str
    tags: dict[str, str] | None = None
    """Tags of an existing resource (its ``aws:ResourceTag/*``); None for one being created."""
    keys: dict[str, Any] = field(default_factory=dict)
    """Condition keys of this resource alone."""


@dataclass
class Authorization:
    action: str
    """``prefix:Action`` as IAM names it."""
    targets: list[Target]
    keys: dict[str, Any] = field(default_factory=dict)
    """Condition keys of the request, for every target."""
    implicit: bool = False
    """Checked by AWS on the caller's behalf (tag-on-create, a KMS key a service uses)."""


def fill(arn_format: str, region: str, account: str, last: str) -> str:
    """An ARN from the reference's format: partition, region and account filled, and the
    resource's own name or ID (``*`` for one not yet created) in the rest (the placeholders
    after the last fixed part, e.g. ``${ServiceCode}/${QuotaCode}`` takes ``ebs/L-7A658B76``)."""
    text = arn_format.replace("${Partition}", "aws").replace("${Region}", region)
    text = text.replace("${Account}", account)
    head = re.match(r"^(.*?[:/])((?:\$\{[^}]+\}[/:]?)+)$", text)
    if head is None:
        return text
    return head.group(1) + last


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    if key in _SKIP_KEYS:
        return []
    if isinstance(value, str):
        return [(key, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, key)]
    return []


def _tags(items: Any) -> dict[str, str]:
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    return {str(t.get("Key")): str(t.get("Value", "")) for t in items or [] if isinstance(t, dict)}


def tag_keys(tags: dict[str, str]) -> dict[str, Any]:
    keys: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    keys["aws:TagKeys"] = sorted(tags)
    return keys


class Account:
    """Reads what IAM needs from the emulated account (moto's backends, without API calls)."""

    def __init__(self, account: str) -> None:
        self.account = account

    def ec2(self, region: str) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account][region]

    def ec2_tags(self, region: str, resource_id: str) -> dict[str, str]:
        return dict(self.ec2(region).tags.get(resource_id, {}))

    def eni_instance(self, region: str, eni_id: str) -> str | None:
        try:
            eni = self.ec2(region).get_network_interface(eni_id)
        except Exception:  # moto raises its own not-found error; the API call will report it
            return None
        return eni.instance.id if eni.instance is not None else None

    def instance_volumes(self, region: str, instance_id: str) -> list[Any]:
        try:
            instance = self.ec2(region).get_instance(instance_id)
        except Exception:
            return []
        return [mapping for _, mapping in instance.get_block_device_mapping]

    def customer_key(self, region: str, key_id: str | None) -> str | None:
        """The ARN of a customer managed KMS key (None for none, or an AWS managed key, whose
        key policy already lets the account's principals use it through the service)."""
        if not key_id:
            return None
        from moto.kms.models import kms_backends

        backend = kms_backends[self.account][region]
        try:
            key = backend.describe_key(key_id)
        except Exception:
            return None
        return None if key.key_manager == "AWS" else str(key.arn)

    def topic_key(self, region: str, topic_arn: str) -> str | None:
        """The customer managed key a topic is encrypted with (None: none, or AWS managed)."""
        from moto.sns.models import sns_backends

        topic = sns_backends[self.account][region].topics.get(topic_arn)
        key = getattr(topic, "kms_master_key_id", None) if topic is not None else None
        return self.customer_key(region, key)

    def association_instance(self, region: str, association_id: str) -> str | None:
        """The instance an instance-profile association is of (moto keys them by instance)."""
        for instance_id, association in list(
            self.ec2(region).iam_instance_profile_associations.items()
        ):
            if association.association_id == association_id:
                return str(instance_id)
        return None

    def profile_roles(self, profile: str) -> list[str]:
        """The role ARNs of an instance profile named by ARN or name."""
        from moto.iam.models import iam_backends

        name = profile.rsplit("/", 1)[-1]
        backend = iam_backends[self.account]["global"]
        found = backend.instance_profiles.get(name) if hasattr(backend, "instance_profiles") else None
        if found is None:
            found = next((p for p in backend.instance_profiles.values() if p.name == name), None)
        return [str(role.arn) for role in getattr(found, "roles", [])] if found else []

    def auto_scaling_group(self, region: str, name: str) -> tuple[str, dict[str, str]] | None:
        """An Auto Scaling group's ARN and tags."""
        from moto.autoscaling.models import autoscaling_backends

        group = autoscaling_backends[self.account][region].autoscaling_groups.get(name)
        if group is None:
            return None
        return str(group.arn), {str(t["Key"]): str(t["Value"]) for t in group.tags}

    def elb_tags(self, region: str, arn: str) -> dict[str, str] | None:
        """The tags of a target group or load balancer (Elastic Load Balancing v2 or classic)."""
        from moto.elb.models import elb_backends
        from moto.elbv2.models import elbv2_backends

        if ":targetgroup/" in arn or ":loadbalancer/app/" in arn or ":loadbalancer/net/" in arn:
            tags = elbv2_backends[self.account][region].tagging_service.get_tag_dict_for_resource(arn)
            return {str(k): str(v) for k, v in tags.items()}
        balancer = elb_backends[self.account][region].load_balancers.get(arn.rsplit("/", 1)[-1])
        return dict(getattr(balancer, "tags", {}) or {}) if balancer is not None else None

    def secret_arn(self, region: str, secret_id: str) -> str | None:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[self.account][region]
        try:
            return str(backend.describe_secret(secret_id).arn)
        except Exception:
            return None


def _resource_type_for(action: catalog.Action, arn: str) -> catalog.ResourceType | None:
    return next((r for r in action.resource_types if r.pattern.match(arn)), None)


def _ec2(
    action: catalog.Action, operation: str, params: dict[str, Any], region: str, world: Account
) -> list[Authorization]:
    account = world.account
    targets: list[Target] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, resource_id: str, existing: bool = True) -> None:
        rtype = action.resource_type(kind)
        if rtype is None or (kind, resource_id) in seen:
            return
        seen.add((kind, resource_id))
        arn = fill(rtype.arn, region, account, resource_id)
        tags = world.ec2_tags(region, resource_id) if existing and resource_id != "*" else None
        targets.append(Target(kind, arn, tags))

    for _, value in _strings(params):
        match = EC2_ID.match(value)
        if match:
            add(EC2_ID_PREFIXES[match.group(1)], value)
        elif value.startswith("iip-assoc-"):
            # An instance-profile association is authorized on its instance.
            instance = world.association_instance(region, value)
            if instance:
                add("instance", instance)
    for target in list(targets):
        if target.type == "network-interface" and operation in INTERFACE_CHANGES:
            instance = world.eni_instance(region, target.arn.rsplit("/", 1)[-1])
            if instance:
                add("instance", instance)
        if target.type == "instance" and operation == "CreateSnapshots":
            for volume in world.instance_volumes(region, target.arn.rsplit("/", 1)[-1]):
                add("volume", volume.volume_id)
    created: dict[str, dict[str, str]] = {}
    for spec in params.get("TagSpecifications") or []:
        created[str(spec.get("ResourceType"))] = _tags(spec.get("Tags"))
    for rtype in action.resource_types:
        if rtype.required and not any(t.type == rtype.name for t in targets):
            add(rtype.name, "*", existing=False)
    authorizations = [Authorization(action.iam_name, targets or [Target("", "*")])]
    for target in targets:
        if target.tags is None and target.type in created:
            target.keys.update(tag_keys(created[target.type]))
    if operation in ("CreateTags", "DeleteTags"):
        tags = _tags(params.get("Tags"))
        keys = tag_keys(tags) if operation == "CreateTags" else {"aws:TagKeys": sorted(tags)}
        authorizations[0].keys.update(keys)
    elif created:
        # Tag-on-create: a create request with TagSpecifications is also authorized as
        # ec2:CreateTags on the new resource (EC2 user guide, "Grant permission to tag resources
        # during creation").
        tagging = catalog.action("ec2", "CreateTags")
        tag_targets = []
        for kind, tags in created.items():
            tag_type = tagging.resource_type(kind)
            if tag_type is not None:
                tag_targets.append(Target(kind, fill(tag_type.arn, region, account, "*"), None, tag_keys(tags)))
        if tag_targets:
            authorizations.append(
                Authorization("ec2:CreateTags", tag_targets, {"ec2:CreateAction": operation}, True)
            )
    if operation in ("AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation"):
        # Giving an instance a profile passes the profile's role to EC2 (EC2 user guide, "IAM
        # roles for Amazon EC2": the caller needs iam:PassRole).
        profile = (params.get("IamInstanceProfile") or {})
        for role in world.profile_roles(str(profile.get("Arn") or profile.get("Name") or "")):
            authorizations.append(Authorization(
                "iam:PassRole", [Target("role", role)],
                {"iam:PassedToService": "ec2.amazonaws.com"}, True))
    if operation in ("StartInstances", "CreateSnapshots", "CreateSnapshot"):
        key_arns: set[str] = set()
        for target in targets:
            if target.type == "instance":
                for volume in world.instance_volumes(region, target.arn.rsplit("/", 1)[-1]):
                    backend_volume = world.ec2(region).get_volume(volume.volume_id)
                    if backend_volume.encrypted:
                        found = world.customer_key(region, backend_volume.kms_key_id)
                        if found:
                            key_arns.add(found)
        for key_arn in sorted(key_arns):
            for name in EBS_ENCRYPTION_ACTIONS:
                authorizations.append(
                    Authorization(
                        name,
                        [Target("key", key_arn)],
                        {**_via("ec2", region, account), "kms:GrantIsForAWSResource": True},
                        True,
                    )
                )
    return authorizations


def _named(
    action: catalog.Action, service: str, operation: str, params: dict[str, Any], region: str,
    world: Account,
) -> list[Target]:
    """Resources a request of another service names: ARNs anywhere in it, and names that fill
    the reference's ARN formats."""
    account = world.account
    client_service = service
    service = action.prefix
    targets: list[Target] = []

    def add_arn(arn: str) -> None:
        rtype = _resource_type_for(action, arn)
        if rtype is not None and all(t.arn != arn for t in targets):
            targets.append(Target(rtype.name, arn))

    def add(kind: str, last: str, where: str | None = None) -> None:
        rtype = action.resource_type(kind)
        if rtype is not None:
            add_arn(fill(rtype.arn, where if where is not None else region, account, last))

    for _, value in _strings(params):
        if value.startswith("arn:"):
            add_arn(value)
    if service == "lambda" and "FunctionName" in params:
        name = str(params["FunctionName"])
        if not name.startswith("arn:"):
            add("function", name.split(":")[0])
    if service == "autoscaling" and params.get("AutoScalingGroupName"):
        group = world.auto_scaling_group(region, str(params["AutoScalingGroupName"]))
        if group is not None:
            rtype = _resource_type_for(action, group[0])
            if rtype is not None:
                targets.append(Target(rtype.name, group[0], group[1]))
    if client_service == "elb" and params.get("LoadBalancerName"):
        add("loadbalancer", str(params["LoadBalancerName"]))
    if service == "dynamodb" and "TableName" in params:
        add("table", str(params["TableName"]))
    if service == "ssm":
        for name in [params.get("Name"), *(params.get("Names") or [])]:
            if name and not str(name).startswith("arn:"):
                add("parameter", str(name).lstrip("/"))
    if service == "route53":
        if params.get("HostedZoneId"):
            add("hostedzone", str(params["HostedZoneId"]).rsplit("/", 1)[-1])
        if operation == "GetChange" and params.get("Id"):
            add("change", str(params["Id"]).rsplit("/", 1)[-1])
    if service == "s3" and params.get("Bucket") and params.get("Key"):
        add_arn(f"arn:aws:s3:::{params['Bucket']}/{params['Key']}")
    if service == "sqs" and params.get("QueueUrl"):
        add("queue", str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1])
    if service == "rds":
        if params.get("GlobalClusterIdentifier"):
            add("global-cluster", str(params["GlobalClusterIdentifier"]))
        cluster = str(params.get("TargetDbClusterIdentifier") or "")
        if cluster and not cluster.startswith("arn:"):
            add("cluster", cluster)
    if service == "servicequotas" and params.get("QuotaCode"):
        add("quota", f"{params.get('ServiceCode', '*')}/{params['QuotaCode']}")
    if service == "cloudwatch":
        for name in params.get("AlarmNames") or []:
            add("alarm", str(name))
    if service == "secretsmanager" and params.get("SecretId"):
        secret = str(params["SecretId"])
        if not secret.startswith("arn:"):
            found = world.secret_arn(region, secret)
            if found:
                add_arn(found)
    if service == "elasticloadbalancing":
        for target in targets:
            target.tags = world.elb_tags(region, target.arn)
    for rtype in action.resource_types:
        if rtype.required and not any(t.type == rtype.name for t in targets):
            raise catalog.CatalogError(
                f"cannot name the {rtype.name} resource of {action.iam_name} from the request"
            )
    return targets


def _service_keys(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Service-specific condition keys that the request itself sets."""
    if service == "route53" and operation == "ChangeResourceRecordSets":
        changes = (params.get("ChangeBatch") or {}).get("Changes") or []
        records = [c.get("ResourceRecordSet") or {} for c in changes]
        return {
            # Lowercase, without the final dot (Route 53 developer guide, "Using IAM policy
            # conditions for fine-grained access control").
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": sorted(
                {str(r.get("Name", "")).lower().rstrip(".") for r in records}
            ),
            "route53:ChangeResourceRecordSetsRecordTypes": sorted({str(r.get("Type", "")) for r in records}),
            "route53:ChangeResourceRecordSetsActions": sorted({str(c.get("Action", "")) for c in changes}),
        }
    if service == "cloudwatch" and operation == "PutMetricData":
        return {"cloudwatch:namespace": params.get("Namespace", "")}
    if service == "servicequotas" and params.get("ServiceCode"):
        return {"servicequotas:service": params["ServiceCode"]}
    return {}


SNS_ENCRYPTION_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
"""What a publisher needs on the customer managed key of an encrypted topic (Amazon SNS developer
guide, "Configuring AWS KMS permissions": publishers need GenerateDataKey* and Decrypt)."""


def _via(service: str, region: str, account: str) -> dict[str, Any]:
    return {"kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": account}


def authorizations(
    prefix: str, service: str, operation: str, params: dict[str, Any], region: str, world: Account
) -> list[Authorization]:
    """Everything IAM evaluates for one request, the operation's own action first."""
    action = catalog.action(prefix, operation)
    if prefix == "ec2":
        found = _ec2(action, operation, params, region, world)
    else:
        targets = _named(action, service, operation, params, region, world)
        found = [Authorization(action.iam_name, targets or [Target("", "*")])]
        if prefix == "sns" and operation == "Publish":
            for target in targets:
                key = world.topic_key(region, target.arn)
                if not key:
                    continue
                for name in SNS_ENCRYPTION_ACTIONS:
                    found.append(Authorization(name, [Target("key", key)],
                                               _via("sns", region, world.account), True))
    found[0].keys.update(_service_keys(prefix, operation, params))
    return found
