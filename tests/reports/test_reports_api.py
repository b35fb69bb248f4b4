"""The report API and pages over HTTP: JSON figures, CSV columns, tenancy, and the customer SLA report."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from tests.reports.reports_kit import History, build_history, utc
from tests.tenancy import bearer
from zhiban.desk import Desk

PERIOD = "from=2026-10-01&to=2026-10-15"


@pytest.fixture
def history(client: TestClient, desk: Desk) -> History:
    return build_history(desk)


def _csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")  # a BOM, so spreadsheet programs read the Chinese text as UTF-8
    return list(csv.reader(io.StringIO(text[1:])))


def test_json_csv_and_tenancy(client: TestClient, history: History) -> None:
    w = history.world
    agent = bearer(w.agent_token)
    doc = client.get(f"/api/v1/reports/first_response?{PERIOD}", headers=agent).json()
    assert doc["figure"] == "first_response"
    assert doc["definitions"][0]["key"] == "first_response_time" and "最近秩" in doc["definitions"][0]["zh"]
    assert doc["summary"]["holiday"] == {"n": 2, "p50_minutes": 12.0, "p90_minutes": 50.0, "unanswered": 0}

    response = client.get(f"/api/v1/reports/first_response.csv?{PERIOD}", headers=agent)
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="first_response.csv"' in response.headers["content-disposition"]
    table = _csv(response.text)
    assert table[0] == ["plan", "priority", "bucket", "n", "p50_minutes", "p90_minutes", "unanswered"]
    assert ["all", "all", "holiday", "2", "12.0", "50.0", "0"] in table
    assert ["enterprise", "P1", "out_of_hours", "1", "30.0", "30.0", ""] in table

    breaches = _csv(client.get(f"/api/v1/reports/breaches.csv?{PERIOD}", headers=agent).text)
    assert breaches[0][:6] == ["ticket_id", "plan", "metric", "due_at", "fulfilled_at", "cause"]
    assert any(row[-1] == "首次公开回复迟了 35 分钟" for row in breaches[1:])

    # Alice reads LiveCo only, whatever she asks; another organization's id is "not found".
    mine = client.get(f"/api/v1/reports/first_response?{PERIOD}", headers=bearer(w.alice_token)).json()
    assert mine["filters"]["organization_id"] == w.liveco and mine["summary"]["holiday"]["n"] == 1
    other = client.get(f"/api/v1/reports/first_response?{PERIOD}&organization_id={w.classmate}",
                       headers=bearer(w.alice_token))  # fmt: skip
    assert other.status_code == 404
    assert client.get("/api/v1/reports/pages_per_person", headers=bearer(w.alice_token)).status_code == 403
    assert client.get("/api/v1/reports/nonsense", headers=agent).status_code == 404
    assert client.get("/api/v1/reports/backlog?from=soon", headers=agent).status_code == 422
    assert client.get("/api/v1/reports/backlog").status_code == 401


def test_customer_sla_report_html_and_pdf(client: TestClient, desk: Desk, history: History) -> None:
    w = history.world
    desk.clock.set(utc(2026, 11, 2))  # type: ignore[attr-defined]  (October is over)
    page = client.get("/reports/customers/liveco/2026-10?lang=en", headers=bearer(w.alice_token))
    assert page.status_code == 200 and "LiveCo" in page.text
    # The incident linked to LiveCo was down 70 min of October's 31 × 1440 = 44,640 minutes:
    # 1 − 70 / 44,640 = 99.8432 % availability (three decimals shown), under Enterprise's 99.9 % tier.
    assert "99.843 %" in page.text and "1 h 10 min" in page.text
    pdf = client.get(f"/reports/customers/{w.liveco}/2026-10.pdf", headers=bearer(w.agent_token))
    assert (
        pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
    )
    assert client.get("/reports/customers/liveco/2026-10", headers=bearer(w.bob_token)).status_code == 404
    assert client.get("/reports/customers/liveco/2026-10.pdf", headers=bearer(w.bob_token)).status_code == 404
    assert client.get("/reports/customers/liveco/2027-01", headers=bearer(w.agent_token)).status_code == 422
