"""botocore's parsed service models are cached on disk (opsflow/engine/models.py): a model read
through the cache is the model botocore reads, in the same order, and a changed file is read
again."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import botocore.loaders

from opsflow.engine import cache, models


def test_a_cached_model_is_the_model_botocore_reads(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(cache, "DIR", tmp_path)
    models.install()
    path = Path(botocore.__file__).parent / "data" / "ec2"
    version = sorted(p.name for p in path.iterdir())[-1]
    model_path = str(path / version / "service-2")

    uncached = botocore.loaders.JSONFileLoader()
    fresh = json.loads(gzip.open(model_path + ".json.gz").read().decode("utf-8"))
    cold = uncached.load_file(model_path)
    warm = uncached.load_file(model_path)

    assert cold == fresh and warm == fresh
    assert list(warm["shapes"])[:50] == list(fresh["shapes"])[:50]
    assert any(tmp_path.rglob("*.marshal"))


def test_a_changed_model_file_is_read_again(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(cache, "DIR", tmp_path / "cache")
    models.install()
    source = tmp_path / "model"
    big = {"metadata": {"v": 1}, "pad": "x" * models.MIN_BYTES}
    source.with_suffix(".json").write_text(json.dumps(big))
    loader = botocore.loaders.JSONFileLoader()
    assert loader.load_file(str(source))["metadata"] == {"v": 1}
    big["metadata"] = {"v": 2, "longer": True}
    source.with_suffix(".json").write_text(json.dumps(big))
    assert loader.load_file(str(source))["metadata"] == {"v": 2, "longer": True}


def test_moto_data_files_read_through_the_cache_are_moto_s(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from moto.ec2.models import instance_types
    from moto.utilities import utils

    monkeypatch.setattr(cache, "DIR", tmp_path)
    models.install()
    resource = "ec2/resources/instance_types.json"
    fresh = utils.load_resource.original(resource)  # type: ignore[attr-defined]
    cold, warm = utils.load_resource(resource), utils.load_resource(resource)
    assert cold == fresh == warm and list(warm)[:20] == list(fresh)[:20]
    assert any((tmp_path / "moto").glob("*.marshal"))
    assert instance_types.INSTANCE_TYPES["t3.micro"] == fresh["t3.micro"]


def test_moto_reads_every_service_model_with_one_loader() -> None:
    """One loader for every model moto reads, each model as a loader of its own reads it."""
    from moto.core import utils

    models.install()
    assert utils.create_loader() is utils.create_loader()
    fresh = utils.create_loader.__wrapped__()  # type: ignore[attr-defined]
    for service in ("ec2", "stepfunctions", "sts"):
        assert utils._load_service_model(service, "service-2") == fresh.load_service_model(
            service, "service-2")
    assert utils._load_service_model("ec2", "paginators-1") == fresh.load_service_model(
        "ec2", "paginators-1")
