"""Secrets echoed back transformed (issue 16): a provider, a library or an error message may
show a key or secret upper- or lower-cased, URL-encoded, in space-separated groups, or only a
piece of it. runtime.secrets masks each of these wherever text leaves a process: a log line, a
Status message, `tickmesh status --json`. First `redact` itself, then a real handler under a
real supervisor, whose provider echoes the credentials every way at once."""

from __future__ import annotations

import json
import re
import string
from typing import Callable
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickmesh.bus.events import Status
from tickmesh.runtime.secrets import MASK, Masker, redact, secret_from_env
from tests.buslog import BusLog
from tests.scripted_server import ScriptedServer
from tests.supervised import Running, child_toml, tickmesh, write_config
from tests.waiting import wait_until

KEY = "PKq7Hx2Lm9Xr4Vb8NwT3"                        # 20 characters, mixed case
SECRET = "q9Fz+Tk2/Lm8Wr3Yp6Hd+Jn5Sg1Vx4Cb7Ne0Ra=w"  # 40, with characters URLs encode
KEY_ENV, SECRET_ENV = "TM_TEST_ECHO_KEY", "TM_TEST_ECHO_SECRET"
PIECE = 8
"""The shortest piece of a secret that is masked on its own."""


def spaced(secret: str) -> str:
    return " ".join(secret[at:at + 4] for at in range(0, len(secret), 4))


def url_encoded(secret: str) -> str:
    return quote(secret, safe="")


ECHOES: dict[str, Callable[[str], str]] = {
    "exact": lambda secret: secret,
    "upper-cased": str.upper,
    "lower-cased": str.lower,
    "URL-encoded": url_encoded,
    "URL-encoded, lower-case hex": lambda secret: re.sub(
        "%[0-9A-F]{2}", lambda code: code.group().lower(), url_encoded(secret)),
    "upper-cased, then URL-encoded": lambda secret: url_encoded(secret.upper()),
    "in space-separated groups": spaced,
    "its last 9 characters": lambda secret: secret[-9:],
    "9 characters from its middle": lambda secret: secret[6:15],
    "its first 8 characters": lambda secret: secret[:8],
}


def leaks(text: str, *secrets: str) -> list[str]:
    """The pieces of the secrets (PIECE characters; KEY's and SECRET's by default) in `text`
    once it is URL-decoded, case-folded and rid of whitespace: what a reader could put back
    together."""
    plain = "".join(unquote(text).casefold().split())
    pieces = [secret.casefold()[at:at + PIECE] for secret in secrets or (KEY, SECRET)
              for at in range(len(secret) - PIECE + 1)]
    return [piece for piece in pieces if piece in plain]


