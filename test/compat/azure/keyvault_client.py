"""The official Python Key Vault client against Custody's Azure front door, used as a workload would.

Run by test/compat/azure-python.test.ts with:
  CUSTODY_TEST_VAULT_URL       https://dev.vault.custody.test:PORT/ or https://127.0.0.1:PORT/
  CUSTODY_TEST_CREDENTIAL      managed | default
  CUSTODY_TEST_VERIFY          1 (default) | 0 (verify_challenge_resource=False)
  CUSTODY_TEST_SCENARIO        full | reader | ip
plus the managed-identity variables (IDENTITY_ENDPOINT/IDENTITY_HEADER or MSI_ENDPOINT/MSI_SECRET)
and REQUESTS_CA_BUNDLE. Prints ``PY-CHILD-OK <scenario>`` when every check passed.
"""

import json
import os
import sys
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

VAULT_URL = os.environ["CUSTODY_TEST_VAULT_URL"]
SCENARIO = os.environ["CUSTODY_TEST_SCENARIO"]
VERIFY = os.environ.get("CUSTODY_TEST_VERIFY", "1") == "1"

credential = (
    DefaultAzureCredential() if os.environ.get("CUSTODY_TEST_CREDENTIAL") == "default" else ManagedIdentityCredential()
)
client = SecretClient(VAULT_URL, credential, verify_challenge_resource=VERIFY, retry_total=0)


def expect_error(fn, status, code, inner=None, kind=HttpResponseError):
    try:
        fn()
    except kind as e:
        assert e.status_code == status, (e.status_code, str(e))
        assert e.error is not None and e.error.code == code, (e.error and e.error.code, str(e))
        if inner:
            assert inner in json.dumps(e.error.innererror or {}), e.error.innererror
        return e
    raise AssertionError(f"expected {status} {code}")


def full():
    s1 = client.set_secret("py-db-password", "hunter2", content_type="text/plain", tags={"owner": "ml"})
    assert s1.value == "hunter2"
    assert s1.name == "py-db-password"
    assert len(s1.properties.version) == 32
    assert s1.properties.vault_url == VAULT_URL.rstrip("/"), s1.properties.vault_url
    assert s1.properties.recovery_level == "Recoverable+Purgeable"
    assert s1.properties.recoverable_days == 90
    expires = datetime.now(timezone.utc) + timedelta(days=1)
    s2 = client.set_secret("py-db-password", "hunter3", expires_on=expires)
    latest = client.get_secret("py-db-password")
    assert latest.value == "hunter3"
    assert latest.properties.version == s2.properties.version
    assert abs((latest.properties.expires_on - expires).total_seconds()) < 2
    old = client.get_secret("py-db-password", s1.properties.version)
    assert old.value == "hunter2"
    assert old.properties.tags == {"owner": "ml"}
    assert old.properties.content_type == "text/plain"

    updated = client.update_secret_properties("py-db-password", s1.properties.version, enabled=False)
    assert updated.enabled is False
    expect_error(lambda: client.get_secret("py-db-password", s1.properties.version), 403, "Forbidden", "SecretDisabled")

    for i in range(4):
        client.set_secret(f"py-page-{i}", f"p{i}")
    pages = 0
    names = []
    for page in client.list_properties_of_secrets(max_page_size=2).by_page():
        pages += 1
        names.extend(p.name for p in page)
    assert pages >= 3, pages
    for n in ("py-db-password", "py-page-0", "py-page-3"):
        assert n in names, (n, names)
    versions = sorted(v.version for v in client.list_properties_of_secret_versions("py-db-password"))
    assert versions == sorted([s1.properties.version, s2.properties.version])

    expect_error(lambda: client.get_secret("py-no-such-secret"), 404, "SecretNotFound", kind=ResourceNotFoundError)

    blob = client.backup_secret("py-page-0")
    assert isinstance(blob, bytes) and blob

    poller = client.begin_delete_secret("py-page-0")
    poller.wait()
    deleted = poller.result()
    assert deleted.name == "py-page-0"
    assert deleted.recovery_id.endswith("/deletedsecrets/py-page-0"), deleted.recovery_id
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert client.get_deleted_secret("py-page-0").name == "py-page-0"
    assert "py-page-0" in [d.name for d in client.list_deleted_secrets()]
    expect_error(lambda: client.set_secret("py-page-0", "again"), 409, "Conflict", kind=ResourceExistsError)
    expect_error(lambda: client.get_secret("py-page-0"), 404, "SecretNotFound", kind=ResourceNotFoundError)

    recover = client.begin_recover_deleted_secret("py-page-0")
    recover.wait()
    assert recover.result().name == "py-page-0"
    assert client.get_secret("py-page-0").value == "p0"

    client.begin_delete_secret("py-page-0").wait()
    client.purge_deleted_secret("py-page-0")
    expect_error(lambda: client.get_deleted_secret("py-page-0"), 404, "SecretNotFound", kind=ResourceNotFoundError)
    restored = client.restore_secret_backup(blob)
    assert restored.name == "py-page-0"
    assert client.get_secret("py-page-0").value == "p0"
    expect_error(lambda: client.restore_secret_backup(blob), 409, "Conflict", kind=ResourceExistsError)


def reader():
    names = [p.name for p in client.list_properties_of_secrets()]
    assert "py-db-password" in names, names
    expect_error(lambda: client.get_secret("py-db-password"), 403, "Forbidden", "ForbiddenByRbac")
    expect_error(lambda: client.set_secret("py-db-password", "x"), 403, "Forbidden", "ForbiddenByRbac")
    expect_error(lambda: client.begin_delete_secret("py-db-password"), 403, "Forbidden", "ForbiddenByRbac")


def ip():
    s = client.set_secret("py-by-ip", "via-127")
    assert s.properties.vault_url == VAULT_URL.rstrip("/"), s.properties.vault_url
    assert client.get_secret("py-by-ip").value == "via-127"
    assert "py-by-ip" in [p.name for p in client.list_properties_of_secrets()]
    client.begin_delete_secret("py-by-ip").wait()
    client.purge_deleted_secret("py-by-ip")
    expect_error(lambda: client.get_secret("py-by-ip"), 404, "SecretNotFound", kind=ResourceNotFoundError)


{"full": full, "reader": reader, "ip": ip}[SCENARIO]()
client.close()
print(f"PY-CHILD-OK {SCENARIO}")
sys.stdout.flush()
