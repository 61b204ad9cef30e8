"""Mailing greetings: only the declared fields, in every branch; arithmetic, loops, output and
time are bounded, so a greeting can neither read nor hang anything."""

from __future__ import annotations

import time

import pytest

from portal.errors import RuleViolation
from portal.mailings import compose

# The save-time check fills a greeting in once, as 王芳: anything behind this test used to pass.
HIDDEN = "{%% if name != '王芳' %%}%s{%% endif %%}"


def refusal(source: str) -> str:
    started = time.monotonic()
    with pytest.raises(RuleViolation) as err:
        compose.check_greeting(source, "greeting_zh")
    assert time.monotonic() - started < 1, "the check must be quick"
    assert err.value.field == "greeting_zh"
    return err.value.message


@pytest.mark.parametrize("inner", [
    "{{ secret }}", "{{ config }}", "{{ loop }}", "{{ range }}",
    "{{ name.__class__.__mro__ }}", "{{ name['__class__'] }}", "{{ name[0:1] }}",
    "{{ name.upper() }}", "{{ lipsum() }}", "{{ range(10)|list }}", "{{ cycler(1) }}",
    "{% set x = name %}{{ x }}", "{% set x %}{{ name }}{% endset %}",
    "{{ name|center(999999999) }}", "{{ name|replace('', name) }}", "{{ '%s'|format(name) }}",
    "{{ name|join(name) }}", "{% if name is callable %}x{% endif %}",
    "{% include 'base.html' %}", "{% macro m() %}x{% endmacro %}", "{% with x = 1 %}{% endwith %}",
    "{% filter upper %}x{% endfilter %}", "{{ {'a': name} }}",
    "{% for c in name recursive %}{{ loop(c) }}{% endfor %}",
    "{{ 9**(9**7) }}", "{{ 10**5000 }}", "{{ 99999999999999999999 }}", "{{ 1e999 }}",
    "{{ " + "(" * 300 + "name" + ")" * 300 + " }}",
])
def test_nothing_outside_the_declared_fields_passes_in_any_branch(app, inner: str) -> None:
    refusal(HIDDEN % inner)


def test_the_reason_names_the_unknown_field_and_what_is_allowed(app) -> None:
    message = refusal(HIDDEN % "{{ secret }}")
    assert "secret" in message and "case_amount" in message
    assert "Powers" in refusal("{{ 9**(9**7) }}")
    assert "center" in refusal("{{ name|center(9) }}")


@pytest.mark.parametrize("source", [
    "{{ 999999999 * 999999999 }}",  # each operand is small, the product is not
    "{{ name * 1000000 }}",  # repeating text
    "{{ '%09999d' % 1 }}",  # formatting text
    "{% for a in 'abcdefghij' %}{% for b in 'abcdefghij' %}{% for c in 'abcdefghij' %}"
    "{% endfor %}{% endfor %}{% endfor %}",  # 1,000 loop rounds
    "{% for c in 'abc' %}" + "x" * 900 + "{% endfor %}",  # 2,700 characters of output
])
def test_arithmetic_loops_and_output_are_capped(app, source: str) -> None:
    refusal(source)


def test_ordinary_greetings_still_work(app) -> None:
    for source in (*compose.DEFAULT_GREETINGS.values(), "Hello {{ name|title }}!",
                   "{% if company %}{{ company }}{% else %}{{ name }}{% endif %}",
                   "{% for part in ('a', 'b') %}{{ part|upper }}{% endfor %}",
                   "{{ (1 + 2) * 3 }} {{ name ~ '!' }} {{ name|length > 1 }}",
                   "{% if case_ref is defined and case_ref %}{{ case_ref }}{% endif %}"):
        assert compose.check_greeting(f"  {source}  ", "greeting_en") == source.strip()


def test_filling_in_a_greeting_has_a_time_limit(app) -> None:
    app.config["MAILING_GREETING_SECONDS"] = 0
    assert "too long" in refusal("Dear {{ name }}")
    app.config["MAILING_GREETING_SECONDS"] = 0.5
    assert compose.check_greeting("Dear {{ name }}", "greeting_zh") == "Dear {{ name }}"


@pytest.mark.parametrize("source", [
    "{{ name|truncate(-5) }}",  # a filter's own assertion (AssertionError), not a 500
    "Dear {{ name }}{% if company %}{{ company|round }}{% endif %}",  # only with a company
    "Dear {{ name }}{% if not case_ref %}{{ name|truncate(-1) }}{% endif %}",  # without a case
])
def test_a_greeting_that_fails_for_some_customers_is_refused_when_saved(app,
                                                                        source: str) -> None:
    assert "fails" in refusal(source)


def test_a_broken_greeting_is_explained_in_the_readers_language(app) -> None:
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("zh_CN"):
        syntax = refusal("Dear {% if name %}{{ name }}")
        filling = refusal("Dear {{ name }}{% if company %}{{ company|round }}{% endif %}")
    assert "模板第 1 行的写法无效" in syntax and "{% endif %}" in syntax
    assert "模板对部分客户无法填写" in filling
