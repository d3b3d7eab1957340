"""The health-abuse world: web servers and a batch worker in two regions, one protected
production instance, one instance with two network interfaces."""

from __future__ import annotations

from typing import Any

from runbook_kit.aws import client

REGIONS = ["us-east-1", "eu-west-1"]
AMI = "ami-12c6146b"


def _tags(name: str, stage: str, **extra: str) -> list[dict[str, Any]]:
    tags = [{"Key": "Name", "Value": name}, {"Key": "Stage", "Value": stage}]
    tags += [{"Key": k, "Value": v} for k, v in extra.items()]
    return [{"ResourceType": "instance", "Tags": tags}]


def _network(ec2: Any, cidr: str, name: str) -> tuple[str, str]:
    vpc = ec2.create_vpc(
        CidrBlock=cidr,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}],
    )["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"))["Subnet"]
    return vpc, subnet["SubnetId"]


def _group(ec2: Any, vpc: str, name: str, port: int) -> str:
    group = ec2.create_security_group(GroupName=name, Description=f"{name} traffic", VpcId=vpc)
    ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    return str(group["GroupId"])


def _instance(ec2: Any, subnet: str, groups: list[str], tags: list[dict[str, Any]]) -> str:
    result = ec2.run_instances(
        ImageId=AMI,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        SecurityGroupIds=groups,
        TagSpecifications=tags,
    )
    return str(result["Instances"][0]["InstanceId"])


def _zone(ec2: Any, subnet: str) -> str:
    return str(ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailabilityZone"])


def build(context: Any = None) -> dict[str, Any]:
    east = client("ec2", "us-east-1")
    vpc, subnet = _network(east, "10.20.0.0/16", "shop")
    web = _group(east, vpc, "shop-web", 443)
    admin = _group(east, vpc, "shop-admin", 22)
    web_1 = _instance(east, subnet, [web], _tags("shop-web-1", "Dev"))
    web_2 = _instance(east, subnet, [web, admin], _tags("shop-web-2", "Dev"))
    eni = east.create_network_interface(SubnetId=subnet, Groups=[admin])["NetworkInterface"]
    east.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=web_2, DeviceIndex=1
    )
    payments = _instance(east, subnet, [web], _tags("payments-api", "Prod"))

    west = client("ec2", "eu-west-1")
    vpc_eu, subnet_eu = _network(west, "10.30.0.0/16", "batch")
    batch_group = _group(west, vpc_eu, "batch-workers", 8080)
    batch = _instance(west, subnet_eu, [batch_group], _tags("batch-eu-1", "Dev"))
    # Its data volume is encrypted with a customer managed key: snapshotting and starting it
    # need KMS permissions through EC2.
    key = client("kms", "eu-west-1").create_key(Description="batch data")["KeyMetadata"]["Arn"]
    data = west.create_volume(AvailabilityZone=f"{_zone(west, subnet_eu)}", Size=50,
                              VolumeType="gp3", Encrypted=True, KmsKeyId=key)["VolumeId"]
    west.attach_volume(VolumeId=data, InstanceId=batch, Device="/dev/sdf")
    return {
        "instances": {
            "shop-web-1": web_1,
            "shop-web-2": web_2,
            "payments-api": payments,
            "batch-eu-1": batch,
        },
    }
