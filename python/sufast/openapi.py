"""The OpenAPI 3.1 document of an App, built from its routes as FastAPI
builds its own (``app.openapi()``), and the ``/docs`` (Swagger UI) and
``/redoc`` (ReDoc) pages that show it.

Parameters come from the same ``Param`` objects a request is read with
(a dependency's count too); bodies and response models get the JSON
Schema of their type from ``sufast.schemas``."""

from __future__ import annotations

import html
import http.client
import inspect
import json
import logging
import re
import typing
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from .exceptions import RouteWarning
from .models import DEFAULT_RESPONSE_MODEL, response_model_of
from .params import Arguments, Body, Param, path_parameters
from .responses import BODILESS, HTMLResponse, JSONResponse, Response
from .routing import Route

from .schemas import REF_PREFIX, Schemas, _component_name, _EMPTY, _UNIONS

__all__ = ["Schemas", "get_openapi", "get_redoc_html", "get_swagger_ui_html", "operation_info", "openapi_routes"]

logger = logging.getLogger("sufast")

SWAGGER_JS_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
REDOC_JS_URL = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"

# A path parameter without an annotation has its convertor's type.
_CONVERTORS = {"int": {"type": "integer"}, "float": {"type": "number"}, "uuid": {"type": "string", "format": "uuid"}}

# FastAPI's schemas of a 422, with the ``input`` and ``ctx`` an error
# may carry beside what it always has.
_VALIDATION_ERROR = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {"title": "Location", "type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
        "input": {"title": "Input"},
        "ctx": {"title": "Context", "type": "object"},
    },
    "required": ["loc", "msg", "type"],
}
_HTTP_VALIDATION_ERROR = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "array", "items": {"$ref": REF_PREFIX + "ValidationError"}}},
}
_STATUS_RANGES = {"1XX": "Information", "2XX": "Success", "3XX": "Redirection", "4XX": "Client Error", "5XX": "Server Error", "DEFAULT": "Default Response"}


# Routes -> the document ------------------------------------------------------


