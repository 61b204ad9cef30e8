"""A remediation programme end to end in a real browser, in English and in Chinese: an agent
imports the entitlements (checked and applied by a real RQ worker), creates a programme and
reads its preview, asks for legal's sign-off; legal signs off; an admin creates the cases
(the progress bar reaches 100 %); finance user A prepares a bank batch, which only finance
user B may release; A has the pain.001 made, downloads it (valid against the ISO 20022
schema) and uploads the bank's result with one rejected line; the batch reconciliation shows
the rejection to the cent, and a paid customer's own page says "paid".

Screenshots of every page go to /tmp/e2e-shots/ (outside the repository) to look at."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from lxml import etree
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select

from portal.accounts import Role
from portal.customers import links
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.events import services as events
from portal.extensions import db
from portal.payouts import pain001
from tests.browser.helpers import path_of, url_path, wait_for_htmx
from tests.browser.test_my_work_browser import sign_in_as
from tests.payout_helpers import second_finance

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/e2e-shots")
LOCALES = {"en": "en-US", "zh": "zh-CN"}
# external_ref, name, locale, basis amount, account: 10 % of the basis is each one's amount.
CUSTOMERS = [("K-1", "王芳", "zh_CN", "1000.00", "6222021234567890128"),
             ("K-2", "Zhou Min", "en", "2500.00", "6222021234567890136"),
             ("K-3", "李雷", "zh_CN", "480.50", "6222021234567890144")]
AMOUNTS = {"K-1": Decimal("100.00"), "K-2": Decimal("250.00"), "K-3": Decimal("48.05")}
REJECTED = "K-3"
# The customer whose page is read, in their own language (the page follows it), and its words.
PAID = {"en": ("K-2", "Paid: ", "250.00"), "zh": ("K-1", "已付款：", "100.00")}


def _entitlements_csv() -> bytes:
    rows = ["external_ref,order_ref,basis_amount,currency,basis_date,account_holder,bank,account"]
    rows += [f"{ref},SO-{ref},{basis},CNY,2026-03-01,{name},中国工商银行,{account}"
             for ref, name, _locale, basis, account in CUSTOMERS]
    return ("\r\n".join(rows) + "\r\n").encode("utf-8-sig")


@pytest.fixture
def affected(app, users):
    """An event with three affected customers (set up with services, as the customer
    import's own browser test covers that page)."""
    event = events.create_event(title="App 关停 / App shutdown", kind="incident",
                                severity="sev2", cause="system")
    for ref, name, locale, _basis, _account in CUSTOMERS:
        customers.create_customer(event, {"external_ref": ref, "name": name, "locale": locale,
                                          "email": f"{ref.lower()}@example.com"},
                                  actor=users[Role.AGENT])
    second_finance()
    db.session.commit()
    return event.id


class Shots:
    """Full-page screenshots named in the order taken, per language."""

    def __init__(self, lang: str) -> None:
        self.lang, self.count = lang, 0
        SHOTS.mkdir(exist_ok=True)

    def __call__(self, page: Page, name: str, *, full_page: bool = True) -> None:
        self.count += 1
        page.screenshot(path=str(SHOTS / f"{self.lang}-{self.count:02d}-{name}.png"),
                        full_page=full_page)


def _confirming(page: Page) -> None:
    """Accept the next confirm() dialog (htmx's hx-confirm)."""
    def accept(dialog: Dialog) -> None:
        dialog.accept()
    page.once("dialog", accept)


def _programme_link(page: Page, href_part: str):
    return page.locator(f".programme-nav a[href*='{href_part}']")


@pytest.mark.parametrize("lang", LOCALES)
def test_programme_from_entitlements_to_a_paid_customer(
        new_page, users, affected, run_worker, lang, tmp_path, console_errors) -> None:
    event_id, shot = affected, Shots(lang)
    locale = LOCALES[lang]

    # 1. The agent imports the entitlements from the event page.
    agent = new_page(locale=locale)
    sign_in_as(agent, users[Role.AGENT].email, lang)
    agent.goto(f"/events/{event_id}")
    shot(agent, "event")
    agent.locator(f"a[href$='/entitlements/event/{event_id}']").first.click()
    expect(agent).to_have_url(url_path(f"/entitlements/event/{event_id}"))
    shot(agent, "entitlements-empty")
    csv_path = tmp_path / "entitlements.csv"
    csv_path.write_bytes(_entitlements_csv())
    agent.locator("input[type=file][name=file]").set_input_files(str(csv_path))
    agent.locator(f"form[action$='/entitlements/event/{event_id}/import'] "
                  "button[type=submit]").click()
    expect(agent).to_have_url(re.compile(r"/entitlements/imports/\d+$"))
    run_worker()  # the check
    progress = agent.locator("#import-progress")
    confirm = progress.locator("form[action$='/confirm'] button[type=submit]")
    expect(confirm).to_be_visible()  # the page polled itself to the checked file
    expect(progress.locator("ul.figures li strong")).to_have_text(["3", "3", "0"])
    shot(agent, "entitlements-checked")
    confirm.click()
    expect(confirm).to_have_count(0)  # the confirmation went through; its job is queued
    run_worker()  # the import
    expect(progress.locator(".badge.ok")).to_be_visible()
    shot(agent, "entitlements-imported")

    # 2. The agent creates a programme: 10 % of each basis amount, paid proactively.
    agent.goto(f"/programmes/event/{event_id}")
    shot(agent, "programmes")
    agent.locator(f"a[href$='/programmes/event/{event_id}/new']").click()
    expect(agent).to_have_url(url_path(f"/programmes/event/{event_id}/new"))
    agent.locator("input[name=name_zh]").fill("App 关停退款")
    agent.locator("input[name=name_en]").fill("App shutdown refund")
    agent.locator("input[name=kind][value=refund]").check()
    agent.locator("input[name=calculation_date]").fill("2026-11-30")
    agent.locator("input[name=method][value=percentage]").check()
    agent.locator("input[name=percentage]").fill("10")
    agent.locator("textarea[name=terms_zh]").fill("我们将退还您订单金额的 10%。")
    agent.locator("textarea[name=terms_en]").fill("We refund 10 % of your order.")
    shot(agent, "programme-form")
    agent.locator("form.card button[type=submit]").click()
    expect(agent).to_have_url(re.compile(r"/programmes/\d+$"))
    programme_path = path_of(agent)
    programme_id = int(programme_path.rsplit("/", 1)[1])

    # 3. Its preview (an htmx partial) counts the three and totals them.
    expect(agent.locator("#eligible-count")).to_have_text("3")
    expect(agent.locator("#programme-preview .total")).to_have_text("398.05 CNY")
    wait_for_htmx(agent)
    shot(agent, "programme-preview")

    # 4. The agent asks legal to sign off.
    agent.locator("#programme-signoff form button[type=submit]").click()
    signoff_link = agent.locator("#programme-signoff a[href*='/signoffs/']")
    expect(signoff_link).to_be_visible()
    shot(agent, "programme-awaiting-signoff")

    # 5. Legal signs the programme off on its sign-off page.
    legal = new_page(locale=locale)
    sign_in_as(legal, users[Role.LEGAL].email, lang)
    legal.goto(programme_path)
    legal.locator("#programme-signoff a[href*='/signoffs/']").click()
    expect(legal).to_have_url(re.compile(r"/signoffs/\d+$"))
    expect(legal.locator("main")).to_contain_text("398.05")
    shot(legal, "signoff")
    legal.locator("input[name=decision][value=approved]").check()
    legal.locator("form[action$='/decide'] button[type=submit]").click()
    expect(legal).to_have_url(url_path("/signoffs/"))

    # 6. An admin creates the cases from the programme's run page; the bar reaches 100 %.
    admin = new_page(locale=locale)
    sign_in_as(admin, users[Role.ADMIN].email, lang)
    admin.goto(programme_path)
    shot(admin, "programme-signed-off")
    _programme_link(admin, f"/programmes/{programme_id}/run").click()
    expect(admin).to_have_url(url_path(f"/programmes/{programme_id}/run"))
    _confirming(admin)
    admin.locator("form[action$='/run/start'] button[type=submit]").click()
    expect(admin.locator("#programme-progress")).to_have_attribute("hx-get", re.compile("run"))
    run_worker()  # the generation job
    expect(admin.locator("#generation-bar")).to_have_attribute("value", "100")
    expect(admin.locator("#programme-progress [data-percent]")).to_have_text("100 %")
    expect(admin.locator("#programme-progress")).not_to_have_attribute("hx-get", re.compile("."))
    shot(admin, "programme-run-100")

    # 7. Finance user A prepares the bank batch from the programme's page.
    maker = new_page(locale=locale)
    sign_in_as(maker, users[Role.FINANCE].email, lang)
    maker.goto(programme_path)
    shot(maker, "programme-as-finance")
    # The programme page links to each of its pages; preparing a batch is finance's only.
    for part in ("/run", "/members", "/mail", "/unclaimed", "/payouts/new",
                 f"/payouts/programmes/{programme_id}/reconciliation"):
        expect(_programme_link(maker, part)).to_have_count(1)
    agent.goto(programme_path)
    expect(_programme_link(agent, "/mail")).to_have_count(1)
    expect(_programme_link(agent, "/payouts/")).to_have_count(0)
    _programme_link(maker, "/payouts/new").click()
    preview = maker.locator("#batch-preview")
    expect(preview.locator("ul.figures strong")).to_have_text(["3", "398.05 CNY"])
    shot(maker, "batch-prepare")
    _confirming(maker)
    preview.locator("button[type=submit]").click()
    expect(maker).to_have_url(re.compile(r"/payouts/\d+$"))
    batch_path = path_of(maker)
    batch_id = int(batch_path.rsplit("/", 1)[1])
    # A cannot release what A prepared: no button, and the page says who does.
    expect(maker.locator("form[action$='/release']")).to_have_count(0)
    expect(maker.locator("main p.muted").filter(has_text=re.compile(
        "another finance user|另一位财务人员"))).to_be_visible()
    shot(maker, "batch-prepared")

    # 8. Finance user B releases it.
    checker = new_page(locale=locale)
    sign_in_as(checker, "finance2@example.com", lang)
    checker.goto(batch_path)
    _confirming(checker)
    checker.locator("form[action$='/release'] button[type=submit]").click()
    expect(checker.locator("form[action$='/release']")).to_have_count(0)
    expect(checker.locator(f"form[action$='/payouts/{batch_id}/files']")).to_be_visible()
    shot(checker, "batch-released")

    # 9. A has the pain.001 made, downloads it and it is valid against the ISO schema.
    maker.goto(batch_path)
    files = maker.locator("#files")
    files.locator("select[name=format]").select_option(value="pain.001")
    files.locator("form button[type=submit]").click()
    expect(files.locator("li[id^=payout-file-]")).to_have_count(1)  # requested: job queued
    run_worker()  # the file job
    download_link = files.locator("a[href*='/download']")
    expect(download_link).to_be_visible()  # the row polled itself until the file was made
    shot(maker, "batch-file-ready")
    with maker.expect_download() as info:
        download_link.click()
    xml = Path(info.value.path()).read_bytes()
    xmlschema.XMLSchema(str(pain001.SCHEMA_PATH)).validate(xml.decode())
    ns = {"p": pain001.NAMESPACE}
    document = etree.fromstring(xml)
    transfers = {tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns):
                 Decimal(tx.findtext("p:Amt/p:InstdAmt", namespaces=ns))
                 for tx in document.iterfind(".//p:CdtTrfTxInf", ns)}
    assert sorted(transfers.values()) == sorted(AMOUNTS.values())
    assert document.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=ns) == "398.05"

    # 10. A uploads the bank's result: two paid, one rejected.
    by_amount = {amount: e2e for e2e, amount in transfers.items()}
    lines = ["end_to_end_id,status,amount,currency,bank_ref,reason"]
    for ref, amount in AMOUNTS.items():
        rejected = ref == REJECTED
        lines.append(f"{by_amount[amount]},{'rejected' if rejected else 'paid'},{amount},CNY,"
                     f"BR-{ref},{'AC04 account closed' if rejected else ''}")
    maker.locator(f"a[href$='/payouts/batches/{batch_id}/results']").first.click()
    expect(maker).to_have_url(url_path(f"/payouts/batches/{batch_id}/results"))
    shot(maker, "results-upload")
    maker.locator("input[type=file][name=file]").set_input_files(
        {"name": "bank-result.csv", "mimeType": "text/csv",
         "buffer": ("\n".join(lines) + "\n").encode()})
    maker.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    expect(maker).to_have_url(re.compile(r"/payouts/results/\d+$"))
    run_worker()  # the result job
    status = maker.locator("#result-status")
    expect(status.locator("ul.figures li strong")).to_have_text(["2", "1", "0"])
    shot(maker, "results-applied")

    # 11. The batch reconciliation shows the rejection: expected = paid + rejected + pending.
    maker.locator(f"a[href$='/payouts/batches/{batch_id}/reconciliation']").first.click()
    expect(maker).to_have_url(url_path(f"/payouts/batches/{batch_id}/reconciliation"))
    row = maker.locator("table.table tbody tr").filter(has=maker.locator("th", has_text="CNY"))
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("398.05")  # expected
    expect(cells.nth(1)).to_contain_text("350.00")  # paid
    expect(cells.nth(1)).to_contain_text("(2)")
    expect(cells.nth(2)).to_contain_text("48.05")  # rejected
    expect(cells.nth(2)).to_contain_text("(1)")
    expect(cells.nth(3)).to_contain_text("0.00")  # pending
    expect(cells.nth(4)).to_have_text("0.00")  # difference
    expect(maker.locator("main .badge.ok")).to_be_visible()  # reconciled to the cent
    shot(maker, "batch-reconciliation")
    maker.goto(batch_path)
    shot(maker, "batch-after-results")
    maker.goto(f"/payouts/programmes/{programme_id}/reconciliation")
    shot(maker, "programme-reconciliation")
    admin.goto(f"/programmes/{programme_id}/run")
    shot(admin, "programme-run-after-payouts")
    for page, path in ((maker, programme_path), (maker, batch_path)):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(path)
        shot(page, "phone", full_page=False)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    admin.goto(f"/programmes/{programme_id}/members")
    shot(admin, "members")
    admin.goto(f"/programmes/{programme_id}/unclaimed")
    expect(admin.locator(f"a[href$='/programmes/{programme_id}/mail/new/recontact']"))\
        .to_be_visible()
    shot(admin, "unclaimed")
    admin.goto(f"/programmes/{programme_id}/mail")
    shot(admin, "programme-mail")

    # 12. A paid customer's own page, through a personal link, says "paid".
    ref, paid_text, amount = PAID[lang]
    paid = db.session.scalar(select(Customer).where(Customer.external_ref == ref))
    _link, token = links.issue_personal(paid, sent_with="e2e test")
    customer = new_page(locale=locale)
    customer.goto(f"/my/{token}")
    expect(customer).to_have_url(url_path("/my"))
    offer = customer.locator(".programme-offer .status-paid")
    expect(offer).to_contain_text(paid_text)
    expect(offer).to_contain_text(amount)
    shot(customer, "my-paid")
    assert console_errors == []
