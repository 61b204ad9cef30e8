"""Placeholders and the starter templates staff draft notices from."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# What counts as left unfilled: any "{{ … }}", also one mistyped past the pattern above.
_UNFILLED = re.compile(r"\{\{(.{0,60}?)\}\}")


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{{ name }}`` with its value; unknown names stay visible for the drafter."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def unfilled_placeholders(content: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """The placeholders still in the text, by form field (``title_zh_CN``, ``body_en``…),
    each as written (``{{ resolution_time }}``), in order of appearance, once."""
    missing: dict[str, list[str]] = {}
    for locale, entry in content.items():
        for part in ("title", "body"):
            found = [f"{{{{ {m.group(1).strip()} }}}}"
                     for m in _UNFILLED.finditer(entry.get(part) or "")]
            if found:
                missing[f"{part}_{locale}"] = list(dict.fromkeys(found))
    return missing


def starter(name: str, values: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Starter ``name`` filled in per locale with ``values[locale]`` (the event's title in
    that language, the hotline, the contact e-mail); what only the drafter knows (a time, a
    date) stays a placeholder, which blocks the request for sign-off until filled."""
    return {locale: {part: fill_placeholders(text, values[locale]) for part, text in entry.items()}
            for locale, entry in STARTERS[name].items()}


STARTERS: dict[str, dict[str, dict[str, str]]] = {
    "outage": {
        "zh_CN": {
            "title": "{{ event_title }}：服务故障通知",
            "body": (
                "尊敬的客户：\n\n{{ event_title }}，相关线上服务暂时无法使用。"
                "我们正在全力处理，预计于 {{ resolution_time }} 前恢复。\n\n"
                "**如有紧急业务，请致电 {{ contact_phone }}**，或发送邮件至 "
                "{{ contact_email }}。\n\n给您带来的不便，我们深表歉意。处理进展将在本页更新。"
            ),
        },
        "en": {
            "title": "{{ event_title }}: service disruption",
            "body": (
                "Dear customer,\n\n{{ event_title }}: some online services are unavailable. "
                "We are working on it and expect to restore them by {{ resolution_time }}.\n\n"
                "**For urgent matters, call {{ contact_phone }}** or write to "
                "{{ contact_email }}.\n\n"
                "We apologise for the inconvenience. We will post progress on this page."
            ),
        },
    },
    "shutdown": {
        "zh_CN": {
            "title": "关于{{ event_title }}的公告",
            "body": (
                "尊敬的客户：\n\n经审慎评估，我们决定于 {{ shutdown_date }} 停止{{ event_title }}。"
                "\n\n- {{ shutdown_date }} 起不再受理新订单；\n- 进行中的订单将继续履约或全额退款；"
                "\n- 账户余额可在 {{ last_day }} 前申请退回。\n\n如有疑问，请致电 "
                "{{ contact_phone }} 或发送邮件至 {{ contact_email }}。感谢您一直以来的支持。"
            ),
        },
        "en": {
            "title": "Announcement: {{ event_title }}",
            "body": (
                "Dear customer,\n\nAfter careful review we have decided to discontinue "
                "{{ event_title }} on {{ shutdown_date }}.\n\n- From {{ shutdown_date }} we "
                "accept no new orders;\n- open orders will be fulfilled or fully refunded;\n"
                "- account balances can be refunded until {{ last_day }}.\n\nQuestions? Call "
                "{{ contact_phone }} or write to {{ contact_email }}. Thank you for your support."
            ),
        },
    },
    "maintenance": {
        "zh_CN": {
            "title": "系统维护通知：{{ event_title }}",
            "body": (
                "尊敬的客户：\n\n为提升服务质量，我们将于 {{ start_time }} 至 {{ end_time }} "
                "进行系统维护，期间 {{ event_title }} 将暂停服务。\n\n维护期间如有紧急需求，请致电 "
                "{{ contact_phone }}。"
            ),
        },
        "en": {
            "title": "Scheduled maintenance: {{ event_title }}",
            "body": (
                "Dear customer,\n\nWe will carry out maintenance from {{ start_time }} to "
                "{{ end_time }}; {{ event_title }} will be unavailable during that time.\n\n"
                "For urgent matters during maintenance, call {{ contact_phone }}."
            ),
        },
    },
    "compensation": {
        "zh_CN": {
            "title": "{{ event_title }}：补偿方案",
            "body": (
                "尊敬的客户：\n\n针对{{ event_title }}给您造成的影响，我们将提供补偿。"
                "\n\n- 受影响的订单将获得相应补偿；"
                "\n- 补偿将于 {{ payout_date }} 前发放至原支付账户；"
                "\n- 无需另行申请。\n\n如有疑问，请致电 {{ contact_phone }} 或发送邮件至 "
                "{{ contact_email }}。"
            ),
        },
        "en": {
            "title": "{{ event_title }}: compensation",
            "body": (
                "Dear customer,\n\nWe will compensate you for the impact of {{ event_title }}."
                "\n\n- Affected orders receive compensation;\n- payment reaches the original "
                "payment account by {{ payout_date }};\n- there is nothing you need to do.\n\n"
                "Questions? Call {{ contact_phone }} or write to {{ contact_email }}."
            ),
        },
    },
}
