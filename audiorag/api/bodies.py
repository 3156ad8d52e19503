"""Routes that take either a JSON body or multipart (the same JSON in one field, plus audio
files): parsing, validation and capped storage of the files, and the OpenAPI text for both."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from audiorag.api.uploads import SNIFFED, UploadRejected, copy_capped, sniff

M = TypeVar("M", bound=BaseModel)


def openapi_body(model: type[BaseModel], json_field: str, files: dict[str, str]) -> dict[str, Any]:
    """``openapi_extra`` documenting both request forms of a route."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    properties: dict[str, Any] = {
        json_field: {
            "type": "string",
            "description": f"The JSON body ({model.__name__}) as a string.",
            "contentMediaType": "application/json",
        }
    }
    for name, description in files.items():
        properties[name] = {"type": "string", "format": "binary", "description": description}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": properties,
                        "additionalProperties": False,
                    },
                },
            },
        }
    }


async def parse_body(
    request: Request,
    model: type[M],
    *,
    json_field: str,
    file_fields: tuple[str, ...],
    folder: Path,
    max_file_bytes: int,
) -> tuple[M, dict[str, Path]]:
    """The validated body and, for multipart, the audio files saved under ``folder``.

    Files are copied with a byte cap and must sniff as audio (WAV, FLAC, Ogg, MP3); on any
    error nothing is left in ``folder``.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return _validate(model, await request.body()), {}
    if content_type != "multipart/form-data":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send application/json, or multipart/form-data with the JSON in the "
            f"{json_field!r} field",
        )
    form = await request.form(max_files=len(file_fields), max_fields=len(file_fields) + 1)
    saved: dict[str, Path] = {}
    try:
        raw = form.get(json_field)
        if isinstance(raw, UploadFile):
            raw = await raw.read(1 << 20)
        body = _validate(model, raw if raw is not None else b"{}")
        for name in file_fields:
            upload = form.get(name)
            if upload is None:
                continue
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, detail=f"{name!r} must be a file")
            saved[name] = await run_in_threadpool(_save_audio, upload, folder, name, max_file_bytes)
        unknown = set(form.keys()) - {json_field, *file_fields}
        if unknown:
            raise HTTPException(422, detail=f"unknown form fields: {sorted(unknown)}")
    except BaseException:
        for path in saved.values():
            path.unlink(missing_ok=True)
        raise
    finally:
        await form.close()
    return body, saved


def _validate(model: type[M], raw: str | bytes) -> M:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False, include_input=False)) from err


def _save_audio(upload: UploadFile, folder: Path, field: str, max_bytes: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f".{field}-{uuid.uuid4().hex}"
    try:
        _, head = copy_capped(upload.file, staged, max_bytes)
    except UploadRejected as err:
        raise HTTPException(422, detail=f"{field}: {err}") from err
    kind = sniff(head)
    if kind is None or SNIFFED[kind][0] != "stem":
        staged.unlink(missing_ok=True)
        raise HTTPException(
            422, detail=f"{field}: not an audio file (WAV, FLAC, Ogg or MP3 by its content)"
        )
    target = folder / f"{field}-{uuid.uuid4().hex[:8]}{SNIFFED[kind][1]}"
    staged.rename(target)
    return target
