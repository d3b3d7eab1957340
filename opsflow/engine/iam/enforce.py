"""IAM enforced on every call a runbook makes, as the principal that makes it on AWS.

The boundary asks :meth:`Authorizer.authorize` before a call reaches the emulation. The request
is turned into everything AWS evaluates (:mod:`opsflow.engine.iam.resources`), each part is
evaluated against the principal's policies from the translated template
(:mod:`opsflow.engine.iam.policy`), and a denied call fails with the error that service returns.
Every evaluation is recorded, so ``opsflow iam`` can say which calls each principal made, which
were denied and which grants no call needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsflow.engine.iam import catalog, policy, resources
from opsflow.engine.iam.policy import Request
from opsflow.engine.stack import Principal

DENIED_CODES = {
    "ec2": ("UnauthorizedOperation", 403),
    "sns": ("AuthorizationError", 403),
    "cloudwatch": ("AccessDenied", 403),
    "route53": ("AccessDenied", 403),
    "elasticloadbalancing": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
}
"""The error a service returns for a call IAM refuses; every other service says
``AccessDeniedException`` (400 for the JSON protocols)."""
_TAG_KEYS = ("aws:resourcetag/", "aws:requesttag/", "aws:tagkeys")


@dataclass
class Call:
    principal: str
    operation: str
    action: str
    resource: str
    allowed: bool
    reason: str
    policy: str | None
    statement: str | None
    implicit: bool
    request: Request  # not policy.Request: the field above shadows the module here


@dataclass
class Denial:
    code: str
    status: int
    message: str
    call: Call


def _listed(key: str, listed: set[str]) -> bool:
    low = key.lower()
    if low.startswith("aws:") and not low.startswith(_TAG_KEYS):
        return True
    for item in listed:
        if item.endswith("/${tagkey}"):
            if low.startswith(item[: -len("${tagkey}")]):
                return True
        elif low == item:
            return True
    return False


@dataclass
class Authorizer:
    principals: dict[str, Principal]
    account: str
    clock: Any
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_denied: Any = None
    """Called with each denied :class:`Call` as it is recorded (a rehearsal that needs only the
    first denial stops its run there)."""

    def __post_init__(self) -> None:
        self.world = resources.Account(self.account)
        self._decisions: dict[
            str, tuple[Any, Any, policy.Parsed, dict[Any, policy.Decision]]] = {}

    def decide(self, found: Principal, request: Request) -> policy.Decision:
        """:func:`policy.evaluate` of the principal's policies, remembered per request: the
        policies are parsed once, and the same call on the same resource in the same context is
        decided once, while the principal's policies are the same objects (a rehearsal that
        takes a grant away replaces them)."""
        held = self._decisions.get(found.arn)
        if held is None or held[0] is not found.policies or held[1] is not found.boundary:
            held = self._decisions[found.arn] = (
                found.policies, found.boundary, policy.parsed(found.policies, found.boundary), {})
        try:
            key: Any = (request.action, request.resource, tuple(sorted(
                (k, type(v).__name__, tuple(v) if isinstance(v, list) else v)
                for k, v in request.context.items())))
            hash(key)
        except TypeError:
            return held[2].evaluate(request)
        decision = held[3].get(key)
        if decision is None:
            decision = held[3][key] = held[2].evaluate(request)
        return decision

    @staticmethod
    def prefix(client: Any) -> str:
        model = client.meta.service_model
        for name in (model.signing_name, model.service_name, model.endpoint_prefix):
            if name and catalog.has_service(name):
                return str(name)
        raise catalog.CatalogError(f"the IAM reference has no service for {model.service_name}")

    def _context(self, principal: str, region: str) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "aws:PrincipalArn": principal,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:RequestedRegion": region,
            "aws:SecureTransport": True,
            "aws:CurrentTime": now.isoformat() if isinstance(now, datetime) else str(now),
            "aws:EpochTime": int(now.timestamp()) if isinstance(now, datetime) else 0,
        }

    def authorize(
        self, principal: str, client: Any, operation: str, params: dict[str, Any], region: str
    ) -> Denial | None:
        """Evaluate one call; the first part AWS would refuse, or None when all is allowed."""
        found = self.principals.get(principal)
        if found is None:
            raise catalog.CatalogError(f"no role {principal} in the stack")
        prefix = self.prefix(client)
        service = client.meta.service_model.service_name
        parts = resources.authorizations(prefix, service, operation, params, region, self.world)
        base = self._context(principal, region)
        denial: Denial | None = None
        for part in parts:
            action = catalog.action(*part.action.split(":", 1))
            own = {k.lower() for k in action.condition_keys}
            for target in part.targets:
                rtype = action.resource_type(target.type) if target.type else None
                listed = own | {k.lower() for k in (rtype.condition_keys if rtype else ())}
                context = dict(base)
                context.update(part.keys)
                context.update(target.keys)
                for key, value in (target.tags or {}).items():
                    context[f"aws:ResourceTag/{key}"] = value
                    if prefix == "ec2":
                        context[f"ec2:ResourceTag/{key}"] = value
                context = {k: v for k, v in context.items() if _listed(k, listed)}
                request = policy.Request(part.action, target.arn, context)
                decision = self.decide(found, request)
                call = Call(
                    principal=principal,
                    operation=f"{service}:{operation}",
                    action=part.action,
                    resource=target.arn,
                    allowed=decision.allowed,
                    reason=decision.reason,
                    policy=decision.policy,
                    statement=decision.statement,
                    implicit=part.implicit,
                    request=request,
                )
                with self.lock:
                    self.calls.append(call)
                if not decision.allowed:
                    if self.on_denied is not None:
                        self.on_denied(call)
                    if denial is None:
                        denial = self._denial(prefix, call)
        return denial

    def _denial(self, prefix: str, call: Call) -> Denial:
        code, status = DENIED_CODES.get(prefix, ("AccessDeniedException", 400))
        session = call.principal.rsplit("/", 1)[-1]
        user = f"arn:aws:sts::{self.account}:assumed-role/{session}/{session}"
        why = (
            f"with an explicit deny in an identity-based policy ({call.policy})"
            if call.reason == "explicit-deny"
            else f"because no identity-based policy allows the {call.action} action"
        )
        message = f"User: {user} is not authorized to perform: {call.action} on resource: {call.resource} {why}"
        if prefix == "ec2":
            message = f"You are not authorized to perform this operation. {message}"
        return Denial(code, status, message, call)

    # ------------------------------------------------------------------ reporting
    def denied(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if not c.allowed]

    def unused_grants(self) -> dict[str, list[tuple[str, str, list[str]]]]:
        """Per principal: (policy, statement, actions) of every Allow statement that allowed none
        of the recorded calls."""
        with self.lock:
            calls = list(self.calls)
        result: dict[str, list[tuple[str, str, list[str]]]] = {}
        for arn, principal in self.principals.items():
            mine = [c.request for c in calls if c.principal == arn]
            unused = []
            for name, document in principal.policies:
                statements = document.get("Statement", [])
                if isinstance(statements, dict):
                    statements = [statements]
                for index, statement in enumerate(statements):
                    if statement.get("Effect") != "Allow":
                        continue
                    single = [(name, {"Version": "2012-10-17", "Statement": [statement]})]
                    if not any(policy.evaluate(single, r).allowed for r in mine):
                        actions = statement.get("Action") or statement.get("NotAction") or []
                        actions = [actions] if isinstance(actions, str) else list(actions)
                        unused.append((name, statement.get("Sid") or f"#{index}", actions))
            result[arn] = unused
        return result
