"""How rows are shown: sizes, expiry, download links, failure reasons and the email notice."""

from __future__ import annotations

from services.gateway.projection import Row
from services.gateway.schemas import human_size
from services.gateway.views import history_item, link_ttl, status_view

NOW = 1_772_000_000_000
DAY = 86_400_000


def complete(**kw) -> Row:
    values = dict(id="exp_1", tenant_id="t", user_email="e", mode="blog", include_images=1, delivery_method="email",
                  status="complete", progress=100, created_at=NOW - DAY, r2_key="exports/t/exp_1/a.zip",
                  file_size_bytes=24_500_000, item_counts='{"posts":2}', expires_at=NOW + 6 * DAY, sha256="ab",
                  error_count=1, notification="sent")
    return Row(**(values | kw))  # type: ignore[arg-type]


async def fake_sign(key: str, ttl: int) -> str:
    return f"https://dl/{key}?ttl={ttl}"


def test_sizes_read_like_a_file_manager():
    assert [human_size(n) for n in (0, 1, 999, 24_500_000, 10**12)] == [
        "0 bytes", "1 byte", "999 bytes", "24.5 MB", "1.0 TB"]


def test_links_live_at_most_the_ttl_and_never_past_expiry():
    assert link_ttl(complete(), NOW, 3600) == 3600
    assert link_ttl(complete(expires_at=NOW + 90_500), NOW, 3600) == 90
    assert link_ttl(complete(expires_at=NOW - 1), NOW, 3600) == 0


async def test_a_complete_export_shows_a_fresh_link_and_its_archive():
    view = (await status_view(complete(), fake_sign, 3600, NOW)).dump()
    assert view["downloadUrl"] == "https://dl/exports/t/exp_1/a.zip?ttl=3600"
    assert (view["fileSize"], view["sizeBytes"], view["sha256"], view["errorCount"]) == ("24.5 MB", 24_500_000,
                                                                                         "ab", 1)
    assert view["itemCounts"] == {"posts": 2} and view["notification"] == "sent" and "notice" not in view


async def test_a_complete_export_past_its_expiry_is_expired_without_a_link():
    view = (await status_view(complete(expires_at=NOW - 1), fake_sign, 3600, NOW)).dump()
    assert view["status"] == "expired" and "downloadUrl" not in view
    assert history_item(complete(expires_at=NOW - 1), NOW).status == "expired"


async def test_a_failed_export_says_why_and_a_failed_email_gets_a_short_notice():
    failed = await status_view(complete(status="failed", error_message="no posts", file_size_bytes=None,
                                        notification="failed"), fake_sign, 3600, NOW)
    assert failed.error == "no posts" and "email" in (failed.notice or "") and failed.download_url is None
    ready = await status_view(complete(notification="failed"), fake_sign, 3600, NOW)
    assert ready.notice and "email" in ready.notice and ready.download_url
