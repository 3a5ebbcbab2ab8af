"""Schemathesis hooks for fuzzing Beacon's catalog API (run by
tests/tests/api_fuzz.rs against `beacon dev`'s catalog server).

- Every request that carries the definition's security header is signed
  with SigV4 (botocore's signer, the local credentials from the
  environment), after schemathesis has serialised it, as API Gateway's IAM
  auth expects; one the generator left without it stays unsigned.
- Attribute keys: OpenAPI 3.0 cannot state a rule on a map's keys, so the
  definition carries it as `x-propertyNames` (the server checks it). Keys
  the generator draws are renamed into that rule, values kept, so a case
  stays as valid or invalid as the generator meant.
- A check of the registry's one promise a schema cannot state: after a
  deregistration, a lookup of that version answers 404 unless another
  instance of it was registered since (the stateful links lead there).
"""

import os
import re

import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CREDENTIALS = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
KEY = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")

# (service, version) -> instance ids registered and not deregistered, and
# the versions deregistered at least once.
ALIVE: dict = {}
GONE: set = set()


class SigV4(requests.auth.AuthBase):
    """Signs the prepared request: method, URL, body and content type."""

    def __call__(self, r):
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = {k: v for k, v in r.headers.items() if k.lower() == "content-type"}
        signed = AWSRequest(method=r.method, url=r.url, data=body, headers=headers)
        SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                r.headers[name] = signed.headers[name]
        return r


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # The definition's security scheme is the Authorization header: a case
    # the generator gave one is signed for real; a case it left without
    # (testing that auth is enforced) stays unsigned.
    if any(k.lower() == "authorization" for k in (case.headers or {})):
        kwargs["auth"] = SigV4()


def _key(k, taken):
    key = re.sub(r"[^A-Za-z0-9._:/-]", "_", str(k))[:64] or "k"
    n = 0
    while key in taken:
        n += 1
        key = f"{key[:60]}_{n}"
    return key


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict) and isinstance(body.get("attributes"), dict):
        renamed = {}
        for k, v in body["attributes"].items():
            # fullmatch, not match: Python's `$` also matches before a final
            # newline, so `match` let a key `c\n` through (a CI run's
            # stateful phase found it; the server's regex, rightly, did not).
            renamed[k if KEY.fullmatch(str(k)) and k not in renamed else _key(k, renamed)] = v
        body["attributes"] = renamed
    return body


def _version(text):
    """`1.2` means `1.2.0`, as the server reads it."""
    core = re.split(r"[-+]", text, maxsplit=1)[0]
    if core.count(".") == 1:
        return core + ".0" + text[len(core):]
    return text


@schemathesis.hook
def after_call(ctx, case, response):
    if response.status_code != 200:
        return
    label = case.operation.label
    try:
        data = response.json()
    except ValueError:
        return
    if label.endswith("/register") and "registered" in data:
        r = data["registered"]
        ALIVE.setdefault((r["service"], r["version"]), set()).add(r["instance_id"])
    elif label.endswith("/deregister") and "deregistered" in data:
        d = data["deregistered"]
        key = (d["service_name"], d["service_version"])
        ALIVE.get(key, set()).discard(d["instance_id"])
        GONE.add(key)


@schemathesis.check
def deregistered_stays_gone(ctx, response, case):
    if case.operation.label != "GET /catalog/{name}/{version}" or not case.path_parameters:
        return None
    key = (case.path_parameters.get("name"), _version(str(case.path_parameters.get("version"))))
    if key in GONE and not ALIVE.get(key) and response.status_code != 404:
        raise AssertionError(f"{key[0]} {key[1]} was deregistered, yet its lookup answered {response.status_code}")
    return None
