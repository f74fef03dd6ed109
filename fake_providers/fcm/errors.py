"""FCM error bodies as Google writes them: ``google.rpc.Status`` inside ``{"error": ...}``.

Every rejection the core makes is an :class:`FcmProblem`; rendering it gives the
same bytes over memory and over HTTP. The HTTP status and the top-level
``status`` string follow Google's FcmError table (``docs/sources.md#fcm``); where Google's
exact wording is unknown the message is PushLab's own (the codes are what
clients act on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from simulator.core.http import HttpResponse

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
QUOTA_FAILURE_TYPE = "type.googleapis.com/google.rpc.QuotaFailure"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"

# FcmError errorCode -> (HTTP status, google.rpc.Code name)
ERROR_CODES: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "UNREGISTERED": (404, "NOT_FOUND"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "INTERNAL": (500, "INTERNAL"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED"),
    "APNS_AUTH_ERROR": (401, "UNAUTHENTICATED"),
    "UNSPECIFIED_ERROR": (400, "INVALID_ARGUMENT"),
}

DEFAULT_MESSAGES: dict[str, str] = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNREGISTERED": "Requested entity was not found.",
    "SENDER_ID_MISMATCH": "SenderId mismatch",
    "QUOTA_EXCEEDED": "Quota exceeded for quota metric 'Send requests' and limit "
                      "'Send requests per minute' of service 'fcm.googleapis.com'.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "INTERNAL": "Internal error encountered.",
    "THIRD_PARTY_AUTH_ERROR": "Auth error from APNS or Web Push Service",
    "APNS_AUTH_ERROR": "Auth error from APNS or Web Push Service",
    "UNSPECIFIED_ERROR": "Unspecified error.",
}

UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.")


@dataclass(slots=True)
class FieldViolation:
    field: str | None
    description: str


@dataclass
class FcmProblem(Exception):
    """A request the FCM API refuses; carries everything its error body needs."""

    error_code: str | None  # FcmError errorCode, or None (auth, permission, bad JSON)
    message: str
    status: int = 400
    rpc_status: str = "INVALID_ARGUMENT"
    violations: list[FieldViolation] = field(default_factory=list)
    extra_details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    target: str | None = None  # the token or /topics/name, for traces and the activity log
    delay: float = 0.0  # scripted latency that comes with a scripted error

    def __str__(self) -> str:
        return f"{self.status} {self.error_code or self.rpc_status}: {self.message}"

    @property
    def reason(self) -> str:
        """The short code traces and activity logs show."""
        return self.error_code or self.rpc_status

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.error_code is not None:
            details.append({"@type": FCM_ERROR_TYPE, "errorCode": self.error_code})
        if self.violations:
            fvs = []
            for v in self.violations:
                entry: dict[str, str] = {}
                if v.field is not None:
                    entry["field"] = v.field
                entry["description"] = v.description
                fvs.append(entry)
            details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": fvs})
        details.extend(self.extra_details)
        err: dict[str, Any] = {"code": self.status, "message": self.message,
                               "status": self.rpc_status}
        if details:
            err["details"] = details
        return {"error": err}

    def response(self) -> HttpResponse:
        headers = {"content-type": "application/json; charset=UTF-8", **self.headers}
        return HttpResponse(self.status, headers, json.dumps(self.body()).encode())


def fcm_error(code: str, message: str | None = None, *,
              violations: list[FieldViolation] | None = None,
              headers: dict[str, str] | None = None) -> FcmProblem:
    """An error that carries an FcmError detail with its table status."""
    status, rpc = ERROR_CODES.get(code, (400, "INVALID_ARGUMENT"))
    return FcmProblem(code, message or DEFAULT_MESSAGES.get(code, code), status, rpc,
                      list(violations or []), headers=dict(headers or {}))


def invalid_field(field_path: str | None, description: str, *,
                  fcm_detail: bool = False) -> FcmProblem:
    """400 INVALID_ARGUMENT naming the offending field (a BadRequest detail)."""
    return FcmProblem("INVALID_ARGUMENT" if fcm_detail else None, description, 400,
                      "INVALID_ARGUMENT", [FieldViolation(field_path, description)])


def unauthenticated(reason: str) -> FcmProblem:
    """401 for a missing, unknown or expired OAuth token (no FcmError detail)."""
    info = {"@type": ERROR_INFO_TYPE, "reason": reason, "domain": "googleapis.com",
            "metadata": {"service": "fcm.googleapis.com",
                         "method": "google.firebase.fcm.v1.FcmService.SendMessage"}}
    return FcmProblem(None, UNAUTHENTICATED_MESSAGE, 401, "UNAUTHENTICATED",
                      extra_details=[info],
                      headers={"www-authenticate": 'Bearer realm="https://accounts.google.com/"'})


def permission_denied(project: str) -> FcmProblem:
    """403 for a project the caller's credentials do not cover."""
    return FcmProblem(None, f"Permission 'cloudmessaging.messages.create' denied on resource "
                            f"'//cloudresourcemanager.googleapis.com/projects/{project}' "
                            f"(or it may not exist).", 403, "PERMISSION_DENIED")


def not_found(path: str) -> FcmProblem:
    return FcmProblem(None, f"Requested entity was not found. ({path})", 404, "NOT_FOUND")


def method_not_allowed(method: str, allow: str = "POST") -> FcmProblem:
    """405 with the ``Allow`` header RFC 9110 requires."""
    return FcmProblem(None, f"Method {method} is not allowed here.", 405, "UNIMPLEMENTED",
                      headers={"allow": allow})
