"""`make run` loads the demo data set on first start (through `flask coi init`)."""

from __future__ import annotations

from sqlmodel import func, select

from coi import demo
from coi.models import Case, Unit


def test_init_loads_the_demo_once_and_prints_the_logins(app_config, tmp_path):
    from coi import create_app

    app = create_app(app_config | {"MODE": "development",
                                   "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["coi", "init"])
    assert first.exit_code == 0, first.output
    assert "demo data loaded" in first.output and "nurse.boston" in first.output
    assert demo.PASSWORD in first.output
    again = runner.invoke(args=["coi", "init"])
    assert "already loaded" in again.output
    from sqlmodel import Session

    with Session(app.extensions["coi.engine"]) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == len(demo.PATIENTS)
        assert session.exec(select(func.count()).select_from(Unit)).one() > len(demo.PATIENTS)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "coord.mfg", "password": demo.PASSWORD,
                                "csrf_token": token})
    listing = client.get("/cases").get_data(as_text=True)
    assert listing.count("A9998 26 ") == 3 and listing.count("A9997 26 ") == 1
    app.extensions["coi.engine"].dispose()


def test_init_in_production_migrates_but_loads_no_demo(app_config, tmp_path):
    from coi import create_app

    app = create_app(app_config | {"MODE": "production",
                                   "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}"})
    result = app.test_cli_runner().invoke(args=["coi", "init"])
    assert "Demo data is loaded in development mode only" in result.output
    from sqlmodel import Session

    with Session(app.extensions["coi.engine"]) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0
    app.extensions["coi.engine"].dispose()
