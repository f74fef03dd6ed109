"""``pushlab apns jwt``: the provider token the curl example in docs/apns.md sends."""

import time

import httpx
import pytest
from typer.testing import CliRunner

from fake_providers.apns.keys import load_trusted_keys
from fake_providers.apns.lab import build_lab
from fake_providers.apns.service import start_apns_service
from simulator.cli import app

APP = "com.example.chat"


def _cli(*args: str) -> str:
    out = CliRunner().invoke(app, list(args))
    assert out.exit_code == 0, out.output
    return out.stdout.strip()


@pytest.mark.live
async def test_the_printed_jwt_is_accepted_by_the_look_alike(tmp_path):
    keys = tmp_path / "keys"
    _cli("apns", "keygen", "--dir", str(keys))
    token_jwt = _cli("apns", "jwt", "--dir", str(keys))
    lab = build_lab(wall_clock=time.time, trusted_keys=load_trusted_keys(keys))
    assert lab.production.require_auth
    service = await start_apns_service(lab, h2c=True, admin_port=None)
    device = lab.issue("d1", APP)
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        try:
            url = f"{service.production.url}/3/device/{device}"
            body = {"aps": {"alert": "hi"}}
            ok = await client.post(url, json=body, headers={
                "apns-topic": APP, "authorization": f"bearer {token_jwt}"})
            forged = await client.post(url, json=body, headers={
                "apns-topic": APP, "authorization": f"bearer {token_jwt[:-4]}AAAA"})
        finally:
            await service.close()
    assert ok.status_code == 200, ok.text
    assert forged.status_code == 403


def test_key_id_and_team_options_choose_and_name_the_key(tmp_path):
    keys = tmp_path / "keys"
    first = _cli("apns", "keygen", "--dir", str(keys), "--team", "TEAM123456")
    _cli("apns", "keygen", "--dir", str(keys))
    key_id = first.split("key_id:")[1].split()[0]
    import jwt

    chosen = _cli("apns", "jwt", "--dir", str(keys), "--key-id", key_id)
    assert jwt.get_unverified_header(chosen)["kid"] == key_id
    assert jwt.decode(chosen, options={"verify_signature": False})["iss"] == "TEAM123456"
    p8 = keys / f"AuthKey_{key_id}.p8"
    other_team = _cli("apns", "jwt", "--key", str(p8), "--team", "OTHER12345")
    assert jwt.decode(other_team, options={"verify_signature": False})["iss"] == "OTHER12345"


@pytest.mark.parametrize(("args", "option"), [
    (["--dir", "{tmp}/nothing"], "--dir"), (["--key-id", "NOSUCHKEY1"], "--key-id"),
    (["--key", "{tmp}/missing.p8"], "'--key'"), (["--key", "{tmp}/bad.p8"], "--team"),
    (["--key", "{tmp}/bad.p8", "--team", "T"], "--key"),
])
def test_bad_input_is_one_line_naming_the_option(tmp_path, args, option, monkeypatch):
    monkeypatch.setenv("PUSHLAB_HOME", str(tmp_path))
    (tmp_path / "bad.p8").write_text("not a key")
    out = CliRunner().invoke(app, ["apns", "jwt", *[a.format(tmp=tmp_path) for a in args]])
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.startswith("Error:")]
    assert option in line
