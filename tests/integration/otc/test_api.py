"""The read-only OTC API, the admin pages and the dashboard selector, over the sample week."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from otc.models import RawCapture, Trade
from otc.selectors import weekly_volume_by_venue
from otc.services import ingest_week
from tests.integration.otc.conftest import SAMPLE, SAMPLE_WEEK


@pytest.fixture
def loaded(db, data_dir):
    from datetime import date

    return ingest_week(
        tier="OTCE", week=date.fromisoformat(SAMPLE_WEEK), venue_type="ats", path="otc_sample.csv"
    )


@pytest.fixture
def api(role_user):
    client = APIClient()
    client.force_authenticate(role_user("viewer"))
    return client


ENDPOINTS = ["weeks", "trades", "metrics", "venue-shares", "rejects"]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_needs_authentication(api_client_for, name):
    response = api_client_for("anonymous").get(f"/api/v1/otc/{name}/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_user_without_a_role_may_not_read(db, name):
    from rest_framework.authtoken.models import Token

    nobody = get_user_model().objects.create_user("nobody")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=nobody).key}")

    response = client.get(f"/api/v1/otc/{name}/")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_role_may_read_and_nobody_may_write(api_client_for, loaded, role, name):
    client = api_client_for(role)
    assert client.get(f"/api/v1/otc/{name}/").status_code == 200
    assert client.post(f"/api/v1/otc/{name}/", {}, format="json").status_code == 405


def test_weeks_lists_the_loaded_week(api, loaded):
    response = api.get("/api/v1/otc/weeks/")
    assert response.status_code == 200
    (week,) = response.json()
    assert week == {
        "tier": "OTCE",
        "week": SAMPLE_WEEK,
        "venue_type": "ats",
        "rows": 5328,
        "symbols": 3111,
        "shares": week["shares"],
        "trades": week["trades"],
        "publication_date": "2025-12-15",
    }
    assert week["shares"] == sum(Trade.objects.values_list("shares", flat=True))


def test_trades_filter_by_symbol_tier_week_and_venue(api, loaded):
    response = api.get(
        "/api/v1/otc/trades/",
        {"symbol": "aabb", "tier": "OTCE", "week_from": SAMPLE_WEEK, "week_to": SAMPLE_WEEK},
    )
    assert response.status_code == 200
    rows = response.json()["results"]
    assert sorted((r["venue_mpid"], r["shares"], r["trades"]) for r in rows) == [
        ("OTCN", 6753871, 171),
        ("OTCX", 40313, 3),
    ]
    only_otcx = api.get("/api/v1/otc/trades/", {"symbol": "AABB", "venue": "otcx"}).json()
    assert [r["venue_mpid"] for r in only_otcx["results"]] == ["OTCX"]
    assert api.get("/api/v1/otc/trades/", {"week_from": "2025-11-24"}).json()["results"] == []
    assert api.get("/api/v1/otc/trades/", {"tier": "T1"}).json()["results"] == []


def test_trades_page_with_a_cursor(api, loaded):
    first = api.get("/api/v1/otc/trades/", {"page_size": 1000}).json()
    assert len(first["results"]) == 1000
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 1000
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


def test_trades_as_csv(api, loaded):
    response = api.get("/api/v1/otc/trades/", {"symbol": "AABB", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = response.content.decode()
    assert text.splitlines()[0] == (
        "id,week,tier,symbol,issue_name,venue_mpid,venue_name,venue_type,shares,trades,"
        "publication_date"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted((r["symbol"], r["venue_mpid"], r["shares"]) for r in rows) == [
        ("AABB", "OTCN", "6753871"),
        ("AABB", "OTCX", "40313"),
    ]


def test_metrics_by_symbol(api, loaded):
    rows = api.get("/api/v1/otc/metrics/", {"symbol": "AABB"}).json()["results"]
    assert len(rows) == 1
    assert (rows[0]["total_shares"], rows[0]["venue_count"], rows[0]["trading_days"]) == (
        6794184,
        2,
        5,
    )
    assert rows[0]["top_venue_mpid"] == "OTCN"
    csv_text = api.get("/api/v1/otc/metrics/", {"symbol": "AABB"}, HTTP_ACCEPT="text/csv")
    assert csv_text.content.decode().splitlines()[1].count(",") >= 17


def test_venue_shares_add_up_to_the_week(api, loaded):
    body = api.get("/api/v1/otc/venue-shares/", {"limit": 1000}).json()
    rows = body["results"]
    assert body["count"] == len(rows) == Trade.objects.values("venue_mpid").distinct().count()
    assert sum(r["share_of_volume"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["shares"] >= rows[1]["shares"]
    one = api.get("/api/v1/otc/venue-shares/", {"venue": rows[0]["venue_mpid"]}).json()
    assert one["results"][0]["share_of_volume"] == pytest.approx(rows[0]["share_of_volume"])
    aabb = api.get("/api/v1/otc/venue-shares/", {"symbol": "AABB"}).json()["results"]
    assert [(r["venue_mpid"], round(r["share_of_volume"], 4)) for r in aabb] == [
        ("OTCN", 0.9941),
        ("OTCX", 0.0059),
    ]


def test_rejects_list_the_bad_lines(api, data_dir):
    from datetime import date

    lines = SAMPLE.read_bytes().split(b"\n")
    (data_dir / "bad.csv").write_bytes(b"\n".join([*lines[:3], b"OTC|X|x|v|V|1|-1|2025-12-15"]))
    ingest_week(tier="OTCE", week=date(2025, 11, 17), venue_type="ats", path="bad.csv")

    rows = api.get("/api/v1/otc/rejects/", {"reason": "negative_volume"}).json()["results"]
    assert [(r["line_number"], r["reason"], r["source_name"]) for r in rows] == [
        (4, "negative_volume", "bad.csv")
    ]
    assert api.get("/api/v1/otc/rejects/", {"reason": "duplicate"}).json()["results"] == []


def test_weekly_volume_by_venue_for_a_chart(loaded):
    assert weekly_volume_by_venue("aabb") == [
        {
            "week": Trade.objects.first().week,
            "tier": "OTCE",
            "venue_mpid": "OTCN",
            "venue_name": "OTCN OTC LINK NQB IDQS",
            "shares": 6753871,
            "trades": 171,
        },
        {
            "week": Trade.objects.first().week,
            "tier": "OTCE",
            "venue_mpid": "OTCX",
            "venue_name": "OTCX OTC LINK ECN ATS",
            "shares": 40313,
            "trades": 3,
        },
    ]
    assert weekly_volume_by_venue("AABB", tier="T1") == []
    assert weekly_volume_by_venue("NOPE") == []


@pytest.mark.parametrize("model", ["trade", "metricsdaily", "rejectedrow", "rawcapture"])
def test_the_admin_pages_are_read_only(admin_client, loaded, model):
    listing = admin_client.get(f"/admin/otc/{model}/")
    assert listing.status_code == 200
    assert b"Source finra_api: circuit closed." in listing.content
    assert admin_client.get(f"/admin/otc/{model}/add/").status_code == 403
    if model == "trade":
        listing = admin_client.get("/admin/otc/trade/", {"q": "AABB"})
        assert b"Asia Broadband" in listing.content
        row = Trade.objects.get(symbol="AABB", venue_mpid="OTCX")
        page = admin_client.get(f"/admin/otc/trade/{row.pk}/change/")
        assert page.status_code == 200  # viewable
        posted = admin_client.post(f"/admin/otc/trade/{row.pk}/change/", {"shares": 1})
        assert posted.status_code == 403
        assert Trade.objects.get(pk=row.pk).shares == 40313
    if model == "rawcapture":
        capture = RawCapture.objects.get()
        url = f"/admin/otc/rawcapture/{capture.pk}/download/"
        assert f'href="{url}"'.encode() in listing.content  # the capture's "as received"
        page = admin_client.get(f"/admin/otc/rawcapture/{capture.pk}/change/")
        assert page.status_code == 200
        assert b"      2  OTC|AABB|Asia Broadband Inc Common Stock|OTCN OTC LINK NQB IDQS" in (
            page.content
        )
        assert b"Download all 5329 lines" in page.content
        download = admin_client.get(url)
        assert download.status_code == 200
        assert download["Content-Disposition"] == 'attachment; filename="otc_sample.csv"'
        assert b"".join(download.streaming_content) == SAMPLE.read_bytes()


def test_a_capture_downloads_for_viewers_only(client, loaded, role_user):
    capture = RawCapture.objects.get()
    url = f"/admin/otc/rawcapture/{capture.pk}/download/"
    client.force_login(role_user("viewer"))
    assert b"".join(client.get(url).streaming_content) == SAMPLE.read_bytes()

    from django.contrib.auth.models import Permission

    captures_only = get_user_model().objects.create_user("captures-only", is_staff=True)
    captures_only.user_permissions.add(Permission.objects.get(codename="view_rawcapture"))
    client.force_login(captures_only)  # may list captures, not read their lines
    assert client.get(url).status_code == 403
    listing = client.get("/admin/otc/rawcapture/")
    assert listing.status_code == 200
    assert url.encode() not in listing.content
    page = client.get(f"/admin/otc/rawcapture/{capture.pk}/change/")
    assert page.status_code == 200
    assert b"OTC|AABB" not in page.content

    nobody = get_user_model().objects.create_user("nobody", is_staff=True)  # staff, no role
    client.force_login(nobody)
    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302  # to the admin's login page


def test_a_capture_whose_blocks_retention_deleted_has_nothing_to_download(admin_client, loaded):
    from otc.models import RawBlock
    from otc.selectors import CaptureIncomplete

    capture = RawCapture.objects.get()
    url = f"/admin/otc/rawcapture/{capture.pk}/download/"
    middle = RawBlock.objects.filter(capture=capture).order_by("first_line")[1]
    middle.delete()  # retention at work while someone downloads: the download fails, not ends
    with pytest.raises(CaptureIncomplete):
        b"".join(admin_client.get(url).streaming_content)
    RawBlock.objects.filter(capture=capture, first_line=1).delete()  # where retention starts
    assert admin_client.get(url).status_code == 404
    page = admin_client.get(f"/admin/otc/rawcapture/{capture.pk}/change/")
    assert b"Retention is deleting this capture&#x27;s lines." in page.content
    RawBlock.objects.filter(capture=capture).delete()

    assert admin_client.get(url).status_code == 404
    page = admin_client.get(f"/admin/otc/rawcapture/{capture.pk}/change/")
    assert b"Retention has deleted this capture&#x27;s lines." in page.content