def operation_info(
    *,
    status_code: int = 200,
    response_model: Any = DEFAULT_RESPONSE_MODEL,
    dependencies: Sequence[Any] = (),
    summary: Optional[str] = None,
    description: Optional[str] = None,
    responses: Optional[Mapping[Any, Mapping[str, Any]]] = None,
    operation_id: Optional[str] = None,
    include_in_schema: bool = True,
    deprecated: Optional[bool] = None,
) -> Dict[str, Any]:
    """What a route keeps for its OpenAPI operation, checked: raises
    ``TypeError`` or ``ValueError`` for a value of the wrong kind."""
    for what, value in (("summary", summary), ("description", description), ("operation_id", operation_id)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{what} must be a str, got {value!r}")
    if not isinstance(include_in_schema, bool):
        raise TypeError(f"include_in_schema must be True or False, got {include_in_schema!r}")
    if deprecated is not None and not isinstance(deprecated, bool):
        raise TypeError(f"deprecated must be True, False or None, got {deprecated!r}")
    if responses is not None and not isinstance(responses, Mapping):
        raise TypeError(f"responses must be a dict of status code to response, got {responses!r}")
    for key, value in (responses or {}).items():
        if not isinstance(value, Mapping):
            raise TypeError(f"responses[{key!r}] must be a dict (description, model, content, ...), got {value!r}")
        code = str(key).upper()
        if not (code in _STATUS_RANGES or (code.isdigit() and 100 <= int(code) <= 599)):
            raise ValueError(f"responses: {key!r} is not a status code, 1XX to 5XX or 'default'")
    return {
        "status_code": status_code,
        "response_model": response_model,
        "dependencies": list(dependencies),
        "summary": summary,
        "description": description,
        "responses": {key: dict(value) for key, value in (responses or {}).items()},
        "operation_id": operation_id,
        "include_in_schema": include_in_schema,
        "deprecated": deprecated,
    }


def get_openapi(
    *,
    title: str,
    version: str,
    routes: Sequence[Route],
    openapi_version: str = "3.1.0",
    description: Optional[str] = None,
) -> Dict[str, Any]:
    """The OpenAPI document of ``routes`` (those with
    ``include_in_schema``), as a dict ready for JSON."""
    info: Dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    schemas = Schemas()
    paths: Dict[str, Dict[str, Any]] = {}
    operation_ids: Set[str] = set()
    for route in routes:
        if not getattr(route, "include_in_schema", True):
            continue
        operation = _operation(route, schemas)
        if operation["operationId"] in operation_ids:
            warnings.warn(f"route {route.name}: duplicate OpenAPI operationId {operation['operationId']!r}; give it operation_id=", RouteWarning, stacklevel=2)
        operation_ids.add(operation["operationId"])
        paths.setdefault(_path_format(route.path), {})[route.method.lower()] = operation
    document: Dict[str, Any] = {"openapi": openapi_version, "info": info, "paths": paths}
    if schemas.components:
        document["components"] = {"schemas": {name: schemas.components[name] for name in sorted(schemas.components)}}
    return document


def _path_format(path: str) -> str:
    """``/items/{id:int}`` as OpenAPI writes it: ``/items/{id}``."""
    return re.sub(r"\{([^{}:]+):[^{}]+\}", r"{\1}", path)


def _texts(route: Route) -> Tuple[str, Optional[str]]:
    """The summary and description: ``summary=`` and ``description=``, else
    the docstring's first line and the rest, else the handler's name."""
    summary, description = getattr(route, "summary", None), getattr(route, "description", None)
    doc = inspect.cleandoc(getattr(route.endpoint, "__doc__", None) or "").split("\f")[0].strip()
    if summary is None and doc:
        first, _, rest = doc.partition("\n")
        summary = first.strip()
        doc = rest.strip()
    if summary is None:
        summary = _name_of(route.endpoint).replace("_", " ").title()
    return summary, description if description is not None else (doc or None)


def _name_of(endpoint: Callable[..., Any]) -> str:
    return getattr(endpoint, "__name__", None) or type(endpoint).__name__


def _operation_id(route: Route) -> str:
    """``operation_id=``, else FastAPI's: ``read_item_items__item_id__get``."""
    given = getattr(route, "operation_id", None)
    if given:
        return given
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', _name_of(route.endpoint) + _path_format(route.path))}_{route.method.lower()}"


def _operation(route: Route, schemas: Schemas) -> Dict[str, Any]:
    operation: Dict[str, Any] = {}
    if route.tags:
        operation["tags"] = list(route.tags)
    operation["summary"], description = _texts(route)
    if description:
        operation["description"] = description
    operation["operationId"] = operation_id = _operation_id(route)
    if getattr(route, "deprecated", None):
        operation["deprecated"] = True
    found = _Inputs(route)
    parameters = found.parameters(schemas)
    if parameters:
        operation["parameters"] = parameters
    body = found.request_body(schemas, operation_id)
    if body is not None:
        operation["requestBody"] = body
    responses = operation["responses"] = _responses(route, schemas)
    if (parameters or body is not None) and not any(key in responses for key in ("422", "4XX", "default")):
        responses["422"] = {"description": "Validation Error", "content": {"application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}}}
        schemas.components.setdefault("ValidationError", _VALIDATION_ERROR)
        schemas.components.setdefault("HTTPValidationError", _HTTP_VALIDATION_ERROR)
    return operation


class _Inputs:
    """What a route reads from a request, its dependencies' included:
    the parameters, and the body (JSON, raw, or a form)."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.simple: List[Param] = []
        #: (param, embedded): embedded ones are a field of a JSON object.
        self.bodies: List[Tuple[Param, bool]] = []
        self.form: List[Param] = []
        seen: Set[Any] = set()
        where = f"route {route.name}: handler {_name_of(route.endpoint)}"
        self._walk(Arguments(route.endpoint, route.path, where), route.endpoint, seen)
        for depends in getattr(route, "dependencies", ()):
            if depends.dependency not in seen:
                seen.add(depends.dependency)
                self._walk(Arguments(depends.dependency, route.path, where), depends.dependency, seen)

    def _walk(self, arguments: Arguments, call: Callable[..., Any], seen: Set[Any]) -> None:
        embeddable = [p for p in arguments.params if p.source == "body" and getattr(p.extract, "embeddable", False)]
        for param in arguments.params:
            if param.source == "depends" and param.dependency is not None:
                if param.dependency.call not in seen:
                    seen.add(param.dependency.call)
                    self._walk(param.dependency.arguments, param.dependency.call, seen)
            elif param.source in ("path", "query", "header", "cookie"):
                self.simple.append(param)
            elif param.source == "body":
                embedded = param in embeddable and (len(embeddable) > 1 or _embeds(call, param.name))
                self.bodies.append((param, embedded))
            elif param.source in ("form", "file"):
                self.form.append(param)

    def parameters(self, schemas: Schemas) -> List[Dict[str, Any]]:
        found: Dict[Tuple[str, str], Dict[str, Any]] = {}
        convertors = dict(path_parameters(self.route.path))
        for param in self.simple:
            if param.source == "path" and param.annotation is _EMPTY:
                schema = {**_CONVERTORS.get(convertors.get(param.key, "str"), {"type": "string"}), "title": param.name.replace("_", " ").title()}
            else:
                schema = schemas.field(param.name, param.annotation, param.default)
            parameter = {"name": param.key, "in": param.source, "required": param.required, "schema": schema}
            earlier = found.get((param.source, param.key))
            if earlier is None or (parameter["required"] and not earlier["required"]):
                found[(param.source, param.key)] = parameter
        # A path parameter only the Request reads is declared by its convertor.
        for name, convertor in path_parameters(self.route.path):
            if ("path", name) not in found:
                schema = {**_CONVERTORS.get(convertor, {"type": "string"}), "title": name.replace("_", " ").title()}
                found[("path", name)] = {"name": name, "in": "path", "required": True, "schema": schema}
        return list(found.values())

    def request_body(self, schemas: Schemas, operation_id: str) -> Optional[Dict[str, Any]]:
        if self.form:
            return self._form_body(schemas, operation_id)
        embedded = [param for param, embed in self.bodies if embed]
        if embedded:
            name = _component_name(f"Body_{operation_id}")
            schemas.components[name] = _embedding(name, embedded, schemas)
            required = any(param.required for param in embedded)
            return _body({"$ref": REF_PREFIX + name}, "application/json", required)
        if not self.bodies:
            return None
        param = self.bodies[0][0]
        if param.annotation is bytes and not getattr(param.extract, "embeddable", False):
            return _body({"type": "string", "format": "binary"}, "application/octet-stream", True)
        return _body(schemas.field(param.name, param.annotation, param.default), "application/json", param.required)

    def _form_body(self, schemas: Schemas, operation_id: str) -> Dict[str, Any]:
        name = _component_name(f"Body_{operation_id}")
        schemas.components[name] = _embedding(name, self.form, schemas)
        files = any(param.source == "file" or _is_upload(param.annotation) for param in self.form)
        media = "multipart/form-data" if files else "application/x-www-form-urlencoded"
        return _body({"$ref": REF_PREFIX + name}, media, any(param.required for param in self.form))


def _embeds(call: Callable[..., Any], name: str) -> bool:
    """Whether ``call``'s parameter ``name`` is ``Body(embed=True)``."""
    try:
        parameter = inspect.signature(call).parameters[name]
    except (TypeError, ValueError, KeyError):
        return False
    try:
        annotation = typing.get_type_hints(call, include_extras=True).get(name, parameter.annotation)
    except Exception:
        annotation = parameter.annotation
    markers = [parameter.default]
    if typing.get_origin(annotation) is typing.Annotated:
        markers.extend(typing.get_args(annotation)[1:])
    return any(isinstance(marker, Body) and marker.embed for marker in markers)


def _is_upload(annotation: Any) -> bool:
    """An uploaded file (``UploadFile``, or a list of them), by name."""
    inner = typing.get_args(annotation)[0] if typing.get_origin(annotation) in (list, *_UNIONS) and typing.get_args(annotation) else annotation
    return getattr(inner, "__name__", "") == "UploadFile"


def _embedding(name: str, params: Sequence[Param], schemas: Schemas) -> Dict[str, Any]:
    """An object with one property per parameter, as FastAPI's ``Body_...``."""
    properties = {}
    for param in params:
        if _is_upload(param.annotation) or (param.source == "file" and param.annotation in (bytes, _EMPTY)):
            file = {"type": "string", "format": "binary"}
            many = typing.get_origin(param.annotation) is list
            title = param.name.replace("_", " ").title()
            properties[param.key] = {"type": "array", "items": file, "title": title} if many else {**file, "title": title}
        else:
            properties[param.key] = schemas.field(param.name, param.annotation, param.default)
    schema: Dict[str, Any] = {"title": name, "type": "object", "properties": properties}
    required = [param.key for param in params if param.required]
    if required:
        schema["required"] = required
    return schema


def _body(schema: Dict[str, Any], media_type: str, required: bool) -> Dict[str, Any]:
    body: Dict[str, Any] = {"content": {media_type: {"schema": schema}}}
    if required:
        body["required"] = True
    return body


def _response_model(route: Route) -> Any:
    """The type the route's response model is, or ``None``."""
    given = getattr(route, "response_model", DEFAULT_RESPONSE_MODEL)
    if given is DEFAULT_RESPONSE_MODEL:
        try:
            given = typing.get_type_hints(route.endpoint).get("return")
        except Exception:
            return None
        if given is None or not response_model_of(given):
            return None
    return given


def _media_type(route: Route) -> Optional[str]:
    """What the route sends: its stored response's type (a static route),
    a ``Response`` class its return annotation names, else JSON."""
    if route.response is not None:
        return route.response.media_type
    try:
        returned = typing.get_type_hints(route.endpoint).get("return")
    except Exception:
        returned = None
    if isinstance(returned, type) and issubclass(returned, Response):
        return returned.media_type
    return JSONResponse.media_type


def _responses(route: Route, schemas: Schemas) -> Dict[str, Any]:
    status = route.response.status_code if route.response is not None else getattr(route, "status_code", 200)
    main: Dict[str, Any] = {"description": "Successful Response"}
    media = _media_type(route)
    if media and status not in BODILESS and status >= 200:
        model = _response_model(route)
        schema = schemas.of(model) if model is not None else ({} if media == JSONResponse.media_type else {"type": "string"})
        main["content"] = {media: {"schema": schema}}
    responses: Dict[str, Any] = {str(status): main}
    for key, declared in getattr(route, "responses", {}).items():
        code = str(key).upper()
        code = "default" if code == "DEFAULT" else code
        extra = dict(declared)
        model = extra.pop("model", None)
        target = responses.setdefault(code, {})
        if model is not None:
            content = extra.setdefault("content", {})
            content = {**content, "application/json": {**content.get("application/json", {}), "schema": schemas.of(model)}}
            extra["content"] = content
        _merge(target, extra)
        if not target.get("description"):
            target["description"] = _STATUS_RANGES.get(code.upper()) or http.client.responses.get(int(code) if code.isdigit() else 0) or "Additional Response"
    return responses


def _merge(target: Dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


# The pages -------------------------------------------------------------------


def get_swagger_ui_html(
    *,
    openapi_url: str,
    title: str,
    swagger_js_url: str = SWAGGER_JS_URL,
    swagger_css_url: str = SWAGGER_CSS_URL,
    swagger_ui_parameters: Optional[Mapping[str, Any]] = None,
) -> HTMLResponse:
    """The Swagger UI page (``/docs``) for the document at ``openapi_url``,
    its script and style from the CDN FastAPI uses."""
    settings = {"url": openapi_url, "dom_id": "#swagger-ui", "layout": "BaseLayout", "deepLinking": True, "showExtensions": True, "showCommonExtensions": True}
    settings.update(swagger_ui_parameters or {})
    # In a <script>, "</" would end it: JSON may write the slash escaped.
    config = json.dumps(settings).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" type="text/css" href="{html.escape(swagger_css_url)}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{html.escape(swagger_js_url)}"></script>
<script>
const settings = {config};
settings.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
window.ui = SwaggerUIBundle(settings);
</script>
</body>
</html>
"""
    return HTMLResponse(page)


def get_redoc_html(*, openapi_url: str, title: str, redoc_js_url: str = REDOC_JS_URL, with_google_fonts: bool = True) -> HTMLResponse:
    """The ReDoc page (``/redoc``) for the document at ``openapi_url``, its
    script from the CDN FastAPI uses."""
    fonts = '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Montserrat:300,400,700|Roboto:300,400,700">\n' if with_google_fonts else ""
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
{fonts}<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript to show the documentation.</noscript>
<redoc spec-url="{html.escape(openapi_url)}"></redoc>
<script src="{html.escape(redoc_js_url)}"></script>
</body>
</html>
"""
    return HTMLResponse(page)


def openapi_routes(build: Callable[[], Dict[str, Any]], title: str, openapi_url: str, docs_url: Optional[str], redoc_url: Optional[str]) -> List[Route]:
    """The stored (static) routes that serve the document ``build()``
    gives at ``openapi_url`` and the pages at ``docs_url`` and
    ``redoc_url``. A document that cannot be built is logged and not
    served: the app's own routes still are."""
    try:
        document = build()
        body = JSONResponse(document)
    except Exception:
        logger.exception("the OpenAPI document could not be built; %s, %s and %s are not served", openapi_url, docs_url, redoc_url)
        return []

    def openapi() -> Dict[str, Any]:
        return document

    def swagger_ui_html() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI")

    def redoc_html() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc")

    routes = [Route("GET", openapi_url, openapi, response=body)]
    for url, page in ((docs_url, swagger_ui_html), (redoc_url, redoc_html)):
        if url is not None:
            routes.append(Route("GET", url, page, response=page()))
    return routes
