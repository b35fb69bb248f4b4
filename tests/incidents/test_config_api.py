"""Policies, services and schedules are edited and deleted over the API by admins, as in the UI."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.desk import Desk


def test_admins_replace_and_delete_policies_services_and_schedules(client: TestClient, desk: Desk) -> None:
    world = build_world(desk)
    admin, agent = bearer(world.admin_token), bearer(world.agent_token)
    schedule = client.post("/api/v1/schedules", json={"name": "LiveCo night", "zone": "UTC"}, headers=admin).json()
    one_level = [{"delay_minutes": 5, "targets": [{"kind": "person", "ref": world.agent_id}]}]
    policy = client.post("/api/v1/escalation-policies", json={"name": "p", "levels": one_level}, headers=admin).json()
    svc = client.post("/api/v1/incident-services", json={"name": "s", "policy": policy["id"]}, headers=admin).json()

    two_levels = [*one_level, {"delay_minutes": 10, "targets": [{"kind": "schedule", "ref": schedule["id"]}]}]
    body = {"name": "p2", "levels": two_levels, "repeats": 1}
    assert client.put(f"/api/v1/escalation-policies/{policy['id']}", json=body, headers=agent).status_code == 403
    replaced = client.put(f"/api/v1/escalation-policies/{policy['id']}", json=body, headers=admin)
    assert replaced.status_code == 200 and replaced.json()["name"] == "p2" and len(replaced.json()["levels"]) == 2
    unknown = {**body, "levels": [{"delay_minutes": 5, "targets": [{"kind": "schedule", "ref": "no such"}]}]}
    refused = client.put(f"/api/v1/escalation-policies/{policy['id']}", json=unknown, headers=admin)
    assert refused.status_code == 422 and "schedule" in refused.json()["detail"]

    # In use: a policy a service pages by, a schedule a policy pages; both refused and kept.
    assert client.delete(f"/api/v1/escalation-policies/{policy['id']}", headers=admin).status_code == 409
    assert client.delete(f"/api/v1/schedules/{schedule['id']}", headers=admin).status_code == 409

    moved = client.put(
        f"/api/v1/incident-services/{svc['id']}", json={"name": "s", "ack_timeout_minutes": 10}, headers=admin
    )
    assert moved.status_code == 200 and moved.json()["policy_id"] is None and moved.json()["ack_timeout_minutes"] == 10
    assert client.delete(f"/api/v1/escalation-policies/{policy['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/schedules/{schedule['id']}", headers=admin).status_code == 204
    names = [p["name"] for p in client.get("/api/v1/escalation-policies", headers=admin).json()]
    assert "p2" not in names
    assert client.get(f"/api/v1/schedules/{schedule['id']}", headers=admin).status_code == 404
