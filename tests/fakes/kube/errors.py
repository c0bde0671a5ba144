"""`Status` failures shaped like the ones kube-apiserver returns (kind Status, status Failure, reason, code)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .resources import ResourceType


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason}
        if self.details is not None:
            doc["details"] = self.details
        doc["code"] = self.code
        return doc


def _details(rt: ResourceType, name: str | None, kind: str | None = None) -> dict:
    details: dict = {}
    if name:
        details["name"] = name
    if rt.group:
        details["group"] = rt.group
    details["kind"] = kind or rt.plural
    return details


def success_status(rt: ResourceType, name: str, uid: str | None) -> dict:
    details = _details(rt, name)
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def modified_conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    _details(rt, name))


def precondition_conflict(rt: ResourceType, name: str, what: str, want: str, have: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": Precondition failed: '
                    f"{what} in precondition: {want}, {what} in object meta: {have}",
                    _details(rt, name))


def apply_conflict(rt: ResourceType, name: str, conflicts: list[tuple[str, str]]) -> ApiError:
    """conflicts: (manager, field path like `.spec.replicas`)."""
    causes = [{"reason": "FieldManagerConflict",
               "message": f'conflict with "{manager}" using {rt.api_version}', "field": field}
              for manager, field in conflicts]
    if len(conflicts) == 1:
        manager, field = conflicts[0]
        message = f'Apply failed with 1 conflict: conflict with "{manager}" using {rt.api_version}: {field}'
    else:
        lines = "\n".join(f'- conflict with "{m}" using {rt.api_version}: {f}' for m, f in conflicts)
        message = f"Apply failed with {len(conflicts)} conflicts: conflicts with managers:\n{lines}"
    details = _details(rt, name)
    details["causes"] = causes
    return ApiError(409, "Conflict", message, details)


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, cause reason e.g. FieldValueRequired, message e.g. `Required value`)."""
    rendered = [f"{field}: {message}" for field, _reason, message in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = _details(rt, name, kind=rt.kind)
    details["causes"] = [{"reason": reason, "message": message, "field": field}
                         for field, reason, message in causes]
    return ApiError(422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - '
                    f'accepted media types include: application/json-patch+json, application/merge-patch+json, '
                    f'application/apply-patch+yaml (got "{content_type}")')


def page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")
