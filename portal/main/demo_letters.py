"""Demo data of letters: one finished letter run of the demo incident's approved notice (with
the ZIP of one PDF per customer), rendered in the seed's own process as the job would, so the
letters page shows its download and /verify knows the letters' codes."""

from __future__ import annotations

from portal import documents, uow
from portal.accounts import Role, User
from portal.events.models import Event
from portal.letters import pdf as letter_pdf
from portal.letters import services as letters


def seed_letters(event: Event, users: dict[Role, User]) -> None:
    choice = next((value for value, _label in letters.choices(event)
                   if value.startswith("notice:")), None)
    if choice is None:
        return
    run = letters.start(event, choice, with_zip=True, actor=users[Role.AGENT])
    uow.commit()  # the run's row first, as a request would; then its job
    documents.render_document_job(letter_pdf.PIPELINE.name, run.id)
