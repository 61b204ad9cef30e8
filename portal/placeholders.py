"""Texts with placeholders written by staff (mailing greetings, canned case replies): a small
part of Jinja, checked when saved and bounded when rendered.

Such a text is rendered for every recipient, so it must not be able to reach anything but the
declared fields, nor to make a worker compute forever. Two layers:

* when saved (and again when a job compiles it), the whole template is read, every branch
  included: only the declared fields (and loop variables), ``if``/``for``, comparisons,
  arithmetic without powers, and a short list of filters and tests. No attribute or item
  access, no calls, no ``set``, ``macro``, ``include``…
* when rendered, a sandbox refuses arithmetic on huge numbers and repeating text, a budget
  caps loop rounds and output length, and a deadline (checked at every output piece, loop
  round and operation) bounds the time. Each step being small, the deadline holds without
  signals, so it works in a web thread as well as in a mail worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

# ``amount`` and ``deadline``: what a remediation programme offers the customer and until when
# (empty outside a programme's mailing); ``my_url``: the link to the customer's own page.
FIELDS = ("name", "company", "case_ref", "case_amount", "amount", "deadline", "my_url")
SAMPLE = {"name": "王芳", "company": "", "case_ref": "C-2026-00001", "case_amount": "CNY 1.00",
          "amount": "¥1.00", "deadline": "2026年12月31日", "my_url": "https://example.org/my/x"}
# The save-time trial: customers unlike each other, so that a branch taken only for some of
# them is tried too (a customer without a case has empty case fields).
TRIAL_VALUES = (SAMPLE, {"name": "Anna Schmidt", "company": "Schmidt GmbH", "case_ref": "",
                         "case_amount": "", "amount": "", "deadline": "",
                         "my_url": "https://example.org/my/y"})
MAX_NUMBER = 10**15
MAX_LOOP_ROUNDS = 200
MAX_OUTPUT_CHARS = 2000
FILTERS = ("abs", "capitalize", "default", "d", "e", "escape", "first", "last", "length",
           "lower", "round", "string", "striptags", "title", "trim", "truncate", "upper",
           "wordcount")
TESTS = ("defined", "undefined", "none", "string", "number", "eq", "ne", "equalto", "lt", "le",
         "gt", "ge", "lessthan", "greaterthan", "in", "lower", "upper", "odd", "even",
         "divisibleby")
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.If,
    nodes.For, nodes.CondExpr, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not,
    nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod,
    nodes.Neg, nodes.Pos, nodes.Filter, nodes.Test, nodes.Tuple, nodes.List, nodes.Keyword,
)
_TAGS = {nodes.Assign: "{% set %}", nodes.AssignBlock: "{% set %}", nodes.Macro: "{% macro %}",
         nodes.CallBlock: "{% call %}", nodes.FilterBlock: "{% filter %}",
         nodes.With: "{% with %}", nodes.Include: "{% include %}", nodes.Import: "{% import %}",
         nodes.FromImport: "{% from %}", nodes.Extends: "{% extends %}",
         nodes.Block: "{% block %}", nodes.ScopedEvalContextModifier: "{% autoescape %}",
         nodes.Dict: "{…}"}
_LOOP_FILTER = "_placeholder_loop"


def format_amount(amount: Decimal, currency: str) -> str:
    """An amount as the ``case_amount`` field shows it."""
    return f"{currency} {amount:,.2f}"


class PlaceholderError(TemplateError):
    """A template that may not be used, or that failed for one recipient; the message says
    why, in the reader's language."""


@dataclass
class _Budget:
    deadline: float
    rounds_left: int = MAX_LOOP_ROUNDS

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise PlaceholderError(_("The template took too long to fill in."))


_budget: ContextVar[_Budget | None] = ContextVar("placeholder_budget", default=None)


def _current_budget() -> _Budget:
    budget = _budget.get()
    if budget is None:
        raise RuntimeError("templates are filled in only through Template.render")
    return budget


def _check_number(value: Any) -> None:
    if isinstance(value, int | float | Decimal) and not (
            math.isfinite(value) and abs(value) <= MAX_NUMBER):
        raise PlaceholderError(_("Numbers in a template must stay below %(limit)s.",
                              limit=format(MAX_NUMBER, ",")))


class _Sandbox(SandboxedEnvironment):
    """Every arithmetic operator goes through :meth:`call_binop` (which also keeps Jinja
    from folding ``9**(9**7)`` while compiling)."""

    intercepted_binops = frozenset(("+", "-", "*", "/", "//", "%", "**"))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _current_budget().tick()
        if operator == "**":
            raise PlaceholderError(_("Powers (**) are not allowed in a template."))
        numbers = all(isinstance(v, int | float | Decimal) for v in (left, right))
        if operator != "+" and not numbers:
            raise PlaceholderError(_("Only numbers can be used with %(operator)s in a template.",
                                  operator=operator))
        for value in (left, right):
            _check_number(value)
        result = self.binop_table[operator](left, right)
        _check_number(result)
        return result


@pass_context  # never folded into a constant while compiling
def _capped_loop(context: Context, items: Iterable[Any]) -> Iterator[Any]:
    """Wrapped around every ``for``: all loops of one render share one budget of rounds."""
    budget = _current_budget()
    for item in items:
        budget.tick()
        if budget.rounds_left <= 0:
            raise PlaceholderError(_("The template repeats too often (at most %(n)d loop rounds "
                                  "in all).", n=MAX_LOOP_ROUNDS))
        budget.rounds_left -= 1
        yield item


