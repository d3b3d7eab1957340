"""The region-failover world: the same service in the template's PrimaryRegion (us-east-2,
active) and StandbyRegion (us-east-1, where the stack runs), each a VPC with three web servers
behind a Network Load Balancer; a hosted zone with weighted records (100/0); a Global
Accelerator with one endpoint group per region (dials 100/0); an ARC cluster (five regional
endpoints) whose control panel has one routing control per region (On/Off) and a safety rule
that keeps at least one On; three hours of canary history with realistic noise, and the canary
alarms of ``template.yaml`` OK."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from runbook_kit.aws import client

from opsflow.engine import alarms

REGIONS = ["us-east-1", "us-east-2"]
ZONE = "shop.example.com"
RECORD = f"api.{ZONE}"
BASE_MS = {"us-east-1": 82.0, "us-east-2": 95.0}
NOISE_MS = {"us-east-1": 6.0, "us-east-2": 7.0}
HISTORY = timedelta(hours=3)
ARC_ENDPOINT_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2"]
"""The Regions of the ARC cluster's five endpoints (ARC places them; these are typical)."""


def _region(region: str, cidr: str) -> dict[str, Any]:
    ec2 = client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"),
                               AvailabilityZone=f"{region}a")["Subnet"]["SubnetId"]
    instances = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-12c6146b", InstanceType="t3.small", MinCount=3, MaxCount=3,
            SubnetId=subnet,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": "Name", "Value": f"web-{region}"}]}],
        )["Instances"]
    ]
    elbv2 = client("elbv2", region)
    nlb = elbv2.create_load_balancer(Name=f"web-{region}", Subnets=[subnet], Type="network",
                                     Scheme="internet-facing")["LoadBalancers"][0]
    group = elbv2.create_target_group(Name=f"web-{region}", Protocol="TCP", Port=443, VpcId=vpc,
                                      TargetType="instance")["TargetGroups"][0]
    elbv2.register_targets(TargetGroupArn=group["TargetGroupArn"],
                           Targets=[{"Id": i, "Port": 443} for i in instances])
    elbv2.create_listener(LoadBalancerArn=nlb["LoadBalancerArn"], Protocol="TCP", Port=443,
                          DefaultActions=[{"Type": "forward",
                                           "TargetGroupArn": group["TargetGroupArn"]}])
    return {"nlb": nlb, "targetGroup": group["TargetGroupArn"], "instances": instances}


def build(context: Any) -> dict[str, Any]:
    primary = context.parameters()["PrimaryRegion"]
    sites = {
        "us-east-1": _region("us-east-1", "10.40.0.0/16"),
        "us-east-2": _region("us-east-2", "10.50.0.0/16"),
    }
    route53 = client("route53", "us-east-1")
    zone = route53.create_hosted_zone(Name=ZONE, CallerReference="opsflow-world")["HostedZone"]
    zone_id = zone["Id"].split("/")[-1]
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": RECORD,
                        "Type": "CNAME",
                        "SetIdentifier": region,
                        "Weight": 100 if region == primary else 0,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": site["nlb"]["DNSName"]}],
                    },
                }
                for region, site in sites.items()
            ]
        },
    )
    ga = client("globalaccelerator", "us-west-2")
    accelerator = ga.create_accelerator(Name="shop", IpAddressType="IPV4", Enabled=True,
                                        IdempotencyToken="opsflow-world")["Accelerator"]
    listener = ga.create_listener(
        AcceleratorArn=accelerator["AcceleratorArn"],
        PortRanges=[{"FromPort": 443, "ToPort": 443}],
        Protocol="TCP",
        IdempotencyToken="opsflow-world-listener",
    )["Listener"]
    for region, site in sites.items():
        ga.create_endpoint_group(
            ListenerArn=listener["ListenerArn"],
            EndpointGroupRegion=region,
            EndpointConfigurations=[{"EndpointId": site["nlb"]["LoadBalancerArn"], "Weight": 128}],
            TrafficDialPercentage=100.0 if region == primary else 0.0,
            IdempotencyToken=f"opsflow-world-{region}",
        )
    arc = context.fakes["route53-recovery-cluster"]
    cluster = arc.add_cluster("shop", ARC_ENDPOINT_REGIONS)
    panel = arc.add_control_panel(cluster["ClusterArn"], "shop")
    controls = {region: arc.add_routing_control(panel, f"web-{region}",
                                                "On" if region == primary else "Off")
                for region in REGIONS}
    arc.add_assertion_rule(panel, "at-least-one-region-serves", list(controls.values()), 1)
    context.clock.advance(30)  # the accelerator is deployed before any incident starts
    now = context.clock.now()
    cloudwatch = client("cloudwatch", "us-east-1")
    for index, region in enumerate(REGIONS):
        series = alarms.synthetic_history(region, now - HISTORY, now, BASE_MS[region],
                                          NOISE_MS[region], seed=20191202 + index)
        data = [
            {"MetricName": "CanaryResponseTime", "Timestamp": stamp, "Value": value,
             "Unit": "Milliseconds", "Dimensions": [{"Name": "Region", "Value": region}]}
            for stamp, value in series
        ]
        for start in range(0, len(data), 500):
            cloudwatch.put_metric_data(Namespace="opsflow/Canary", MetricData=data[start:start + 500])
    return {
        "parameters": {
            "HostedZoneId": zone_id,
            "RecordName": RECORD,
            "AcceleratorListenerArn": listener["ListenerArn"],
            "TargetGroupArns": ",".join(f"{r}={s['targetGroup']}" for r, s in sites.items()),
            "RoutingControlPanelArn": panel,
            "RoutingControlArns": ",".join(f"{r}={arn}" for r, arn in controls.items()),
            "RoutingControlEndpoints": ",".join(
                f"{e['Region']}={e['Endpoint']}" for e in cluster["ClusterEndpoints"]
            ),
        },
        "sites": {r: {"targetGroup": s["targetGroup"], "instances": s["instances"],
                      "nlb": s["nlb"]["DNSName"]} for r, s in sites.items()},
        "zoneId": zone_id,
        "listenerArn": listener["ListenerArn"],
    }
