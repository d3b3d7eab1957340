"""Hypothesis strategies for the events a runbook may be handed: anything JSON can say.

Two families, both sized as Step Functions sizes an execution's input (compact UTF-8 JSON, at
most 256 KiB) and nested at most :data:`MAX_DEPTH` levels (what ``opsflow run`` accepts):

* **mutated samples**: a real event of ``events/<scenario>/`` with one to three of its values
  replaced, removed, added to, emptied, multiplied or buried (:func:`mutated`): a path of the
  sample is drawn, then what is done there;
* **made-up events**: JSON of any shape at the top (:func:`any_json`), events with the right
  identity and a wrong body (:func:`shaped`), and the tricky values both use: confusable types,
  long and non-ASCII strings, ARNs of other accounts and partitions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from opsflow.cli import event_depth
from opsflow.engine.limits import PAYLOAD_LIMIT, payload_size

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
HOME = "123456789012"
"""The emulated account every local run happens in."""
OTHER_ACCOUNTS = ("210987654321", "000000000000", "999999999999")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-eusc")
MAX_DEPTH = 100
"""The deepest nesting ``opsflow run`` reads from an event file (``opsflow.cli.MAX_EVENT_DEPTH``)."""
SIZE_LIMIT = PAYLOAD_LIMIT * 3 // 4
"""The largest event generated: 192 KiB, counted as the local engine counts a payload (compact
JSON with non-ASCII escaped, see ``limits.payload_size``). Step Functions allows 256 KiB, but
every runbook keeps the whole event at ``$.event`` beside its plan, so an event within a plan's
size of 256 KiB ends ``States.DataLimitExceeded``; and the engine counts a non-ASCII character
as its ``\\uXXXX`` escape. Both are findings with their own strict-xfail tests
(``test_findings.py``); this budget keeps them from masking everything else."""


def samples(scenario: str) -> dict[str, Any]:
    """Every sample event of a scenario, by file name (the function payloads excluded)."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((EVENTS / scenario).glob("*.json"))
    }


size_of = payload_size
"""Bytes of ``value`` as Step Functions (and the local engine) count a payload."""
depth_of = event_depth
"""How deeply arrays and objects nest, as the CLI measures an event file."""


def fits(value: Any) -> bool:
    """Within what an execution may be started with: 256 KiB, :data:`MAX_DEPTH` levels."""
    return size_of(value) <= SIZE_LIMIT and depth_of(value) <= MAX_DEPTH


# ----------------------------------------------------------------------------- scalars
def _instance_ids() -> list[str]:
    found: set[str] = set()
    for path in (EVENTS / "health-abuse").glob("*.json"):
        text = path.read_text(encoding="utf-8")
        found.update(part for part in text.replace('"', " ").replace("/", " ").split()
                     if part.startswith("i-") and len(part) in (10, 19))
    return sorted(found)


INSTANCE_IDS = _instance_ids()
"""Instance IDs the sample events name: real instances of the emulated world."""
REGIONS = ("us-east-1", "us-east-2", "eu-west-1", "ap-southeast-2", "cn-north-1",
           "us-gov-west-1", "global", "mars-north-1", "US-EAST-1", "us-east-1 ")

unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
"""Any Unicode text JSON can carry (lone surrogates excluded: they are not UTF-8)."""
long_text = st.builds(
    lambda unit, times: unit * times,
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6),
    st.integers(min_value=200, max_value=12_000),
)
tricky_text = st.sampled_from(
    [
        "", " ", "\n", "\t", "\u0000", "\u200b", "null", "true", "false", "0", "-1", "1e400",
        "NaN", "[]", "{}", '"', "\\", "$", "$.event", "$$.Execution.Id", "${DryRun}",
        "States.Format('{}', $)", "<script>alert(1)</script>", "%s%n", "Ünïcödé", "日本語",
        "🛑", "AWS_ABUSE_DOS_REPORT ", "aws_abuse_dos_report", "ABUSE", "SERVICEQUOTAS",
        "ALARM", "OK", "closed", "open", "RESOLVED", "IMPAIRED", "global", "1", "2", "0x10",
        *REGIONS, *INSTANCE_IDS,
    ]
)


@st.composite
def arns(draw: st.DrawFn) -> str:
    """An ARN of this or another account and partition, often naming a real instance."""
    partition = draw(st.sampled_from(PARTITIONS))
    service = draw(st.sampled_from(["ec2", "cloudwatch", "health", "events", "servicequotas"]))
    region = draw(st.sampled_from(REGIONS + ("",)))
    account = draw(st.sampled_from((HOME, *OTHER_ACCOUNTS, "", "12345", "1234567890123")))
    if service == "ec2":
        resource = "instance/" + draw(st.sampled_from(INSTANCE_IDS) | st.from_regex(
            r"\Ai-[0-9a-f]{17}\Z"))
    elif service == "cloudwatch":
        resource = "alarm:" + draw(st.sampled_from(
            ["opsflow-canary-us-east-1", "opsflow-canary-us-east-2", "checkout-latency-p99"]))
    else:
        resource = draw(st.sampled_from(["rule/x", "event/ABUSE/x", "y"]))
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


