"""An example automation: when a provider's health turns `down` (event `shiftover.provider.down`, emitted by the
health sweep), run the `failover` deployment as a dry run, so the UI shows what a failover would do and why.

    python -m shiftover.deployments.automations /abs/path/backends.yaml  # PREFECT_API_URL, `shiftover serve` up

Swap the action for `SendNotification(block_document_id=...)` to be told instead (create a notification block in the
UI first). Automatic failover itself does not wait for this: the monitor in `shiftover serve` reacts within seconds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast
from uuid import UUID

if TYPE_CHECKING:
    from prefect.automations import Automation

AUTOMATION_NAME = "shiftover: provider down → failover dry run"


def provider_down_automation(failover_deployment_id: UUID, config_path: str) -> Automation:
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    return Automation(
        name=AUTOMATION_NAME,
        description="A provider stopped answering the health sweep; show what a failover would do.",
        trigger=EventTrigger(expect={"shiftover.provider.down"}, match={"prefect.resource.id": "shiftover.provider.*"},
                             posture=Posture.Reactive, threshold=1, within=0),
        actions=[RunDeployment(source="selected", deployment_id=failover_deployment_id,
                               parameters={"params": {"config_path": config_path, "dry_run": True,
                                                      "reason": "provider {{ event.resource.name }} is down"}})],
    )


async def _deployment_id(name: str) -> UUID:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return (await client.read_deployment_by_name(name)).id


def create(config_path: str, failover_deployment: str = "failover/failover") -> UUID:
    """Create (or replace) the example automation; returns its id."""
    from prefect.automations import Automation

    try:
        Automation.read(name=AUTOMATION_NAME).delete()  # type: ignore[attr-defined]  # sync_compatible
    except ValueError:
        pass
    made = provider_down_automation(asyncio.run(_deployment_id(failover_deployment)), config_path).create()
    automation = cast("Automation", made)  # create() is sync_compatible: called from sync code it returns the object
    assert automation.id is not None, "the API gives a created automation its id"
    return automation.id


if __name__ == "__main__":
    import sys

    print(create(sys.argv[1]))
