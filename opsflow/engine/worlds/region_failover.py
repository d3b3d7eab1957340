"""The region-failover world: the same service in the template's PrimaryRegion (us-east-2,
active) and StandbyRegion (us-east-1, where the stack runs), each a VPC with three web servers
and an Auto Scaling group (3 instances in the primary, none in the standby) behind a Network
Load Balancer; a hosted zone with weighted records (100/0); a Global Accelerator with one
endpoint group per region (dials 100/0); an ARC cluster (five regional endpoints) whose control
panel has one routing control per region (On/Off) and a safety rule that keeps at least one On;
failover records gated by a health check on an object in an S3 bucket of the standby ("standby
takes over primary"); an Aurora global database with its writer in the primary; three hours of canary history with realistic noise, and the canary alarms
of ``template.yaml`` OK."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from runbook_kit.aws import client

from opsflow.engine import alarms

REGIONS = ["us-east-1", "us-east-2"]
ZONE = "shop.example.com"
RECORD = f"api.{ZONE}"
BASE_MS = {"us-east-1": 82.0, "us-east-2": 95.0}
NOISE_MS = {"us-east-1": 6.0, "us-east-2": 7.0}
HISTORY = timedelta(hours=3)
GROUP = "web"
"""The Auto Scaling group of the service, by one name in both regions: the primary's runs
``GROUP_SIZE`` instances, the standby's none (the three fixed web servers keep it warm); both
may grow to ``GROUP_MAX`` (``--param AutoScalingGroupName=web`` turns the capacity step on)."""
GROUP_SIZE = 3
GROUP_MAX = 6
FAILOVER_BUCKET = "shop-failover-123456789012"
FAILOVER_KEY = "opsflow/region-failover/serving"
DATABASE = "shop"
"""The Aurora global database of the service: one member cluster per region, the writer in
the primary (``--param GlobalClusterIdentifier=shop`` turns the data tier step on)."""
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
    return {"nlb": nlb, "targetGroup": group["TargetGroupArn"], "instances": instances,
            "subnet": subnet}


def _group(region: str, subnet: str, target_group: str, size: int) -> None:
    """The service's Auto Scaling group in ``region``, in ``target_group``."""
    template = client("ec2", region).create_launch_template(
        LaunchTemplateName=f"web-{region}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    client("autoscaling", region).create_auto_scaling_group(
        AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateId": template},
        MinSize=size, MaxSize=GROUP_MAX, DesiredCapacity=size, VPCZoneIdentifier=subnet,
        TargetGroupARNs=[target_group],
    )


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
    standby = next(r for r in REGIONS if r != primary)
    s3 = client("s3", standby)
    s3.create_bucket(Bucket=FAILOVER_BUCKET)
    s3.put_object(Bucket=FAILOVER_BUCKET, Key=FAILOVER_KEY, Body=b"opsflow: primary serves")
    health_check = route53.create_health_check(
        CallerReference="opsflow-world-standby-takes-over",
        HealthCheckConfig={
            "Type": "HTTPS_STR_MATCH", "FullyQualifiedDomainName":
            f"{FAILOVER_BUCKET}.s3.{standby}.amazonaws.com", "ResourcePath": f"/{FAILOVER_KEY}",
            "SearchString": "opsflow: primary serves", "RequestInterval": 30,
            "FailureThreshold": 3,
        },
    )["HealthCheck"]["Id"]
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": f"failover.{RECORD}", "Type": "CNAME", "TTL": 60,
            "SetIdentifier": role, "Failover": role.upper(),
            "ResourceRecords": [{"Value": sites[region]["nlb"]["DNSName"]}],
            **({"HealthCheckId": health_check} if region == primary else {})}}
        for role, region in (("primary", primary), ("secondary", standby))
    ]})
    arc = context.fakes["route53-recovery-cluster"]
    cluster = arc.add_cluster("shop", ARC_ENDPOINT_REGIONS)
    panel = arc.add_control_panel(cluster["ClusterArn"], "shop")
    controls = {region: arc.add_routing_control(panel, f"web-{region}",
                                                "On" if region == primary else "Off")
                for region in REGIONS}
    arc.add_assertion_rule(panel, "at-least-one-region-serves", list(controls.values()), 1)
    context.fakes["rds"].add_global_cluster(
        DATABASE, {region: f"{DATABASE}-{region}" for region in REGIONS}, writer=primary)
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
    for region, site in sites.items():  # last: the IDs drawn before stay those of the samples
        _group(region, site["subnet"], site["targetGroup"], GROUP_SIZE if region == primary else 0)
    return {
        "parameters": {
            "HostedZoneId": zone_id,
            "RecordName": RECORD,
            "AcceleratorListenerArn": listener["ListenerArn"],
            "TargetGroupArns": ",".join(f"{r}={s['targetGroup']}" for r, s in sites.items()),
            "FailoverBucket": FAILOVER_BUCKET,
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


# ---------------------------------------------------------------- game days on the virtual clock
CANARY_TIMEOUT_MS = 5000.0
"""What the canary publishes for a region it cannot reach: its timeout (``TIMEOUT_SECONDS`` 5,
the default of ``functions/region_failover/canary.py``), far above any band."""


def _canary_history(cloudwatch: Any, spec: Any, now: datetime) -> list[tuple[datetime, float]]:
    found = cloudwatch.get_metric_statistics(
        Namespace=spec.namespace,
        MetricName=spec.metric_name,
        Dimensions=[{"Name": k, "Value": v} for k, v in spec.dimensions.items()],
        StartTime=now - timedelta(hours=4),
        EndTime=now,
        Period=spec.period,
        Statistics=["Average"],
    )["Datapoints"]
    return sorted((p["Timestamp"], float(p["Average"])) for p in found)


def _play(engine: Any, region: str, series: list[tuple[datetime, float]], end: datetime,
          log: list[str]) -> Any:
    """Publish the canary's ``series`` for ``region`` one minute at a time, evaluating the
    region's anomaly alarm every period (:mod:`opsflow.engine.alarms`); when it enters ALARM,
    set its state in the account and return its event (in the stack's region, which the
    alarm lives in)."""
    from opsflow.engine.runner import Chaos

    cloudwatch = engine.client("cloudwatch")
    name = next(n for n in engine.alarm_names if n.endswith(region))
    described = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    spec = alarms.AlarmSpec.from_describe_alarms(described)
    state, reason = described["StateValue"], described.get("StateReason", "")
    start = engine.clock.now()
    log.append(f"  alarm {name} is {state}")
    history = _canary_history(cloudwatch, spec, start)
    for at, value in series:
        engine.clock.advance(60)
        cloudwatch.put_metric_data(
            Namespace=spec.namespace,
            MetricData=[{"MetricName": spec.metric_name, "Timestamp": at, "Value": value,
                         "Unit": "Milliseconds",
                         "Dimensions": [{"Name": k, "Value": v}
                                        for k, v in spec.dimensions.items()]}],
        )
        history.append((at, value))
        now = engine.clock.now()
        evaluation = alarms.evaluate(spec, history, now, state)
        minute = (now - start).total_seconds() / 60
        band = f"band up to {evaluation.upper:.0f} ms" if evaluation.upper else "no band"
        log.append(f"  +{minute:4.0f} min  canary {value:7.1f} ms  {band}  -> {evaluation.state}")
        if evaluation.changed and evaluation.state == "ALARM":
            event = alarms.state_change_event(spec, evaluation, state, reason, now)
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM",
                                       StateReason=evaluation.reason,
                                       StateReasonData=evaluation.reason_data_json)
            log.append(f"alarm {name}: {state} -> ALARM after {minute:.0f} min; "
                       "its event goes to EventBridge")
            return Chaos(log=log, event=event, evaluation=evaluation)
        if evaluation.changed:
            state = evaluation.state
        if at >= end:
            break
    return Chaos(log=log, event=None, evaluation=None)


def chaos_latency(engine: Any, region: str, delay_ms: int, minutes: int,
                  jitter_ms: int = 20) -> Any:
    """Play the tc netem latency document on the virtual clock: the canary in ``region``
    reports ``delay_ms`` more for ``minutes``; the anomaly alarm is evaluated every period;
    when it enters ALARM, its state changes in the account and its event is returned."""
    start = engine.clock.now()
    end = start + timedelta(minutes=minutes)
    fresh = alarms.synthetic_history(region, start, end + timedelta(minutes=1), BASE_MS[region],
                                     NOISE_MS[region], seed=start.isoformat())
    degraded = alarms.with_latency(fresh, start, end, delay_ms, jitter_ms, seed=region)
    log = [f"chaos: +{delay_ms} ms ±{jitter_ms} ms on {region} for {minutes} min "
           "(tc netem, as documents/tc-latency.sh adds it)"]
    return _play(engine, region, degraded, end, log)


def region_outage(engine: Any, region: str, minutes: int, route53_down: bool = False,
                  server_error: int | None = None) -> Any:
    """Take ``region`` down: from now on every API call to it fails with a connection error
    (with ``server_error``, e.g. 503: every endpoint answers that status instead), below the
    SDK's retries, for the runbook's calls (the engine's own reads still see the account);
    with ``route53_down``, Route 53's API too (its control plane, in us-east-1). The canary, running in the stack's region, cannot reach the region's endpoint
    and publishes its timeout each minute; the region's anomaly alarm is evaluated from there
    until it enters ALARM (at most ``minutes``)."""
    engine.boundary.unreachable.add(region)
    if server_error is not None:
        engine.boundary.server_errors[region] = server_error
    if route53_down:
        engine.boundary.unreachable_services.add("route53")
    start = engine.clock.now()
    end = start + timedelta(minutes=minutes)
    series = [(at, CANARY_TIMEOUT_MS) for at, _ in alarms.synthetic_history(
        region, start, end + timedelta(minutes=1), BASE_MS[region], NOISE_MS[region],
        seed=start.isoformat())]
    answer = (f"answers HTTP {server_error}" if server_error is not None
              else "refuses connections")
    log = [f"chaos: region {region} is down: every API endpoint there {answer}"
           + ("; Route 53's API (control plane) does not answer either" if route53_down else "")
           + f"; the canary in the stack's region {engine.stack.region} times out on it"]
    return _play(engine, region, series, end, log)
