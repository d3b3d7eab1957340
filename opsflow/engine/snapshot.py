"""Emulated accounts built once per process and restored for every later engine.

Building a world and deploying the stack into it costs a tenth to a quarter of a second per
engine; a test suite starts hundreds of engines on the same few worlds. The first engine of a
process for a :func:`key` builds as before, then :func:`take` keeps everything the build made,
pickled; every later engine with that key :func:`restore`\\ s it instead of building, and is
indistinguishable from a freshly built one: the same IDs, ARNs, account, virtual time and
random draws to come (``tests/unit/test_snapshot.py``).

What a build changes, and so what a snapshot holds:

- every moto backend (the ``BackendDict`` objects moto lists in ``BackendDict._instances``,
  ``moto.core.base_backend``): each account and region backend, as one graph, so references
  between backends (Auto Scaling's EC2 and ELBv2 backends) stay references;
- the state of moto's seeded random source (``moto.moto_api._internal.mock_random``): the IDs
  of resources created after the restore are those a fresh build would draw;
- the virtual clock's start and elapsed time (a world may advance it);
- the engine attributes the build sets: the world of each scenario, the fakes, the resolved
  stack, the deployed state machines, rules, functions and Function URLs (every attribute the
  build assigned, found by comparing the engine's attributes before and after).

What a snapshot does not hold, because each engine makes its own: the boundary and its hooks,
the time-dependent dynamics (a build leaves them empty; :func:`take` checks), the IAM
authorizer with its record of calls, the dead-letter delivery, the in-process Lambda
handlers and the environment exported for them (``LocalEngine._register``).

The pickle keeps some objects by reference rather than by value: the backend dictionaries
themselves (their contents are restored into them), the process-wide virtual clock, the
cached template (read only), functions (code, not state: :func:`_check_closure` refuses a
closure over mutable state) and the immutable key objects of ``cryptography``. Locks are
re-created, one new lock for each lock of the build.

A new process would build again: the snapshot of a whole build is also kept on disk
(:func:`store`, :func:`stored`), with a way for a new process to find each object kept by
reference (:func:`dump`): moto's backend dictionaries and functions by the names that bind
them, a closure-free lambda by its code over its module's globals, a private key by its DER
bytes, a lock new, the template's containers by their place in it. The entry's name hashes
everything the build depends on besides its :func:`key` (:func:`code_digest`), so another
version of the code, its packages or moto's environment never reads it.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import hashlib
import io
import json
import os
import pickle
import sys
import threading
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsflow import template as cfn
from opsflow.engine.clock import VirtualClock

LIMIT = 32
"""Snapshots kept per process (least recently used dropped first)."""

_LOCK_TYPES: dict[type, Any] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
}
_saved: OrderedDict[tuple[Any, ...], Snapshot] = OrderedDict()
_saved_lock = threading.Lock()


class SnapshotError(RuntimeError):
    """The build left state a snapshot cannot restore faithfully."""


@dataclass
class Snapshot:
    blob: bytes
    shared: list[Any]
    """Objects the pickle refers to by index (kept by reference, never copied)."""


def key(scenarios: list[str], parameters: dict[str, str], template: dict[str, Any]) -> tuple[Any, ...]:
    """What decides what a build creates: the scenarios in build order (each world may read
    the parameters the ones before it set), the parameter overrides, the template whose
    parameters the engine checks them against, and the text of the definitions the deploy
    reads. Faults, approval answers, ``stop_seconds`` and IAM enforcement act at the boundary,
    after the build."""
    digest = hashlib.sha256(_template_digest(template).encode())
    for path in sorted((cfn.ROOT / "statemachines").glob("*.asl.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return (tuple(scenarios), tuple(sorted(parameters.items())), digest.hexdigest())


def _template_digest(template: dict[str, Any]) -> str:
    if template is cfn.cached():
        return _cached_template_digest()
    return _content_digest(template)


@functools.cache
def _cached_template_digest() -> str:
    """The cached template's digest, computed once: it is never written."""
    return _content_digest(cfn.cached())


def _content_digest(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).hexdigest()


