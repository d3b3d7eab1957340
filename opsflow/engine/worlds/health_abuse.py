"""The health-abuse world: web servers and a batch worker in two regions, one protected
production instance, one instance with two network interfaces.

``shop-web-1`` is served as production web servers are: a member of the Auto Scaling group
``shop-web`` (launch template ``shop-web``), a target of the group's target group ``shop-web``
and of ``shop-api`` (registered by hand) behind the network load balancer ``shop``, an instance of the classic load balancer ``shop-legacy``,
with the instance profile ``shop-web``, its root volume deleted on termination and its
shutdown behaviour ``terminate``: the case a quarantine must hold against."""

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
    # Built last, so the instances above keep their IDs.
    service = _serve(east, vpc, subnet, web, web_1)
    return {
        **service,
        "instances": {
            "shop-web-1": web_1,
            "shop-web-2": web_2,
            "payments-api": payments,
            "batch-eu-1": batch,
        },
    }


TARGET_PORT = 443
API_PORT = 8443
DEREGISTRATION_DELAY = 30
"""Seconds the target group drains a deregistered target (AWS's default is 300)."""


def _serve(ec2: Any, vpc: str, subnet: str, group: str, instance_id: str) -> dict[str, Any]:
    """Put ``instance_id`` into service: profile, shutdown behaviour, Auto Scaling group, target
    group behind a network load balancer, classic load balancer."""
    region = "us-east-1"
    iam = client("iam", region)
    iam.create_role(RoleName="shop-web", AssumeRolePolicyDocument=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
        '{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'))
    profile = iam.create_instance_profile(InstanceProfileName="shop-web")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="shop-web", RoleName="shop-web")
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": profile["Arn"]},
                                       InstanceId=instance_id)
    ec2.modify_instance_attribute(InstanceId=instance_id,
                                  InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    second = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24",
                               AvailabilityZone=f"{region}b")["Subnet"]["SubnetId"]
    ec2.create_launch_template(LaunchTemplateName="shop-web", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro", "SecurityGroupIds": [group],
        "IamInstanceProfile": {"Arn": profile["Arn"]},
    })
    elbv2 = client("elbv2", region)
    balancer = elbv2.create_load_balancer(Name="shop", Type="network", Scheme="internet-facing",
                                          Subnets=[subnet, second])["LoadBalancers"][0]

    def served(name: str, port: int) -> str:
        """A TCP target group behind the balancer, on ``port``."""
        arn = str(elbv2.create_target_group(
            Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"])
        elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(DEREGISTRATION_DELAY)}])
        elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="TCP",
                              Port=port, DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])
        return arn

    target_group = served("shop-web", TARGET_PORT)
    # A second target group, not the group's: the instance was registered with it by hand.
    api_group = served("shop-api", API_PORT)
    elbv2.register_targets(TargetGroupArn=api_group, Targets=[{"Id": instance_id}])
    autoscaling = client("autoscaling", region)
    # Made empty, then given the instance: the group serves with it alone.
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="shop-web",
        LaunchTemplate={"LaunchTemplateName": "shop-web", "Version": "$Latest"},
        MinSize=0, MaxSize=3, DesiredCapacity=0, VPCZoneIdentifier=subnet,
        TargetGroupARNs=[target_group], HealthCheckType="ELB", HealthCheckGracePeriod=60,
    )
    autoscaling.attach_instances(AutoScalingGroupName="shop-web", InstanceIds=[instance_id])
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="shop-web", MinSize=1)
    classic = client("elb", region)
    classic.create_load_balancer(
        LoadBalancerName="shop-legacy", Subnets=[subnet],
        Listeners=[{"Protocol": "TCP", "LoadBalancerPort": TARGET_PORT,
                    "InstancePort": TARGET_PORT}],
    )
    classic.register_instances_with_load_balancer(
        LoadBalancerName="shop-legacy", Instances=[{"InstanceId": instance_id}])
    return {
        "autoScalingGroups": {"shop-web": "shop-web"},
        "targetGroups": {"shop-web": target_group, "shop-api": api_group},
        "loadBalancers": {"shop": balancer["LoadBalancerArn"], "shop-legacy": "shop-legacy"},
        "instanceProfiles": {"shop-web": profile["Arn"]},
    }
