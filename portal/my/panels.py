"""Where other features plug into the customer page.

The page (``templates/my/page.html``) shows, for each of the customer's cases, the case's
facts (``templates/my/_case.html``) and then its **case panels**, in ``order``; below the
cases, the **page sections**. A feature adds one by registering it in ``portal.wiring``::

    my_panels.add_case_panels(
        my_panels.CasePanel("evidence", "my/_evidence_panel.html", evidence.panel_context,
                            order=20))
    my_panels.add_page_sections(
        my_panels.PageSection("claim", "my/_claim_section.html", claims.section_context))

A panel's ``context(case, customer)`` returns the variables its template needs (read there as
``panel_context.<name>``), or None to
leave the panel out for that case (a case that has no offer shows no offer panel). The
template is included with ``case``, ``customer`` and those variables; its forms post to
views under ``/my`` (the customer cookie's path) that are declared ``@access(PUBLIC)`` and
``@customer_required`` (``portal.customers.session``), carry the CSRF token
(``{{ csrf_token() }}``), and redirect back to ``url_for('my.page', _anchor='case-' ~ case.ref)``.

Built in: the conversation and the reply form (``reply``, order 10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal.cases.models import Case
from portal.customers.models import Customer

CaseContext = Callable[[Case, Customer], dict[str, Any] | None]
PageContext = Callable[[Customer], dict[str, Any] | None]


@dataclass(frozen=True)
class CasePanel:
    name: str
    template: str
    context: CaseContext | None = None
    order: int = 100


@dataclass(frozen=True)
class PageSection:
    name: str
    template: str
    context: PageContext | None = None
    order: int = 100


_CASE_PANELS: dict[str, CasePanel] = {}
_PAGE_SECTIONS: dict[str, PageSection] = {}


def add_case_panels(*panels: CasePanel) -> None:
    """Show these panels under every case (``portal.wiring``, once per process; a name
    registered again replaces the earlier one)."""
    for panel in panels:
        _CASE_PANELS[panel.name] = panel


def add_page_sections(*sections: PageSection) -> None:
    for section in sections:
        _PAGE_SECTIONS[section.name] = section


@dataclass(frozen=True)
class Shown:
    """One panel or section to include, with its variables."""

    name: str
    template: str
    context: dict[str, Any]


def case_panels(case: Case, customer: Customer) -> list[Shown]:
    shown = []
    for panel in sorted(_CASE_PANELS.values(), key=lambda p: (p.order, p.name)):
        context = panel.context(case, customer) if panel.context else {}
        if context is not None:
            shown.append(Shown(panel.name, panel.template, context))
    return shown


def page_sections(customer: Customer) -> list[Shown]:
    shown = []
    for section in sorted(_PAGE_SECTIONS.values(), key=lambda s: (s.order, s.name)):
        context = section.context(customer) if section.context else {}
        if context is not None:
            shown.append(Shown(section.name, section.template, context))
    return shown