def outermost() -> bool:
    """Whether the engine's own ``mock_aws`` is the only one started (``MockAWS._nested_count``,
    ``moto.core.models``): inside another mock the account holds that mock's state too, which
    a snapshot must neither take nor overwrite."""
    from moto.core.models import MockAWS

    return bool(MockAWS._nested_count == 1)


def saved(build: tuple[Any, ...]) -> Snapshot | None:
    with _saved_lock:
        found = _saved.get(build)
        if found is not None:
            _saved.move_to_end(build)
        return found


def forget() -> None:
    """Drop every snapshot: the next engine of each key builds again (and the process reads
    no snapshot from disk from then on: :func:`stored`)."""
    global _disk_read
    with _saved_lock:
        _saved.clear()
        _disk_read = False


# ---------------------------------------------------------------- moto's state


def _instances() -> list[Any]:
    """moto's own list of the backend dictionaries in use, itself (not a copy)."""
    from moto.core.base_backend import BackendDict

    instances: list[Any] = BackendDict._instances  # type: ignore[misc]  # moto's class-level list
    return instances


def backends_in_use() -> list[Any]:
    """The backend dictionaries moto has state in (``BackendDict._instances``)."""
    return list(_instances())


def clear_leftovers() -> None:
    """Empty the backend dictionaries moto holds state in but no longer lists. moto's reset
    re-initialises every region backend, and some initialisers reach another service's
    backend (Auto Scaling's reaches EC2's), making it again after it was cleared, with a
    default VPC drawn then; the next start does not reset what is not listed. Called with no
    mock but the engine's running, so that no build depends on what ran before it in the
    process. Finds them as moto binds them, at module level in ``moto.*`` modules."""
    from moto.core.base_backend import BackendDict

    listed = {id(backend) for backend in _instances()}
    for name, module in list(sys.modules.items()):
        if not name.startswith("moto.") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, BackendDict) and id(value) not in listed and len(value):
                value.clear()


def _moto_random() -> Any:
    from moto.moto_api._internal import mock_random

    return mock_random


def _parameter_dict(account_id: str, region_name: str) -> Any:
    from moto.ssm.models import ParameterDict

    return ParameterDict(account_id, region_name)


def _reduce_parameter_dict(value: Any) -> tuple[Any, ...]:
    """SSM's ``ParameterDict`` is a ``defaultdict`` whose constructor takes the account and
    region; ``defaultdict``'s own reduction calls it with the default factory and drops the
    instance's attributes (which defaults were loaded)."""
    return (_parameter_dict, (value.account_id, value.region_name), dict(vars(value)), None,
            iter(list(value.items())))


def _reductions() -> dict[type, Any]:
    from moto.ssm.models import ParameterDict

    return {**copyreg.dispatch_table, ParameterDict: _reduce_parameter_dict}


def _key_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """The private and the public key types ``cryptography`` makes for KMS keys."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    return ((rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey),
            (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey))


def _immutable_types() -> tuple[type, ...]:
    """Types kept by reference because they are immutable and cannot be pickled: the keys
    ``cryptography`` makes for KMS keys (its keys copy to themselves)."""
    private, public = _key_types()
    return private + public


_IMMUTABLE_CELLS = (str, bytes, int, float, bool, type(None), type, types.FunctionType,
                    types.BuiltinFunctionType, frozenset, tuple)


def _check_closure(function: types.FunctionType) -> None:
    """A function is code, kept by reference, unless it closes over state of its own (a cell
    holding anything mutable), which a restore could not separate from the build's."""
    for cell in function.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if not isinstance(content, _IMMUTABLE_CELLS):
            raise SnapshotError(
                f"{function.__qualname__} closes over a {type(content).__name__}: "
                "its state cannot be separated from the build's"
            )


