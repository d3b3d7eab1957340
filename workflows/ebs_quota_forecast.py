"""ebs-quota-forecast: daily EBS census → forecast → Service Quotas increase before it is hit.

Detect counts every configured region in parallel (bounded; a region that cannot be counted is
reported and the others still are), records the totals as CloudWatch metrics so history builds up
in the account, reads the history back, forecasts each quota and compares it with the quota's
value; when no region at all could be counted, it escalates (nothing known is not "nothing to do").
Act requests the increases (never twice: an open request is reused), every request call ending
before the run goes on. Verify reads each request's status. An increase request cannot be withdrawn, so a failure escalates with exactly
which requests exist.
"""

from __future__ import annotations

from typing import Any

from workflows import runbook, sdk

SCENARIO = "ebs-quota-forecast"
REGION_CONCURRENCY = 4

SETTINGS = {
    "dryRun": "${DryRun}",
    "regions": "${QuotaRegions}",
    "quotaCodes": "${QuotaCodes}",
    "horizonDays": "${ForecastHorizonDays}",
    "thresholdPercent": "${QuotaThresholdPercent}",
    "headroomPercent": "${QuotaHeadroomPercent}",
    "historyDays": "${ForecastHistoryDays}",
}


def phases() -> runbook.Phases:
    read = runbook.read_event("Detect: Read trigger", "ReadQuotaTriggerFunction", SETTINGS)
    count = runbook.lambda_task(
        "Detect: Count EBS usage", "CountRegionFunction", {"region.$": "$.region"},
        result_path="$.census",
    )
    predict = runbook.lambda_task(
        "Detect: Record and forecast",
        "ForecastRegionFunction",
        {"census.$": "$.census", "settings.$": "$.settings"},
        result_path="$.result",
        output_path="$.result",
    )
    skipped = sdk.Pass(
        "Detect: Region not counted",
        parameters={
            "region.$": "$.region",
            "counted": False,
            "error.$": "$.failure.Error",
            "cause.$": "$.failure.Cause",
        },
    )
    for task in (count, predict):
        task.add_catch(sdk.Catch(error_equals=["States.ALL"], next_step=skipped,
                                 result_path="$.failure"))
    count.next(predict)
    regions = sdk.Map(
        "Detect: Count every region",
        items_path="$.plan.settings.regions",
        item_selector={"region.$": "$$.Map.Item.Value", "settings.$": "$.plan.settings"},
        max_concurrency=REGION_CONCURRENCY,
        result_path="$.regions",
    )
    regions.attach_iterator(count)
    decide = runbook.lambda_task(
        "Detect: Decide increases",
        "DecideIncreasesFunction",
        {"plan.$": "$.plan", "regions.$": "$.regions"},
        result_path="$.plan",
    )
    read.next(regions)
    regions.next(decide)

    request = runbook.lambda_task(
        "Act: Request increase",
        "RequestIncreaseFunction",
        {"target.$": "$.target", "dryRun.$": "$.dryRun"},
        result_path="$",
    )
    requests = sdk.Map(
        "Act: Request increases",
        items_path="$.plan.targets",
        item_selector={"target.$": "$$.Map.Item.Value", "dryRun.$": "$.plan.dryRun"},
        max_concurrency=2,
        result_path="$.act",
    )
    requests.attach_iterator(request)
    # Every request call ends before the run goes on: a report never misses one still in flight.
    requested = runbook.settle_each_item(
        requests,
        keep="Act: Keep request failure",
        item={"region.$": "$.target.region", "quotaCode.$": "$.target.quotaCode"},
        collect="Act: Collect failures",
        question="Act: Every request made?",
        read="Act: Read first failure",
        failures_path="$.actFailures",
        error_path="$.error",
    )

    verify = runbook.verify_loop(
        wait=sdk.Wait("Verify: Wait for Service Quotas", seconds=60),
        check=runbook.lambda_task(
            "Verify: Check requests",
            "CheckRequestsFunction",
            {"plan.$": "$.plan", "act.$": "$.act", "attempt.$": "$.verify.attempt"},
            result_path="$.verify",
        ),
        question="Verify: Requests accepted?",
        not_confirmed="Requests not accepted",
    )

    report = runbook.lambda_task(
        "Rollback: Report the requests",
        "ReportRequestsFunction",
        {"plan.$": "$.plan", "error.$": "$.error"},
        result_path="$.rollback",
    )

    requested.first_failure.next(report)

    return runbook.Phases(
        scenario=SCENARIO,
        comment="opsflow ebs-quota-forecast: EBS census -> forecast -> Service Quotas increase "
        "before the quota is hit.",
        detect=read,
        detect_tail=decide,
        act=requests,
        act_tail=requested.done,
        verify=verify,
        rollback=report,
        rollback_tail=None,
        rollback_escalate_from=[report],
    )


def definition() -> dict[str, Any]:
    return runbook.build(phases())
