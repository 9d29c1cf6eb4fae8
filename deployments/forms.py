"""The run forms the Prefect UI draws from a deployment's `parameter_openapi_schema`, finished when `shiftover serve`
builds the deployments (Prefect derives the schema from the flow's signature, titled with the raw parameter names).

- Every field naming a provider (`PROVIDER_FIELDS`, top level or inside a flow's parameter model) lists the providers
  of backends.yaml as its choices.
- A flat flow (migrate) takes its titles and descriptions from its parameter model (flows/migration_run.py
  MigrateParams), and an optional field shows as a plain field instead of an "is type None" toggle: its null branch
  is dropped, and a field left empty is not sent, so the flow's default (None: "from backends.yaml") applies.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

PROVIDER_FIELDS = frozenset({"source", "target", "to", "targets", "providers", "migration_partner"})

Schema = dict[str, Any]


def finish_form(schema: Schema, providers: list[str], model: type[BaseModel] | None = None) -> Schema:
    """`schema` (a deployment's parameter_openapi_schema) with provider choices and, given the model of a flat flow's
    parameters, each top-level field as that model declares it (title, description, bounds) without a null branch."""
    if model is not None:
        declared = model.model_json_schema(ref_template="#/definitions/{model}")
        props = schema.get("properties") or {}
        for name, prop in declared["properties"].items():
            if name in props:
                props[name] = {**_without_null(prop, declared.get("$defs") or {}), "position": props[name]["position"]}
    definitions: Schema = schema.get("definitions") or {}
    for level in [schema.get("properties") or {}, *((d.get("properties") or {}) for d in definitions.values())]:
        for name in PROVIDER_FIELDS & level.keys():
            _offer(level[name], providers)
    return schema


def _offer(prop: Schema, providers: list[str]) -> None:
    """Provider names as the choices of a string field, a list of strings, or either of them or null."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            branch["enum"] = list(providers)
        elif branch.get("type") == "array" and (branch.get("items") or {}).get("type") == "string":
            branch["items"]["enum"] = list(providers)


def _without_null(prop: Schema, definitions: Schema) -> Schema:
    """An optional field (`anyOf: [X, null]`, default null) as X alone, a reference to an enum inlined, no default."""
    branches = prop.get("anyOf")
    if not branches or {"type": "null"} not in branches or len(branches) != 2:
        return prop
    (kept,) = [b for b in branches if b != {"type": "null"}]
    ref = kept.get("$ref", "")
    if ref.startswith("#/definitions/"):
        kept = dict(definitions[ref.removeprefix("#/definitions/")])
        kept.pop("title", None)
        kept.pop("description", None)
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**rest, **kept}


def finish_forms(deployments: list[Any], providers: list[str], models: dict[str, type[BaseModel]]) -> None:
    """Finish every deployment's form in place (`models`: deployment name → the model of a flat flow's parameters).

    Prefect has no public setter for a RunnerDeployment's schema; it edits the private `_parameter_openapi_schema`
    itself (frozen parameters). Checked with Prefect 3.8 (tests/test_forms.py reads the result back)."""
    for d in deployments:
        schema = getattr(d, "_parameter_openapi_schema", None)
        if schema is None:
            raise RuntimeError("this Prefect's RunnerDeployment has no _parameter_openapi_schema (tested with 3.8)")
        finished = finish_form(schema.model_dump(), providers, models.get(d.name))
        d._parameter_openapi_schema = type(schema)(**finished)
