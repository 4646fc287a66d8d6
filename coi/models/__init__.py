"""The tables. Importing this package registers every model on `SQLModel.metadata`."""

from coi.core.vocabulary import ROLES, SITE_KINDS, UNIT_KINDS
from coi.models.alarm import (
    ALARM_STATES,
    DEVIATION_MAX,
    HOLDING_OUTCOMES,
    OUTCOMES,
    SECOND_DECISIONS,
    SEVERITIES,
    Alarm,
    AlarmDeviation,
    AlarmEvent,
    Notification,
    NotificationAttempt,
)
from coi.models.audit import AuditEntry, AuditEntrySite
from coi.models.case import CASE_STATES, Case, CoiSequence, case_sites, coi_of
from coi.models.custody import COMPLETING_KINDS, CustodyEvent, LedgerCheckpoint
from coi.models.label import Label, LabelKey, LabelRevocation
from coi.models.logger_day import LoggerDaySummary
from coi.models.logger_format import LoggerFormat
from coi.models.outbox import OutboxMessage
from coi.models.patient import Patient
from coi.models.product import Product, ProductRoute
from coi.models.scheduler_run import SCHEDULER_GROUPS, SchedulerRun
from coi.models.seal import RecordSeal
from coi.models.shipment import (
    SHIPMENT_LEGS,
    SHIPMENT_STATES,
    LoggerClockCheck,
    LoggerFile,
    LoggerFileChunk,
    LoggerFileLink,
    LoggerFileResult,
    LoggerReading,
    Shipment,
    ShipmentLogger,
)
from coi.models.signature import MEANINGS, Signature
from coi.models.site import Site
from coi.models.unit import UNIT_STATES, Unit, serial_of
from coi.models.user import ApiToken, LoginAttempt, RoleGrant, User, WebSession

# Evidence: the database refuses UPDATE and DELETE on these (migration triggers).
APPEND_ONLY_TABLES = (
    "audit_entry", "signature", "login_attempt", "label_key", "label", "label_revocation",
    "custody_event", "ledger_checkpoint", "logger_file", "logger_file_chunk", "logger_file_result",
    "logger_reading", "alarm_event", "notification_attempt", "logger_clock_check",
    "audit_entry_site", "record_seal", "alarm_deviation", "logger_file_link",
    "logger_day_summary")

__all__ = [
    "ALARM_STATES",
    "APPEND_ONLY_TABLES",
    "COMPLETING_KINDS",
    "SCHEDULER_GROUPS",
    "SEVERITIES",
    "Alarm",
    "AlarmDeviation",
    "AlarmEvent",
    "DEVIATION_MAX",
    "HOLDING_OUTCOMES",
    "SECOND_DECISIONS",
    "Notification",
    "NotificationAttempt",
    "OUTCOMES",
    "OutboxMessage",
    "CASE_STATES",
    "MEANINGS",
    "ROLES",
    "SHIPMENT_LEGS",
    "SHIPMENT_STATES",
    "SITE_KINDS",
    "UNIT_KINDS",
    "UNIT_STATES",
    "ApiToken",
    "AuditEntry",
    "AuditEntrySite",
    "Case",
    "Label",
    "LabelKey",
    "LabelRevocation",
    "LedgerCheckpoint",
    "CoiSequence",
    "CustodyEvent",
    "LoggerDaySummary",
    "LoggerFile",
    "LoggerFileChunk",
    "LoggerFileLink",
    "LoggerClockCheck",
    "LoggerFormat",
    "LoggerFileResult",
    "LoggerReading",
    "LoginAttempt",
    "Patient",
    "Product",
    "ProductRoute",
    "RecordSeal",
    "RoleGrant",
    "SchedulerRun",
    "Shipment",
    "ShipmentLogger",
    "Signature",
    "Site",
    "Unit",
    "User",
    "WebSession",
    "case_sites",
    "coi_of",
    "serial_of",
]
