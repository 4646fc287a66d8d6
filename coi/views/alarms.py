"""Alarms: the inbox (the user's sites and roles, most severe and newest first), an alarm's
page with the rule that fired and its history, and the acknowledge and resolve forms."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, flash, render_template, request, url_for

from coi import kept
from coi.core.access import permission
from coi.core.alerting import Alerting
from coi.core.errors import InvalidInput
from coi.models import HOLDING_OUTCOMES, OUTCOMES, SECOND_DECISIONS, SEVERITIES
from coi.services import alarms, delivery, holds
from coi.services.loggers import evaluation
from coi.views import health
from coi.web import actor, carry_out, now, request_session

blueprint = Blueprint("alarms", __name__)

KINDS = ("custody", "temperature", "deadline")


def settings() -> Alerting:
    return current_app.extensions["coi.alerting"]  # type: ignore[no-any-return]


@blueprint.route("/alarms")
@permission("alarm.view")
def index() -> Any:
    state = request.args.get("state", "active")
    severity = request.args.get("severity") or None
    kind = request.args.get("kind") or None
    mine = request.args.get("mine") == "1"
    if state not in alarms.STATE_FILTERS or severity not in (None, *SEVERITIES) or kind not in (None, *KINDS):
        raise InvalidInput("Unknown filter: use the filters offered on the page.")
    rows = alarms.inbox(session=request_session(), actor=actor(), settings=settings(), state=state,
                        severity=severity, kind=kind)
    if mine:
        rows = [row for row in rows if row.told_to_me]
    found = holds.holds_by_case(session=request_session(),
                                case_ids=[row.alarm.case_id for row in rows if row.alarm.case_id])
    holding = {hold.alarm.id: hold for case_holds in found.values() for hold in case_holds}
    return render_template("alarms/list.html", rows=rows, holding=holding, state=state,
                           severity=severity, kind=kind,
                           mine=mine, states=alarms.STATE_FILTERS, severities=SEVERITIES, kinds=KINDS)


@blueprint.route("/alarms/<int:alarm_id>")
@permission("alarm.view")
def show(alarm_id: int) -> Any:
    db, me = request_session(), actor()
    found = alarms.detail(session=db, actor=me, alarm_id=alarm_id)
    alarm = found.alarm
    going_on = alarm.state == "acknowledged" and evaluation.still_going_on(session=db, now=now(), alarm=alarm)
    deliveries = delivery.delivery_log(db, alarm_id)
    return render_template(
        "alarms/show.html", found=found, deliveries=deliveries, outcomes=OUTCOMES, going_on=going_on,
        telling=None if deliveries else health.notifications_silence(db),
        second_decisions={key: OUTCOMES[key] for key in SECOND_DECISIONS},
        awaits_decision=alarm.state == "resolved" and alarm.outcome in HOLDING_OUTCOMES,
        may_acknowledge=alarms.may(session=db, actor=me, alarm=alarm, permission="alarm.acknowledge"),
        may_resolve=alarms.may(session=db, actor=me, alarm=alarm, permission="alarm.resolve"),
        kept=_kept())


@blueprint.route("/alarms/<int:alarm_id>/rule.json")
@permission("alarm.view")
def rule_json(alarm_id: int) -> Any:
    """The rule that fired, exactly as stored with the alarm, as a file to keep: the page shows
    it in words."""
    found = alarms.detail(session=request_session(), actor=actor(), alarm_id=alarm_id)
    response = current_app.response_class(
        json.dumps(found.rule, indent=2, ensure_ascii=False) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="alarm-{alarm_id}-rule.json"'
    return response


@blueprint.route("/alarms/<int:alarm_id>/acknowledge", methods=["POST"])
@permission("alarm.acknowledge")
def acknowledge(alarm_id: int) -> Any:
    def acknowledge_it() -> None:
        alarms.acknowledge(session=request_session(), now=now(), actor=actor(), alarm_id=alarm_id,
                           comment=request.form.get("comment", ""))

    return carry_out(acknowledge_it, back=url_for("alarms.show", alarm_id=alarm_id),
                     refused="Not acknowledged", done="Alarm acknowledged: escalation stopped.")


@blueprint.route("/alarms/<int:alarm_id>/resolve", methods=["POST"])
@permission("alarm.resolve")
def resolve(alarm_id: int) -> Any:
    def resolve_it() -> None:
        alarms.resolve(session=request_session(), now=now(), actor=actor(), alarm_id=alarm_id,
                       outcome=request.form.get("outcome", ""), comment=request.form.get("comment", ""),
                       password=request.form.get("password", ""),
                       deviation=request.form.get("deviation") or None)

    return carry_out(resolve_it, back=url_for("alarms.show", alarm_id=alarm_id), refused="Not resolved",
                     done="Alarm resolved and signed.")


@blueprint.route("/alarms/<int:alarm_id>/decide", methods=["POST"])
@permission("alarm.resolve")
def decide(alarm_id: int) -> Any:
    """QA's second, signed decision on a product its resolution quarantined."""
    def decide_it() -> None:
        alarms.decide(session=request_session(), now=now(), actor=actor(), alarm_id=alarm_id,
                      outcome=request.form.get("outcome", ""), comment=request.form.get("comment", ""),
                      password=request.form.get("password", ""),
                      deviation=request.form.get("deviation") or None)

    return carry_out(decide_it, back=url_for("alarms.show", alarm_id=alarm_id), refused="Not decided",
                     done="Decision on the quarantined product signed.")


def _kept() -> dict[str, str]:
    """What was typed into the resolve or decide form when the session ended, given back
    once after the login (`kept["form"]` says which form)."""
    for form in ("alarms.resolve", "alarms.decide"):
        entries = kept.take(form=form, user_id=actor().user_id)
        if entries is not None:
            flash(kept.NOTE, "info")
            return entries | {"form": form}
    return {}