strings = st.one_of(unicode_text, tricky_text, long_text, arns())
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 0.5, 1e300, -0.0, 2**53 + 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)


def any_json(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """JSON of any shape: scalars, arrays and objects (keys of any text)."""
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=5)
        | st.dictionaries(st.one_of(unicode_text, tricky_text), children, max_size=5),
        max_leaves=max_leaves,
    )


def confused(value: Any) -> st.SearchStrategy[Any]:
    """A value of another JSON type than ``value`` (a string for a number, an object for a
    list, a number for a string, ...), often one that looks like it when printed."""
    text = value if isinstance(value, str) else json.dumps(value)
    options = [st.none(), st.booleans(), numbers, st.just(text), st.just([value]),
               st.just({"value": value}), st.just([]), st.just({})]
    if isinstance(value, str):
        options.append(st.just(value.upper()) | st.just(f" {value} "))
        if value.strip().lstrip("-").isdigit():
            options.append(st.just(int(value)))
    return st.one_of(options).filter(lambda v: type(v) is not type(value) or v != value)


# ----------------------------------------------------------------------------- mutations
Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path into ``value``, the root included, parents before children."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def get(value: Any, path: Path_) -> Any:
    for part in path:
        value = value[part]
    return value


def put(value: Any, path: Path_, new: Any) -> Any:
    if not path:
        return new
    get(value, path[:-1])[path[-1]] = new
    return value


def remove(value: Any, path: Path_) -> Any:
    parent = get(value, path[:-1])
    del parent[path[-1]]
    return value


def bury(value: Any, levels: int, in_list: bool) -> Any:
    for _ in range(levels):
        value = [value] if in_list else {"a": value}
    return value


