"""Uploads: file names, size limits, safe image decoding, and the import job."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from api_world import MANAGER, World, build_world
from PIL import Image

from labelgate.api.uploads import UploadRejected, check_image, safe_name
from labelgate.store.db import Database

URL = "/api/projects/street-scenes/images"


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def _png(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def _claiming(data: bytes, width: int, height: int) -> bytes:
    """The same PNG with its header claiming another size (a decompression bomb's trick)."""
    ihdr = bytearray(data[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return data[:12] + bytes(ihdr) + crc + data[33:]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "needs a name"),
        ("../outside.png", "'..'"),
        ("a/../../outside.png", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/windows/x.png", "absolute"),
        ("a\x00b.png", "NUL"),
        ("a\\..\\b.png", "backslash"),
        ("a//b.png", "empty"),
        ("./a.png", "'.'"),
        ("x" * 1001, "longer than 1000"),
    ],
)
def test_unsafe_file_names_are_refused(name: str, why: str) -> None:
    with pytest.raises(UploadRejected, match=why):
        safe_name(name)


def test_safe_names_keep_their_folders() -> None:
    assert safe_name("street/2026/0001.jpg") == "street/2026/0001.jpg"


def test_images_are_bounded_before_they_are_decoded() -> None:
    good = _png()
    assert check_image(good, "a.png", max_pixels=100).width == 8
    with pytest.raises(UploadRejected, match="over the limit"):
        check_image(good, "a.png", max_pixels=47)
    bomb = _claiming(good, 100_000, 100_000)
    with pytest.raises(UploadRejected, match=r"over the limit|decompression bomb"):
        check_image(bomb, "bomb.png", max_pixels=100_000_000)
    with pytest.raises(UploadRejected, match="not a readable image"):
        check_image(b"GIF89a" + b"\x00" * 20, "x.gif", max_pixels=100)
    with pytest.raises(UploadRejected, match="not a readable image"):
        check_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.png", max_pixels=100)
    truncated = good[: len(good) // 2]
    with pytest.raises(UploadRejected):
        check_image(truncated, "cut.png", max_pixels=100)


def test_uploads_refuse_traversal_bombs_and_oversized_files_and_keep_nothing(
    world: World, tmp_path: Path
) -> None:
    client = world.client
    maria = world.login(MANAGER)
    images_before = len(world.program.images()[1])

    def upload(*files: tuple[str, bytes]) -> int:
        response = client.post(
            URL, headers=maria, files=[("files", (n, d, "image/png")) for n, d in files]
        )
        return response.status_code

    assert upload(("ok.png", _png()), ("../escape.png", _png())) == 422
    assert upload(("/abs.png", _png())) == 422
    assert upload(("bomb.png", _claiming(_png(), 50_000, 50_000))) == 422
    assert upload(("text.png", b"not an image at all")) == 422
    assert upload(("big.png", b"\x89PNG" + b"\x00" * 300_000)) == 413  # limit 200,000 bytes
    assert upload(("same.png", _png()), ("same.png", _png())) == 422
    assert len(world.program.images()[1]) == images_before
    data = tmp_path / "data"
    assert not any(p.is_file() for p in data.rglob("*")) if data.exists() else True
    assert not (tmp_path / "escape.png").exists()
    ana = world.login("ana")
    refused = client.post(URL, headers=ana, files=[("files", ("a.png", _png(), "image/png"))])
    assert refused.status_code == 403


def test_a_good_upload_is_stored_inside_the_project_folder_and_imported_by_a_job(
    world: World, tmp_path: Path
) -> None:
    client = world.client
    maria = world.login(MANAGER)
    response = client.post(
        URL,
        headers=maria,
        files=[
            ("files", ("new/a.png", _png(8, 6), "image/png")),
            ("files", ("new/b.png", _png(4, 4), "image/png")),
        ],
    )
    assert response.status_code == 202, response.text
    job = client.app.state.labelgate.jobs.wait(response.json()["id"], timeout=60)
    assert job.state == "done", job.error
    polled = client.get(f"/api/jobs/{job.id}", headers=maria).json()
    assert polled["state"] == "done" and polled["result"]["images"] == 2
    root = tmp_path / "data" / "images" / "street-scenes"
    assert (root / "new" / "a.png").read_bytes() == _png(8, 6)
    _, images = world.program.images()
    names = dict(zip(images.file_name.tolist(), zip(images.width.tolist(), images.height.tolist())))
    assert names["new/a.png"] == (8, 6) and names["new/b.png"] == (4, 4)
    # the same names again: the workflow refuses, the job says why
    again = client.post(
        URL, headers=maria, files=[("files", ("new/a.png", _png(8, 6), "image/png"))]
    )
    failed = client.app.state.labelgate.jobs.wait(again.json()["id"], timeout=60)
    assert failed.state == "failed" and failed.error["status"] == 409


def test_gold_import_reads_the_whole_file_and_a_bad_one_fails_the_job(world: World) -> None:
    client = world.client
    maria = world.login(MANAGER)
    bad = client.post(
        "/api/projects/street-scenes/gold",
        headers=maria,
        files={
            "file": ("gold.json", b'{"images": [], "annotations": [{"id": 1}]}', "application/json")
        },
        data={"format": "coco"},
    )
    assert bad.status_code == 202
    job = client.app.state.labelgate.jobs.wait(bad.json()["id"], timeout=60)
    assert job.state == "failed" and job.error["status"] == 422
    traversal = client.post(
        "/api/projects/street-scenes/gold",
        headers=maria,
        files={"file": ("../gold.json", b"{}", "application/json")},
    )
    assert traversal.status_code == 422
