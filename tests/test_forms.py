"""The run forms and descriptions the Prefect UI shows, read from the deployments `shiftover serve` builds: migrate's
parameters are top-level fields with clean titles, source and target offer the providers of backends.yaml, optional
numbers are plain fields, every description is markdown saying what the deployment does, freezes and how to undo it.
The browser side is in tests/test_e2e_ui.py."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shiftover.deployments.catalogue import build_deployments
from shiftover.deployments.descriptions import DESCRIPTIONS
from shiftover.flows.migrate import migrate
from shiftover.flows.migration_run import MigrateParams
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ["shop", "shop_next", "cache"]
STRATEGY_FIELDS = {"approve_cutover": "blue_green", "approval_timeout_s": "blue_green", "release_source": "blue_green",
                   "max_lag": "blue_green and gradual", "catchup_timeout_s": "blue_green and gradual",
                   "chunks_per_run": "gradual", "runner": "blue_green and gradual", "dask_address": "dask"}


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("forms")
    cfg = write_config(work, {"shop": {"kind": "sqlite", "url": "sqlite:///shop.db", "role": "primary"},
                              "shop_next": {"kind": "sqlite", "url": "sqlite:///shop_next.db"},
                              "cache": {"kind": "memory", "url": "memory://cache"}})
    return {d.name: d for d in build_deployments(cfg, sweep_interval_s=3600)}


def _schema(deployment: Any) -> dict[str, Any]:
    schema: dict[str, Any] = deployment._parameter_openapi_schema.model_dump()  # what serve sends to the server
    return schema


def test_migrate_form_is_flat_with_provider_choices(forms: dict[str, Any]) -> None:
    schema = _schema(forms["migrate"])
    props = schema["properties"]
    assert "params" not in props
    assert list(props) == list(MigrateParams.model_fields)
    assert [p["position"] for p in props.values()] == list(range(len(props)))
    assert sorted(props["source"]["enum"]) == sorted(props["target"]["enum"]) == sorted(PROVIDERS)
    assert props["source"]["type"] == props["target"]["type"] == "string"
    assert schema["required"] == ["source", "target"]
    assert props["strategy"]["enum"] == ["immediate", "gradual", "blue_green"]
    assert set(forms["migrate"].parameters) == {"config_path"}  # top level too: the backends.yaml serve read


def test_migrate_form_titles_descriptions_and_plain_optional_fields(forms: dict[str, Any]) -> None:
    props = _schema(forms["migrate"])["properties"]
    for name, prop in props.items():
        title = prop["title"]
        assert title != name and "_" not in title, title
        assert not re.search(r"\b[A-Za-z]\b", title), f"a one-letter word in {title!r}"  # as "Timeout S" was
        assert prop.get("description"), name
        assert "anyOf" not in prop and prop.get("type") != "null", (name, prop)
        assert prop.get("default", "unset") is not None, name  # an empty field is not sent: the flow's None applies
    for name in ("batch_size", "chunk_rows", "workers", "chunks_per_run"):
        assert props[name]["type"] == "integer" and props[name]["minimum"] == 1, props[name]
    assert props["approval_timeout_s"]["title"] == "Blue-green: approval timeout (seconds)"
    for name, strategy in STRATEGY_FIELDS.items():
        assert props[name]["description"].startswith(strategy) or f"with the {strategy}" in props[name]["description"]
        assert props[name]["title"].split(":")[0] in ("Blue-green", "Gradual", "Blue-green and gradual")
    common = [p["position"] for n, p in props.items() if n not in STRATEGY_FIELDS][:6]
    assert common == list(range(6))  # source, target, strategy, collections, dry run, switch come first


def test_a_partly_filled_form_validates_and_a_wrong_provider_does_not(forms: dict[str, Any]) -> None:
    schema = _schema(forms["migrate"])
    jsonschema.validate({"source": "shop", "target": "cache", "batch_size": 500}, schema)
    with pytest.raises(jsonschema.ValidationError, match="is not one of"):
        jsonschema.validate({"source": "shop", "target": "elsewhere"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"source": "shop", "target": "cache", "workers": 0}, schema)


def test_other_forms_offer_the_providers(forms: dict[str, Any]) -> None:
    def field(deployment: str, model: str, name: str) -> dict[str, Any]:
        prop: dict[str, Any] = _schema(forms[deployment])["definitions"][model]["properties"][name]
        return prop

    to = field("failover", "FailoverParams", "to")["anyOf"][0]
    assert sorted(to["enum"]) == sorted(PROVIDERS)
    for deployment, model, name in (("health-sweep", "HealthSweepParams", "providers"),
                                    ("sync", "SyncParams", "targets"),
                                    ("full-test-suite", "TestSuiteParams", "providers")):
        assert sorted(field(deployment, model, name)["anyOf"][0]["items"]["enum"]) == sorted(PROVIDERS)


def test_every_deployment_describes_what_it_does_freezes_and_how_to_undo_it(forms: dict[str, Any]) -> None:
    assert set(forms) == set(DESCRIPTIONS)
    for name, deployment in forms.items():
        text = deployment.description
        assert text == DESCRIPTIONS[name]
        first, blank, *items = text.splitlines()
        assert first and not blank and len(items) == 3, name  # the UI breaks the page at every line break
        assert all(i.startswith("- **") for i in items), name
        for part in ("- **Does:**", "- **Freezes:**", "- **Undo:**"):
            assert part in text, (name, part)
    pooled = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert {d["name"]: d["description"] for d in pooled} == DESCRIPTIONS
    assert next(d for d in pooled if d["name"] == "migrate")["parameters"] == {"config_path": "{{ $SHIFTOVER_CONFIG }}"}


def test_the_flow_signature_is_the_model() -> None:
    params = inspect.signature(migrate.fn).parameters
    assert list(params) == list(MigrateParams.model_fields)
    for name, field in MigrateParams.model_fields.items():
        default = params[name].default
        assert (default is inspect.Parameter.empty) == field.is_required(), name
        if not field.is_required():
            assert default == field.default, name