_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})
"""Types pickled by value without a second look (most of what a build makes)."""


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, shared: list[Any], refused: dict[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared = shared
        self.kinds = ["shared"] * len(shared)
        self.index = {id(item): number for number, item in enumerate(shared)}
        self.refused = refused
        self.immutable = _immutable_types()
        self.verdicts: dict[type, str | None] = {}
        self.dispatch_table = _reductions()  # type: ignore[assignment]

    def _verdict(self, kind: type) -> str | None:
        """How objects of ``kind`` are kept: a new ``lock``, ``shared`` by reference, or by
        value (None); a function's closure is checked for each function."""
        if kind in _LOCK_TYPES:
            return "lock"
        if kind is types.FunctionType:
            return "function"
        if issubclass(kind, self.immutable):
            return "shared"
        return None

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _PLAIN:
            return None
        number = self.index.get(id(obj))
        if number is not None:
            return (self.kinds[number], number)
        if id(obj) in self.refused:
            raise SnapshotError(f"the build's state refers to {self.refused[id(obj)]}")
        verdict = self.verdicts.get(kind, "unknown")
        if verdict == "unknown":
            verdict = self.verdicts[kind] = self._verdict(kind)
        if verdict is None:
            return None
        if verdict == "function":
            _check_closure(obj)
            verdict = "shared"
        number = self.index[id(obj)] = len(self.shared)
        self.shared.append(obj)
        self.kinds.append(verdict)
        return (verdict, number)


class _Unpickler(pickle.Unpickler):
    def __init__(self, blob: bytes, shared: list[Any]) -> None:
        super().__init__(io.BytesIO(blob))
        self.shared = shared
        self.locks: dict[int, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        kind, number = pid
        if kind == "lock":
            lock = self.locks.get(number)
            if lock is None:
                lock = self.locks[number] = _LOCK_TYPES[type(self.shared[number])]()
            return lock
        return self.shared[number]


def _read_only(*roots: Any) -> list[Any]:
    """Every dict and list of ``roots`` (the cached template: read, never written)."""
    found: list[Any] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            found.append(node)
            stack.extend(node)
    return found


# ---------------------------------------------------------------- take and restore


def take(clock: VirtualClock, attributes: dict[str, Any], refused: dict[int, str],
         busy: list[int]) -> Snapshot:
    """The emulated state a build made, with the engine ``attributes`` it set. ``refused``:
    objects (by id) the state may not refer to, named for the error (the engine, its boundary:
    they are the next engine's own); ``busy``: how much each of the engine's time-dependent
    dynamics is timing, which a snapshot does not hold (all 0)."""
    if any(busy):
        raise SnapshotError(f"the build left changes in progress on the virtual clock: {busy}")
    backends = backends_in_use()
    shared: list[Any] = [clock, *backends, *_read_only(cfn.cached(), cfn.translated())]
    state = {
        "backends": [(index + 1, dict(backend)) for index, backend in enumerate(backends)],
        "random": _moto_random().getstate(),
        "clock": clock.state(),
        "attributes": attributes,
    }
    out = io.BytesIO()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # moto's models nest deeply
    try:
        _Pickler(out, shared, refused).dump(state)
    finally:
        sys.setrecursionlimit(limit)
    return Snapshot(out.getvalue(), shared)


def keep(build: tuple[Any, ...], snapshot: Snapshot) -> None:
    """Keep ``snapshot`` for the later engines of ``build`` (:func:`saved`)."""
    with _saved_lock:
        _saved[build] = snapshot
        while len(_saved) > LIMIT:
            _saved.popitem(last=False)


def restore(snapshot: Snapshot, clock: VirtualClock) -> dict[str, Any]:
    """Put the snapshot's emulated state back (moto's backends, its random source, the
    virtual clock) as a new copy, and return a new copy of the engine attributes it holds.
    moto must be started (its backends empty)."""
    from moto.core.base_backend import backend_lock

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        state = _Unpickler(snapshot.blob, snapshot.shared).load()
    finally:
        sys.setrecursionlimit(limit)
    with backend_lock:
        for index, accounts in state["backends"]:
            backend = snapshot.shared[index]
            backend.clear()
            backend.update(accounts)
            if backend not in _instances():
                _instances().append(backend)
    _moto_random().setstate(state["random"])
    clock.set_state(state["clock"])
    attributes: dict[str, Any] = state["attributes"]
    return attributes


# ---------------------------------------------------------------- on disk

DISK_FORMAT = "1"
"""Changed whenever what :func:`dump` writes changes."""
DISK_LIMIT = 16
"""Snapshots kept on disk (the least recently used dropped first)."""
_DISTRIBUTIONS = ("moto", "boto3", "botocore", "cryptography", "aws-sam-translator")
"""The packages whose objects and behaviour a build's state holds."""
_SOURCES = ("opsflow", "functions", "workflows", "statemachines")
_disk_read = True
disk_note: str | None = None
"""What the process last did with a snapshot on disk (read, written, deleted and why): the
reason an engine built when one was expected to restore."""


@functools.cache
def code_digest() -> str:
    """Everything a build runs or reads besides its :func:`key`: the interpreter, the versions
    of the packages whose objects its state holds, the project's pins, and the content of every
    source file of the project (not their times: a checkout rewrites those)."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"{sys.version}\0{DISK_FORMAT}\0".encode())
    for name in _DISTRIBUTIONS:
        digest.update(f"{name}={version(name)}\0".encode())
    files = [cfn.ROOT / "template.yaml", cfn.ROOT / "pyproject.toml"]
    for root in _SOURCES:
        files.extend(sorted(
            path for path in (cfn.ROOT / root).rglob("*")
            if path.suffix in (".py", ".json", ".yaml") and "__pycache__" not in path.parts
        ))
    for path in files:
        try:
            content = path.read_bytes()
        except OSError:  # gone since it was listed: this digest is simply never matched
            content = b"\0missing"
        digest.update(f"{path.relative_to(cfn.ROOT)}\0".encode() + content + b"\0")
    return digest.hexdigest()


def _environment() -> str:
    """The environment moto reads when it makes state (``MOTO_*``)."""
    return "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MOTO_"))


def disk_path(build: tuple[Any, ...]) -> Path:
    """Where the snapshot of ``build`` made by this code, in this environment, is kept."""
    from opsflow.engine import cache

    return cache.DIR / "snapshots" / f"{cache.key(code_digest(), _environment(), repr(build))}.pickle"


def _backend_names() -> dict[int, tuple[str, str]]:
    """Each backend dictionary moto binds at module level (by id) and a name a new process
    imports it by (``moto.ec2.models``, ``ec2_backends``)."""
    from moto.core.base_backend import BackendDict

    names: dict[int, tuple[str, str]] = {}
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("moto.") or module is None:
            continue
        for name, value in vars(module).items():
            if isinstance(value, BackendDict):
                names.setdefault(id(value), (module_name, name))
    return names


def _named(module: str, qualname: str) -> Any:
    import importlib

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _function_recipe(function: types.FunctionType) -> tuple[Any, ...]:
    """A function by its name when the name finds it, else by its code (a closure-free lambda
    of moto's, a ``defaultdict``'s factory), rebuilt over its module's globals."""
    import marshal

    module, qualname = function.__module__, function.__qualname__
    try:
        if "<locals>" not in qualname and _named(module, qualname) is function:
            return ("function", module, qualname)
    except (ImportError, AttributeError):
        pass
    cells = tuple(cell.cell_contents for cell in function.__closure__ or ())
    return ("code", module, marshal.dumps(function.__code__), function.__name__, qualname,
            function.__defaults__, function.__kwdefaults__, cells)


def _recipes(snapshot: Snapshot, clock: VirtualClock,
             nodes: list[Any]) -> list[tuple[Any, ...]] | None:
    """How a new process finds each object ``snapshot`` keeps by reference (``nodes``: the
    template's containers), or None when one has no such way (the snapshot then stays in this
    process only)."""
    from cryptography.hazmat.primitives import serialization as ser

    backends = _backend_names()
    read_only = {id(node): index for index, node in enumerate(nodes)}
    private, public = _key_types()
    recipes: list[tuple[Any, ...]] = []
    for obj in snapshot.shared:
        kind = type(obj)
        if obj is clock:
            recipes.append(("clock",))
        elif id(obj) in backends:
            recipes.append(("backend", *backends[id(obj)]))
        elif id(obj) in read_only:
            recipes.append(("template", read_only[id(obj)]))
        elif kind in _LOCK_TYPES:
            recipes.append(("lock", "RLock" if kind is _RLOCK else "Lock"))
        elif kind is types.FunctionType:
            recipes.append(_function_recipe(obj))
        elif isinstance(obj, private):
            recipes.append(("private key", obj.private_bytes(  # type: ignore[attr-defined]
                ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())))
        elif isinstance(obj, public):
            recipes.append(("public key", obj.public_bytes(  # type: ignore[attr-defined]
                ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)))
        else:
            return None
    return recipes


_RLOCK = type(threading.RLock())


def _resolve(recipe: tuple[Any, ...], clock: VirtualClock, read_only: list[Any]) -> Any:
    import importlib
    import marshal

    from cryptography.hazmat.primitives import serialization as ser

    kind = recipe[0]
    if kind == "clock":
        return clock
    if kind == "backend":
        return _named(recipe[1], recipe[2])
    if kind == "template":
        return read_only[recipe[1]]
    if kind == "lock":
        return threading.RLock() if recipe[1] == "RLock" else threading.Lock()
    if kind == "function":
        return _named(recipe[1], recipe[2])
    if kind == "code":
        module, code, name, qualname, defaults, kwdefaults, cells = recipe[1:]
        function = types.FunctionType(
            marshal.loads(code), vars(importlib.import_module(module)), name, defaults,
            tuple(types.CellType(value) for value in cells) or None,
        )
        function.__qualname__, function.__kwdefaults__ = qualname, kwdefaults
        return function
    if kind == "private key":  # written from a key this code held: its checks passed then
        return ser.load_der_private_key(recipe[1], password=None,
                                        unsafe_skip_rsa_key_validation=True)
    if kind == "public key":
        return ser.load_der_public_key(recipe[1])
    raise SnapshotError(f"unknown kind of kept object: {kind!r}")


def dump(snapshot: Snapshot, clock: VirtualClock) -> bytes | None:
    """``snapshot`` as bytes a new process of the same code :func:`load`\\ s, or None when it
    keeps an object a new process cannot find."""
    nodes = _read_only(cfn.cached(), cfn.translated())
    recipes = _recipes(snapshot, clock, nodes)
    if recipes is None:
        return None
    try:
        return pickle.dumps((DISK_FORMAT, len(nodes), recipes, snapshot.blob),
                            protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def load(data: bytes, clock: VirtualClock) -> Snapshot:
    """The snapshot :func:`dump` wrote (in this or an earlier process of the same code)."""
    form, nodes, recipes, blob = pickle.loads(data)  # noqa: S301  # this project's own cache
    read_only = _read_only(cfn.cached(), cfn.translated())
    if form != DISK_FORMAT or nodes != len(read_only):
        raise SnapshotError("a snapshot of another format or template")
    return Snapshot(blob, [_resolve(recipe, clock, read_only) for recipe in recipes])


def stored(build: tuple[Any, ...], clock: VirtualClock) -> Snapshot | None:
    """The snapshot of ``build`` an earlier process of the same code left on disk, if any (and
    the process has not :func:`forget`\\ ten its snapshots). A damaged or unreadable entry is
    deleted, and the engine builds."""
    if not _disk_read:
        return None
    path = disk_path(build)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        found = load(data, clock)
        _note(f"{path.name} read")
    except Exception as exc:  # noqa: BLE001  # any damage: build instead, and replace the entry
        discard(build, f"unreadable ({type(exc).__name__}: {exc})")
        return None
    with contextlib.suppress(OSError):  # the most recently used are the ones kept
        os.utime(path)
    return found


def discard(build: tuple[Any, ...], why: str) -> None:
    """Delete the snapshot of ``build`` on disk: it could not be restored (``why``)."""
    path = disk_path(build)
    path.unlink(missing_ok=True)
    _note(f"{path.name} deleted: {why}")


def _note(text: str) -> None:
    global disk_note
    disk_note = text


def store(build: tuple[Any, ...], snapshot: Snapshot, clock: VirtualClock) -> bool:
    """Keep ``snapshot`` on disk for new processes (:func:`stored`); whether it is there. An
    entry already there for this build of this code is the same build and is only marked used
    (a process that has called :func:`forget` builds again without reading it); the oldest
    entries beyond :data:`DISK_LIMIT` are deleted."""
    from opsflow.engine import cache

    path = disk_path(build)
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)
        _note(f"{path.name} already on disk")
        return True
    data = dump(snapshot, clock)
    if data is None:
        _note("not written: it keeps an object a new process cannot find")
        return False
    cache.put(path, data)
    _note(f"{path.name} written")
    try:
        entries = sorted(path.parent.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns)
        for old in entries[:-DISK_LIMIT]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
    return path.exists()
