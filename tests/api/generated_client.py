"""Uses a client nobody here wrote: the package openapi-python-client
(PyPI) generated from `beacon openapi`'s document, against `beacon dev`'s
catalog API (cli/tests/cli.rs runs it).

    .venv/bin/python tests/api/generated_client.py <dir holding the package> <api url> <service>

Writes are signed as the README says (SigV4, service `execute-api`, the
credentials and Region of the environment, here `beacon dev`'s dev.env),
with botocore's signer in an httpx request hook: the generated client
takes its httpx arguments as they are. Prints one JSON line of what it saw;
exits non-zero at the first answer that is not what the document promises.
"""

import json
import os
import sys

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, sys.argv[1])

# The generated package (its name is the output directory's).
from beacon_catalog_client import Client  # noqa: E402
from beacon_catalog_client.api.default import (  # noqa: E402
    deregister,
    deregister_service,
    list_,
    lookup,
    register,
    register_service,
)
from beacon_catalog_client.models import (  # noqa: E402
    DeregisterBody,
    RegisterBody,
    Registered,
    Status,
    UnscopedDeregisterBody,
    UnscopedRegisterBody,
)

URL, SERVICE = sys.argv[2], sys.argv[3]
CREDENTIALS = Credentials(
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN")
)
REGION = os.environ.get("AWS_REGION") or os.environ["AWS_DEFAULT_REGION"]


def sign(request: httpx.Request) -> None:
    """SigV4 over the method, URL, body and content type, as API Gateway's IAM auth checks."""
    body = request.read()
    headers = {"Content-Type": request.headers["Content-Type"]} if "Content-Type" in request.headers else {}
    signed = AWSRequest(method=request.method, url=str(request.url), data=body, headers=headers)
    SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(signed)
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        if name in signed.headers:
            request.headers[name] = signed.headers[name]


def expect(what, response, status):
    if response.status_code != status:
        sys.exit(f"{what}: expected {status}, got {response.status_code}: {response.content!r}")
    return response.parsed


signed = Client(base_url=URL, httpx_args={"event_hooks": {"request": [sign]}}, raise_on_unexpected_status=True)
unsigned = Client(base_url=URL)
seen = {}

# An unsigned write is refused, and writes nothing.
refused = register_service.sync_detailed(
    SERVICE,
    client=unsigned,
    body=RegisterBody(endpoint_url="https://refused.example", service_version="1.0.0"),
)
seen["unsigned"] = refused.status_code
expect("an unsigned register", refused, 403)

# The per-service route: register, then look it up and find it in the listing.
registered = expect(
    "register",
    register_service.sync_detailed(
        SERVICE,
        client=signed,
        body=RegisterBody(
            endpoint_url="https://orders-1.example", service_version="1.2.0", instance_id="i-1", status=Status.HEALTHY
        ),
    ),
    200,
)
assert isinstance(registered, Registered), registered
seen["registered"] = registered.registered.to_dict()
found = expect("lookup", lookup.sync_detailed(SERVICE, "1.2.0", client=signed), 200)
seen["lookup"] = found.to_dict()
if found.endpoint_url != "https://orders-1.example" or found.instance_id != "i-1":
    sys.exit(f"lookup: {found.to_dict()}")
page = expect("list", list_.sync_detailed(client=signed, limit=100), 200)
seen["listed"] = sorted(r.instance_id for r in page.registrations if r.service == SERVICE)

# The seed's unscoped routes, through the same client.
expect(
    "unscoped register",
    register.sync_detailed(
        client=signed,
        body=UnscopedRegisterBody(
            service_name=SERVICE, service_version="1.2.0", endpoint_url="https://orders-2.example", instance_id="i-2"
        ),
    ),
    200,
)
page = expect("list", list_.sync_detailed(client=signed, limit=100), 200)
seen["listed_after_seed_register"] = sorted(r.instance_id for r in page.registrations if r.service == SERVICE)

# A body the document refuses is refused, naming the field.
bad = register_service.sync_detailed(
    SERVICE, client=signed, body=RegisterBody(endpoint_url="not a url", service_version="1.2.0")
)
seen["bad"] = [f.field for f in bad.parsed.fields] if bad.status_code == 400 else bad.status_code
expect("a bad endpoint", bad, 400)

# Deregister both, by both routes; the lookup is then 404.
expect(
    "deregister",
    deregister_service.sync_detailed(
        SERVICE, client=signed, body=DeregisterBody(service_version="1.2.0", instance_id="i-1")
    ),
    200,
)
expect(
    "unscoped deregister",
    deregister.sync_detailed(
        client=signed, body=UnscopedDeregisterBody(service_name=SERVICE, service_version="1.2.0", instance_id="i-2")
    ),
    200,
)
gone = lookup.sync_detailed(SERVICE, "1.2.0", client=signed)
seen["after"] = gone.status_code
expect("lookup after deregister", gone, 404)
print(json.dumps(seen))
