"""Unique secrets planted in every credential source a data run can see (lakeFS and AWS environment
variables, the user info and query of a listed URL), and a search for them in what the run wrote."""

from __future__ import annotations

LAKECTL_URL_PASSWORD = "plantedLakectlUrlPw5521"
SECRETS = {
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID": "AKIAplantedLakectlKeyId7431",
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY": "plantedLakectlSecret9d8e7f",
    "LAKECTL_SERVER_ENDPOINT_URL": f"http://lkuser:{LAKECTL_URL_PASSWORD}@127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "AKIAplantedAwsKeyId1188",
    "AWS_SECRET_ACCESS_KEY": "plantedAwsSecret4c3b2a",
    "AWS_SESSION_TOKEN": "plantedAwsSessionToken6f5e",
}
URL_PASSWORD = "plantedHttpPassword8a7b"
URL_TOKEN = "plantedQueryToken2e1d"


def plant_secrets(monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def leaks(texts: dict[str, str]) -> list[str]:
    """"<secret> in <where>" for each planted secret found in ``texts`` (where -> text)."""
    secrets = [*SECRETS.values(), LAKECTL_URL_PASSWORD, URL_PASSWORD, URL_TOKEN]
    return [f"{secret} in {where}" for secret in secrets for where, text in texts.items() if secret in text]