_env = _Sandbox(undefined=StrictUndefined, autoescape=False)
_env.filters[_LOOP_FILTER] = _capped_loop


def _refusal(node: nodes.Node, loop_names: set[str]) -> str | None:
    """Why this node may not appear in a template, or None."""
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Slice):
        return _("Reading attributes or items (.x or [x]) is not allowed in a template.")
    if isinstance(node, nodes.Call):
        return _("Calling functions is not allowed in a template.")
    if isinstance(node, nodes.Pow):
        return _("Powers (**) are not allowed in a template.")
    if isinstance(node, nodes.Filter) and node.name not in FILTERS:
        return _("The filter %(name)s is not allowed in a template; use one of: %(allowed)s.",
                 name=node.name, allowed=", ".join(FILTERS))
    if isinstance(node, nodes.Test) and node.name not in TESTS:
        return _("The test %(name)s is not allowed in a template; use one of: %(allowed)s.",
                 name=node.name, allowed=", ".join(TESTS))
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in (
            *FIELDS, *loop_names):
        return _unknown_names({node.name})
    if isinstance(node, nodes.For) and node.recursive:
        return _("Recursive loops are not allowed in a template.")
    if isinstance(node, nodes.Const) and isinstance(node.value, int | float):
        try:
            _check_number(node.value)
        except PlaceholderError as err:
            return err.message
    if not isinstance(node, _ALLOWED_NODES):
        what = _TAGS.get(type(node), type(node).__name__)
        return _("%(what)s is not allowed in a template.", what=what)
    return None


def _unknown_names(names: set[str]) -> str:
    return _("A template may use only %(fields)s; %(names)s is unknown.",
             fields=", ".join(FIELDS), names=", ".join(sorted(names)))


def _check(tree: nodes.Template) -> None:
    """Refuse anything outside the allowed language, in any branch."""
    loop_names = {n.name for loop in tree.find_all(nodes.For)
                  for n in (loop.target, *loop.target.find_all(nodes.Name))
                  if isinstance(n, nodes.Name)}
    for node in (tree, *tree.find_all(nodes.Node)):
        reason = _refusal(node, loop_names)
        if reason:
            raise PlaceholderError(reason)
    unknown = meta.find_undeclared_variables(tree) - set(FIELDS)
    if unknown:
        raise PlaceholderError(_unknown_names(unknown))


class Template:
    """A checked, compiled template; :meth:`render` fills it in for one recipient."""

    def __init__(self, source: str) -> None:
        try:
            tree = _env.parse(source)
            _check(tree)
            for loop in tree.find_all(nodes.For):
                loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None,
                                         lineno=loop.lineno)
            self._template = _env.from_string(tree)
        except PlaceholderError:
            raise
        except TemplateSyntaxError as err:
            raise PlaceholderError(_(
                "The template is not valid on line %(line)d: check that every {{ }} and "
                "{%% %%} is closed and that every {%% if %%} has its {%% endif %%}. (Details: "
                "%(error)s)", line=err.lineno, error=err.message or type(err).__name__)
            ) from None
        except TemplateError as err:
            raise PlaceholderError(_("This template cannot be used: %(error)s",
                                  error=err.message or type(err).__name__)) from None
        except RecursionError:  # ((((…)))) nested hundreds deep: Jinja's parser recurses
            raise PlaceholderError(_("The template is nested too deeply.")) from None

    def render(self, values: dict[str, str]) -> str:
        """The filled-in template, or PlaceholderError saying why it cannot be."""
        seconds = float(current_app.config["MAILING_GREETING_SECONDS"])
        budget = _Budget(deadline=time.monotonic() + seconds)
        token = _budget.set(budget)
        pieces: list[str] = []
        length = 0
        values = {**dict.fromkeys(FIELDS, ""), **values}  # a field a caller lacks is empty
        try:
            for piece in self._template.generate(values):
                budget.tick()
                length += len(piece)
                if length > MAX_OUTPUT_CHARS:
                    raise PlaceholderError(_("The template is too long once filled in (at most "
                                          "%(n)d characters).", n=MAX_OUTPUT_CHARS))
                pieces.append(piece)
        except PlaceholderError:
            raise
        except Exception as err:  # any failure of the author's template is its failure
            raise PlaceholderError(_(
                "The template fails for some customers (for example one without a company or "
                "a case): change it so that it works for everyone. (Details: %(error)s)",
                error=str(err) or type(err).__name__)) from None
        finally:
            _budget.reset(token)
        return "".join(pieces).strip()


class BrokenTemplate:
    """Stands in for a stored template that no longer passes the check (saved before a rule
    existed): every recipient's message fails with the reason, and the job goes on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def render(self, values: dict[str, str]) -> str:
        raise PlaceholderError(self.reason)


def compile_for_sending(source: str) -> Template | BrokenTemplate:
    try:
        return Template(source)
    except PlaceholderError as err:
        return BrokenTemplate(err.message or "")


def check(source: str) -> str:
    """The template as it will be stored, or PlaceholderError: compiled, checked in every
    branch, and tried with unlike sample customers."""
    source = source.strip()
    template = Template(source)
    for values in TRIAL_VALUES:
        template.render(values)
    return source
