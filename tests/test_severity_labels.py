"""Each severity has its own label, in English and in Chinese, wherever one shows: sev1 and
sev2 were both "Urgent" on the public site."""

from __future__ import annotations

from flask_babel import force_locale

from portal.events.models import LABELS, SEVERITIES, URGENCY_LABELS
from tests.notice_helpers import make_event, make_notice
from tests.notice_helpers import publish as publish_notice


def test_every_severity_label_is_its_own_in_both_languages(app) -> None:
    for locale in ("en", "zh_CN"):
        with app.test_request_context(), force_locale(locale):
            staff = [str(LABELS[s]) for s in SEVERITIES]
            public = [str(URGENCY_LABELS[s]) for s in URGENCY_LABELS]
        assert len(set(staff)) == len(SEVERITIES), (locale, staff)
        assert len(set(public)) == len(public), (locale, public)
        if locale == "zh_CN":
            assert all(any("\u4e00" <= ch <= "\u9fff" for ch in label)
                       for label in staff + public), (locale, staff + public)


def test_the_public_site_names_sev1_and_sev2_apart(app, users, client) -> None:
    for severity, title in (("sev1", "Outage one"), ("sev2", "Outage two")):
        notice = make_notice(users, make_event(severity, title))
        publish_notice(notice, users)
    en = client.get("/notices", headers={"Accept-Language": "en"}).text
    assert "Critical (level 1)" in en and "Major (level 2)" in en and "Urgent" not in en
    zh = client.get("/notices", headers={"Accept-Language": "zh-CN"}).text
    assert "特别重大（一级）" in zh and "重大（二级）" in zh and "紧急" not in zh