@st.composite
def mutation(draw: st.DrawFn, event: Any) -> tuple[Any, str]:
    """``event`` (a deep copy) with one change at a drawn path, and what the change was."""
    event = copy.deepcopy(event)
    where = draw(st.sampled_from(paths(event)))
    here = get(event, where)
    name = "/".join(map(str, where)) or "(root)"
    kinds = ["replace", "confuse"]
    if where:
        kinds += ["delete"]
    if isinstance(here, dict):
        kinds += ["extra-key", "empty"]
    if isinstance(here, list):
        kinds += ["empty", "huge", "append"]
    if isinstance(here, str):
        kinds += ["long", "non-ascii", "arn", "pad"]
    kinds += ["bury"]
    kind = draw(st.sampled_from(kinds))
    if kind == "replace":
        event = put(event, where, draw(any_json(8)))
    elif kind == "confuse":
        event = put(event, where, draw(confused(here)))
    elif kind == "delete":
        event = remove(event, where)
    elif kind == "extra-key":
        here[draw(st.one_of(unicode_text, tricky_text, st.just("opsflow")))] = draw(any_json(6))
    elif kind == "empty":
        event = put(event, where, type(here)())
    elif kind == "append":
        here.append(draw(scalars | st.just(copy.deepcopy(here[0]) if here else None)))
    elif kind == "huge":
        unit = copy.deepcopy(here[0]) if here and draw(st.booleans()) else draw(scalars)
        room = max(SIZE_LIMIT - size_of(event), 0)
        most = max(1, room // max(size_of(unit) + 1, 1))
        times = draw(st.integers(min_value=min(50, most), max_value=max(min(50, most), most)))
        here.extend(copy.deepcopy(unit) for _ in range(times))
    elif kind == "long":
        event = put(event, where, here + draw(long_text))
    elif kind == "non-ascii":
        event = put(event, where, draw(st.text(st.characters(
            min_codepoint=0x80, exclude_categories=("Cs",)), min_size=1, max_size=30)))
    elif kind == "arn":
        event = put(event, where, draw(arns()))
    elif kind == "pad":
        event = put(event, where, draw(st.sampled_from([" ", "\t", "\n"])) + here)
    elif kind == "bury":
        room = MAX_DEPTH - len(where) - depth_of(here)
        levels = draw(st.integers(min_value=1, max_value=max(1, min(room, 98))))
        event = put(event, where, bury(here, levels, draw(st.booleans())))
    return event, f"{kind} at {name}"


@st.composite
def mutated(draw: st.DrawFn, scenario: str) -> tuple[Any, str]:
    """A sample event of ``scenario`` with one to three mutations; (event, description)."""
    chosen = samples(scenario)
    name = draw(st.sampled_from(sorted(chosen)))
    event: Any = chosen[name]
    done = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        event, what = draw(mutation(event))
        done.append(what)
    return event, f"{name}: " + "; ".join(done)


IDENTITIES = {
    "health-abuse": {"source": "aws.health", "detail-type": "AWS Health Abuse Event",
                     "detail": {"service": "ABUSE", "eventTypeCode": "AWS_ABUSE_DOS_REPORT",
                                "eventArn": "arn:aws:health:global::event/x"}},
    "region-failover": {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
                        "time": "2026-03-14T03:30:00Z",
                        "detail": {"alarmName": "opsflow-canary-us-east-1",
                                   "state": {"value": "ALARM"}, "previousState": {"value": "OK"}}},
    "ebs-quota-forecast": {"source": "aws.health", "detail-type": "AWS Health Event",
                           "time": "2026-03-14T02:18:36Z",
                           "detail": {"service": "SERVICEQUOTAS",
                                      "eventTypeCode": "AWS_SERVICEQUOTAS_THRESHOLD_BREACH"}},
}
"""For each runbook, the least an event needs to be taken for one of its triggers."""


@st.composite
def shaped(draw: st.DrawFn, scenario: str) -> tuple[Any, str]:
    """An event with the runbook's identity and a made-up body: entities and resources of any
    shape and number (ARNs of every account and partition), any ``opsflow`` overrides."""
    event = copy.deepcopy(IDENTITIES[scenario])
    event["account"] = draw(st.sampled_from((HOME, *OTHER_ACCOUNTS)) | strings | st.none())
    entity = st.one_of(
        st.builds(lambda v: {"entityValue": v}, st.one_of(arns(), st.sampled_from(INSTANCE_IDS),
                                                          strings, any_json(3))),
        st.builds(lambda v, s: {"entityValue": v, "status": s}, arns(),
                  st.sampled_from(["IMPAIRED", "RESOLVED", "UNKNOWN", "PENDING", "x"]) | scalars),
        arns(), scalars,
    )
    many = st.lists(entity, max_size=12) | st.builds(
        lambda unit, times: [copy.deepcopy(unit) for _ in range(times)],
        entity, st.integers(min_value=100, max_value=3000),
    )
    if draw(st.booleans()):
        event["detail"]["affectedEntities"] = draw(many | scalars)
    if draw(st.booleans()):
        event["resources"] = draw(many | scalars)
    if draw(st.booleans()):
        keys = st.sampled_from(["dryRun", "mode", "maxInstances", "regions", "ignoreDuplicate",
                                "rollbackMode", "horizonDays", "asOf", "quotaCodes", "x"])
        event["opsflow"] = draw(st.dictionaries(keys, scalars | any_json(3), max_size=3)
                                | scalars)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        event["detail"][draw(unicode_text | tricky_text)] = draw(any_json(4))
    while size_of(event) > SIZE_LIMIT:  # a huge list drawn past the limit: halve it
        for key in ("resources",):
            if isinstance(event.get(key), list):
                event[key] = event[key][: len(event[key]) // 2]
        entities = event["detail"].get("affectedEntities")
        if isinstance(entities, list):
            event["detail"]["affectedEntities"] = entities[: len(entities) // 2]
    return event, "shaped"


def top_level() -> st.SearchStrategy[tuple[Any, str]]:
    """Not an object at all: an array, a string, a number, true/false or null."""
    return st.tuples(
        st.one_of(st.none(), st.booleans(), numbers, strings, st.lists(any_json(5), max_size=4)),
        st.just("not an object"),
    )


@st.composite
def deep(draw: st.DrawFn, scenario: str) -> tuple[Any, str]:
    """A sample event, or the bare identity, buried or carrying a branch nested close to
    :data:`MAX_DEPTH` levels."""
    base = copy.deepcopy(draw(st.sampled_from(sorted(samples(scenario).values(), key=json.dumps))))
    levels = draw(st.integers(min_value=MAX_DEPTH - 10, max_value=MAX_DEPTH - 3))
    if draw(st.booleans()):
        base["detail"] = bury(base.get("detail"), levels, draw(st.booleans()))
        return base, f"detail nested {levels} levels"
    return bury(base, levels, draw(st.booleans())), f"event buried {levels} levels"


def events(scenario: str) -> st.SearchStrategy[tuple[Any, str]]:
    """Every family of event for ``scenario``; (event, what it is), within the input limits."""
    return st.one_of(
        mutated(scenario), mutated(scenario), mutated(scenario),
        shaped(scenario), top_level(), deep(scenario),
    ).filter(lambda pair: fits(pair[0]))
