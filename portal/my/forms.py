"""Forms of the customer page."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length

from portal.cases.customer_side import MAX_MESSAGE
from portal.my.lookup import MAX_REF


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Your message"), validators=[
        DataRequired(_l("Write your message.")),
        Length(max=MAX_MESSAGE, message=_l("At most %(max)d characters."))])


class CheckForm(FlaskForm):
    """"Check my case". Also on the public notice pages, which are cached for everyone and
    so carry no CSRF token: the view checks that the form came from this site instead
    (``Origin``, else ``Referer``)."""

    class Meta:
        csrf = False

    email = StringField(_l("Your e-mail address"), filters=[_strip], validators=[
        DataRequired(_l("Enter the e-mail address we have for you.")),
        Length(max=254), Email(_l("Enter an e-mail address, such as name@example.com."))])
    ref = StringField(_l("Order number or case number"), filters=[_strip], validators=[
        DataRequired(_l("Enter an order number or a case number.")),
        Length(max=MAX_REF, message=_l("At most %(max)d characters."))])
