"""/healthz and the barcode decoders behind it."""

from __future__ import annotations

import io

import qrcode
from PIL import Image

from coi import migrate
from coi.labels import decoders


def test_healthz_reports_version_engine_migration_and_decoders(client, engine):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["version"] == "0.1.0"
    assert body["database"]["engine"] == engine.dialect.name
    assert body["database"]["migration_head"] == migrate.head_revision()
    assert body["database"]["migration_current"] == migrate.head_revision()
    assert body["decoders"]["zxing-cpp"]["available"] is True


def test_healthz_says_503_when_the_database_is_not_migrated(app_config, tmp_path):
    from coi.app import create_app

    app = create_app(app_config | {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"})
    response = app.test_client().get("/healthz")
    app.extensions["coi.engine"].dispose()
    assert response.status_code == 503
    assert "flask coi db upgrade" in response.get_json()["database"]["problem"]


def test_without_libzbar_the_app_says_it_decodes_with_zxing_cpp_alone(client, monkeypatch):
    monkeypatch.setattr(decoders, "_pyzbar", lambda: (None, "Unable to find zbar shared library"))
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["decoders"]["pyzbar"]["available"] is False
    assert "zxing-cpp alone" in body["decoders"]["pyzbar"]["detail"]
    image = _qr("A999826000001X")
    assert [(s.text, s.decoder) for s in decoders.decode_image(image)] == [
        ("A999826000001X", "zxing-cpp")]


def test_both_decoders_read_a_qr_code_when_libzbar_is_present():
    available = {d.name: d.available for d in decoders.available_decoders()}
    image = _qr("https://example.org/v/A999826000001X")
    found = decoders.decode_image(image)
    assert found[0].text == "https://example.org/v/A999826000001X"
    assert found[0].decoder == "zxing-cpp"
    if available["pyzbar"]:  # the same text from zbar is not listed twice
        assert len(found) == 1


def test_decoders_read_a_real_data_matrix_photo_with_its_gs_separators(realdata):
    folder = realdata / "barcodes" / "zxing-cpp" / "datamatrix-3"
    expected = (folder / "#794.txt").read_bytes().decode()
    image = Image.open(next(folder.glob("#794.*[gp]")))
    assert expected in [symbol.text for symbol in decoders.decode_image(image)]
    assert "\x1d" in expected


def _qr(text: str) -> Image.Image:
    buffer = io.BytesIO()
    qrcode.make(text).save(buffer)
    buffer.seek(0)
    return Image.open(buffer)