@pytest.fixture
def known(monkeypatch) -> None:
    """KEY and SECRET read as secrets (as a handler reads its credentials)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert (secret_from_env(KEY_ENV), secret_from_env(SECRET_ENV)) == (KEY, SECRET)


# --- redact -----------------------------------------------------------------------------------

@pytest.mark.parametrize("secret", [KEY, SECRET], ids=["key", "secret"])
@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_an_echo_is_masked_whole_and_nothing_else(known, echo, secret):
    text = f"refused {echo(secret)} (code 402)"
    assert leaks(text)  # the test's own check sees it
    assert redact(text) == f"refused {MASK} (code 402)"


def test_echoes_side_by_side_are_each_masked(known):
    text = (f"GET /auth?key={KEY.lower()}&secret={url_encoded(SECRET)} failed; key "
            f"{spaced(KEY.upper())}, secret ...{SECRET[-12:]}{KEY}")
    assert redact(text) == (f"GET /auth?key={MASK}&secret={MASK} failed; key {MASK}, "
                            f"secret ...{MASK}{MASK}")


def test_text_without_a_piece_of_a_secret_is_left_alone(known):
    text = f"connection state: subscribed to AAPL, MSFT; key ends {KEY[-PIECE + 1:]}"
    assert redact(text) == text  # 7 characters could be anything: they stay


def test_a_secret_shorter_than_a_piece_is_masked_whole():
    mask = Masker(frozenset({"Zq7+x"}))
    assert mask("pin zq7%2BX and Zq7 + x, not Zq7") == f"pin {MASK} and {MASK}, not Zq7"


def test_a_secret_with_whitespace_or_a_percent_sign_in_it_is_masked_too():
    mask = Masker(frozenset({"pass phrase 100%", "Ab%41cdefgh"}))
    assert mask("pass: PASS  PHRASE 100%25; ab%2541CDEFGH") == f"pass: {MASK}; {MASK}"


SECRET_CHARS = string.ascii_letters + string.digits + "+/=-_.~"
TEXT_CHARS = string.ascii_letters + string.digits + string.punctuation + " "
WHOLE_ECHOES = [echo for name, echo in ECHOES.items() if "characters" not in name]


@given(secret=st.text(SECRET_CHARS, min_size=PIECE, max_size=64), data=st.data())
def test_any_echo_of_any_piece_is_masked_and_nothing_else(secret, data):
    start = data.draw(st.integers(0, len(secret) - PIECE))
    piece = secret[start:data.draw(st.integers(start + PIECE, len(secret)))]
    echo = data.draw(st.sampled_from(WHOLE_ECHOES))(piece)
    before, after = data.draw(st.text(TEXT_CHARS)), data.draw(st.text(TEXT_CHARS))
    mask = Masker(frozenset({secret}))
    assert leaks(mask(before + echo + after), secret) == []
    if not leaks(before, secret):
        assert mask(before) == before


# --- a handler whose provider echoes the credentials ------------------------------------------

CONNECTED = '[{"T":"success","msg":"connected"}]'
ECHOED = {  # each error message the provider sends, and what may be shown of it
    f"key {KEY.upper()} refused": f"key {MASK} refused",
    f"secret {url_encoded(SECRET)} refused": f"secret {MASK} refused",
    f"credentials {spaced(KEY)} / {spaced(SECRET)}": f"credentials {MASK} / {MASK}",
    f"secret ending {SECRET[-9:]}, key ending {KEY[-9:].lower()}":
        f"secret ending {MASK}, key ending {MASK}",
}
LAST = " | ".join(ECHOED)  # all at once: the last error, which `tickmesh status` shows
SHOWN = {**ECHOED, LAST: " | ".join(ECHOED.values())}


def echo_the_credentials(text: str) -> list[str]:
    """The provider: to every auth, an undecodable frame with the secret in it (the handler
    logs its start), then every echo, each an error of its own (402: the connection ends)."""
    if json.loads(text).get("action") != "auth":
        return []
    errors = [{"T": "error", "code": 402, "msg": message} for message in SHOWN]
    return [f"not json {url_encoded(SECRET.upper())}", json.dumps(errors)]


def test_transformed_echoes_reach_neither_the_bus_nor_the_logs_nor_status(spawn, run_dir):
    with ScriptedServer(echo_the_credentials, greeting=[CONNECTED]) as server:
        settings = {"url": server.url, "symbols": ["AAPL"], "encoding": "json",
                    "key_env": KEY_ENV, "secret_env": SECRET_ENV, "stale_after": 0,
                    "backoff_min": 0.05, "backoff_max": 0.2}
        config = write_config(run_dir, child_toml("alpaca", "tickmesh.handlers.alpaca.handler", settings))
        supervisor = Running(spawn, run_dir, config,
                             extra_env={KEY_ENV: KEY, SECRET_ENV: SECRET})
        with BusLog(f"ipc://{run_dir}/subscribe", ["status.alpaca"]) as bus:
            bus.until(lambda _: {s.message for s in bus.of(Status)} >= set(SHOWN.values()),
                      what="every echo, masked, as a Status", timeout=20)
        status = wait_until(lambda: _last_error(tickmesh(spawn, run_dir, "status", "--json")),
                            timeout=20, what="status --json to show the last error")
    assert status["message"].endswith(SHOWN[LAST])  # "closed after error 402: ..."
    published = [s.message for s in bus.of(Status) if s.state == "error"]
    assert set(published) <= set(SHOWN.values()), published
    logged = (run_dir / "logs" / "alpaca.log").read_text()
    assert "undecodable frame" in logged
    assert all(json.dumps(masked)[1:-1] in logged for masked in ECHOED.values())
    for text in (" ".join(published), logged, supervisor.log_path.read_text(), json.dumps(status)):
        assert leaks(text) == []


def _last_error(result) -> dict | None:
    """The Alpaca feed's last error in `tickmesh status --json`, once there is one."""
    if result.code != 0:
        return None
    leaked = leaks(result.out)
    assert leaked == [], leaked
    health = json.loads(result.out)["children"]["alpaca"]["health"] or {}
    return (health.get("feed") or {}).get("last_error")
