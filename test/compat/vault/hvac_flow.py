"""Drives Custody's Vault-compatible door with the official hvac client, unmodified.

Run by test/compat/vault-hvac.test.ts with VAULT_ADDR=https://HOST:PORT/vault, VAULT_TOKEN and
REQUESTS_CA_BUNDLE (the broker's CA) in the environment: `python hvac_flow.py MODE`. Each mode
asserts what the client sees and prints one JSON object (its findings) as the last line of stdout.
"""

import json
import os
import sys

import hvac
from hvac import exceptions

ADDR = os.environ["VAULT_ADDR"]


def client(token=None):
    return hvac.Client(url=ADDR, token=token) if token is not None else hvac.Client(url=ADDR)


def expect(exc, fn, *args, **kwargs):
    """Calls fn and returns the hvac exception it must raise."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    except Exception as e:  # noqa: BLE001 - report the wrong exception type clearly
        raise AssertionError(f"{fn.__name__}: expected {exc.__name__}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"{fn.__name__}: expected {exc.__name__}, got success")


def read(kv, path, **kwargs):
    """read_secret_version with hvac 3's default: a deleted version raises."""
    return kv.read_secret_version(path=path, raise_on_deleted_version=True, **kwargs)


def kv_mode():
    """Root token: health, mounts, tokens and the whole KV v2 life cycle."""
    c = client()
    out = {}
    assert c.is_authenticated(), "the root token is authenticated"
    assert not client("cst_not-a-real-token-at-all").is_authenticated(), "a bad token is not"
    assert not client("hvs.short").is_authenticated()

    health = c.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False, health
    head = c.sys.read_health_status()  # hvac's default is HEAD
    assert head.status_code == 200, head.status_code
    mounts = c.sys.list_mounted_secrets_engines()
    assert mounts["data"]["secret/"]["options"]["version"] == "2", mounts
    assert mounts["secret/"]["type"] == "kv"
    out["mounts"] = sorted(mounts["data"].keys())

    kv = c.secrets.kv.v2
    w1 = kv.create_or_update_secret(path="ml/training/config", secret={"lr": "0.01", "epochs": 3})
    assert w1["data"]["version"] == 1, w1
    w2 = kv.create_or_update_secret(path="ml/training/config", secret={"lr": "0.02", "epochs": 5}, cas=1)
    assert w2["data"]["version"] == 2, w2
    cas = expect(
        exceptions.InvalidRequest,
        kv.create_or_update_secret,
        path="ml/training/config",
        secret={"lr": "x"},
        cas=1,
    )
    assert "check-and-set" in str(cas), str(cas)
    expect(exceptions.InvalidRequest, kv.create_or_update_secret, path="ml/new", secret={"a": "b"}, cas=1)
    kv.create_or_update_secret(path="ml/new", secret={"a": "b"}, cas=0)
    kv.create_or_update_secret(path="ml/eval/token", secret={"t": "x"})

    latest = read(kv, "ml/training/config")
    assert latest["data"]["data"] == {"lr": "0.02", "epochs": 5}, latest
    assert latest["data"]["metadata"]["version"] == 2
    assert latest["data"]["metadata"]["deletion_time"] == ""
    assert latest["mount_type"] == "kv" and latest["lease_id"] == "" and latest["wrap_info"] is None
    v1 = read(kv, "ml/training/config", version=1)
    assert v1["data"]["data"] == {"lr": "0.01", "epochs": 3}, v1
    expect(exceptions.InvalidPath, read, kv, "ml/missing")
    expect(exceptions.InvalidPath, read, kv, "ml/training/config", version=9)
    # Secrets written natively (plain strings) read back as {"value": ...}.
    native = read(kv, "native/plain")
    assert native["data"]["data"] == {"value": "plain-text-value"}, native

    top = kv.list_secrets(path="")
    assert top["data"]["keys"] == ["ml/", "native/"], top
    ml = kv.list_secrets(path="ml")
    assert ml["data"]["keys"] == ["eval/", "new", "training/"], ml
    assert kv.list_secrets(path="ml/training/")["data"]["keys"] == ["config"]
    expect(exceptions.InvalidPath, kv.list_secrets, path="nothing-here")

    meta = kv.read_secret_metadata(path="ml/training/config")
    assert meta["data"]["current_version"] == 2 and sorted(meta["data"]["versions"]) == ["1", "2"], meta

    # Soft delete of the latest version, read as deleted, undelete.
    kv.delete_latest_version_of_secret(path="ml/training/config")
    expect(exceptions.InvalidPath, read, kv, "ml/training/config")
    deleted = kv.read_secret_version(path="ml/training/config", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"] != "", deleted
    assert deleted["data"]["metadata"]["version"] == 2
    meta = kv.read_secret_metadata(path="ml/training/config")
    assert meta["data"]["versions"]["2"]["deletion_time"] != ""
    kv.undelete_secret_versions(path="ml/training/config", versions=[2])
    assert read(kv, "ml/training/config")["data"]["data"]["epochs"] == 5
    kv.delete_secret_versions(path="ml/training/config", versions=[1])
    expect(exceptions.InvalidPath, read, kv, "ml/training/config", version=1)
    # Vault answers an unsupported operation with 405, which hvac raises as UnexpectedError.
    destroy = expect(
        exceptions.UnexpectedError, kv.destroy_secret_versions, path="ml/training/config", versions=[1]
    )
    assert "not supported" in str(destroy), str(destroy)
    out["destroy_error"] = str(destroy)

    # hvac's patch is a read plus a check-and-set write.
    patched = kv.patch(path="ml/training/config", secret={"epochs": 7, "momentum": "0.9"})
    assert patched["data"]["version"] == 3, patched
    assert read(kv, "ml/training/config")["data"]["data"] == {
        "lr": "0.02",
        "epochs": 7,
        "momentum": "0.9",
    }

    # An environment is a mount of its own.
    kv.create_or_update_secret(path="serving/key", secret={"k": "prod-value"}, mount_point="prod")
    assert read(kv, "serving/key", mount_point="prod")["data"]["data"] == {"k": "prod-value"}
    expect(exceptions.InvalidPath, read, kv, "serving/key")

    # Deleting metadata deletes the secret (Custody soft-delete: recoverable natively).
    kv.delete_metadata_and_all_versions(path="ml/eval/token")
    expect(exceptions.InvalidPath, read, kv, "ml/eval/token")
    assert kv.list_secrets(path="ml")["data"]["keys"] == ["new", "training/"]

    # Tokens: lookup, renew, a child token that revokes itself.
    me = c.auth.token.lookup_self()
    assert "root" in me["data"]["policies"] and me["data"]["accessor"].startswith("acc_"), me
    child = c.auth.token.create(ttl="10m", display_name="hvac-child")
    child_token = child["auth"]["client_token"]
    assert child["auth"]["renewable"] is True and child["auth"]["lease_duration"] > 500
    cc = client(child_token)
    assert cc.is_authenticated()
    looked = cc.auth.token.lookup_self()["data"]
    assert looked["display_name"] == "hvac-child" and looked["id"] == child_token and 0 < looked["ttl"] <= 600
    renewed = cc.auth.token.renew_self(increment="20m")
    assert renewed["auth"]["client_token"] == child_token and renewed["auth"]["lease_duration"] > 600, renewed
    by_token = c.auth.token.lookup(child_token)
    assert by_token["data"]["accessor"] == looked["accessor"]
    revoked = cc.auth.token.revoke_self()
    assert revoked.status_code == 204, revoked.status_code
    assert not cc.is_authenticated(), "a revoked token is no longer authenticated"

    # Paths outside the supported subset answer Vault's error shape.
    assert c.read("cubbyhole/foo") is None, "hvac's read() answers None for a 404"
    unknown = expect(exceptions.InvalidPath, c.adapter.get, "/v1/cubbyhole/foo")
    out["unknown_path_error"] = str(unknown)
    expect(exceptions.InvalidPath, c.adapter.get, "/v1/secret/not-a-kv-v2-path")
    out["ok"] = True
    return out


def approle_mode():
    """No token: AppRole login, then what the role's identity may and may not do."""
    c = client("")
    bad = expect(
        exceptions.InvalidRequest,
        c.auth.approle.login,
        role_id=os.environ["ROLE_ID"],
        secret_id="not-the-secret-id",
    )
    wrong_role = expect(
        exceptions.InvalidRequest,
        c.auth.approle.login,
        role_id="not-a-role-id",
        secret_id=os.environ["SECRET_ID"],
    )
    res = c.auth.approle.login(role_id=os.environ["ROLE_ID"], secret_id=os.environ["SECRET_ID"])
    auth = res["auth"]
    assert auth["client_token"].startswith("cst_") and auth["renewable"] is True, res
    assert auth["metadata"]["role_name"] == "trainer", auth
    assert c.token == auth["client_token"], "hvac adopts the login token"
    assert c.is_authenticated()
    me = c.auth.token.lookup_self()["data"]
    assert me["path"] == "auth/dev/approle/login" and me["entity_id"] == auth["entity_id"], me
    kv = c.secrets.kv.v2
    got = read(kv, "ml/shared/config")
    denied = expect(exceptions.Forbidden, read, kv, "ml/new")
    assert "permission denied" in str(denied), str(denied)
    return {
        "data": got["data"]["data"],
        "bad_secret_error": str(bad),
        "wrong_role_error": str(wrong_role),
        "accessor": auth["accessor"],
    }


def jwt_mode():
    c = client("")
    res = c.auth.jwt.jwt_login(role="trainer", jwt=os.environ["JWT"])
    assert c.is_authenticated()
    bad = expect(exceptions.InvalidRequest, client("").auth.jwt.jwt_login, role="trainer", jwt="e30.e30.sig")
    auth = res["auth"]
    return {"entity_id": auth["entity_id"], "policies": auth["policies"], "bad_jwt_error": str(bad)}


def rbac_mode():
    """A token whose identity holds secrets-user on dev/secrets/team-a only."""
    c = client()
    kv = c.secrets.kv.v2
    assert c.is_authenticated()
    ok = read(kv, "team-a/db")["data"]["data"]
    results = {"allowed": ok}
    for name, fn, kwargs in [
        ("read_other_prefix", read, {"kv": kv, "path": "team-b/db"}),
        ("write_own_prefix", kv.create_or_update_secret, {"path": "team-a/db", "secret": {"x": "y"}}),
        ("list_env", kv.list_secrets, {"path": ""}),
        ("read_prod", read, {"kv": kv, "path": "team-a/db", "mount_point": "prod"}),
        ("mounts", c.sys.list_mounted_secrets_engines, {}),
    ]:
        e = expect(exceptions.Forbidden, fn, **kwargs)
        results[name] = str(e)
    assert kv.list_secrets(path="team-a")["data"]["keys"] == ["db"]
    return results


def creds_mode():
    """A job token with credential-user on the warehouse reader role."""
    c = client()
    creds = c.secrets.database.generate_credentials(name="reader", mount_point="database")
    assert creds["renewable"] is True and 0 < creds["lease_duration"] <= 3600, creds
    assert creds["mount_type"] == "database"
    lease_id = creds["lease_id"]
    explicit = c.secrets.database.generate_credentials(name="reader", mount_point="dev/warehouse")
    via_engine = c.secrets.database.generate_credentials(name="reader", mount_point="warehouse")
    looked = c.sys.read_lease(lease_id)
    assert looked["data"]["id"] == lease_id and looked["data"]["renewable"] is True, looked
    assert 0 < looked["data"]["ttl"] <= 3600
    renewed = c.sys.renew_lease(lease_id, increment=1800)
    assert renewed["lease_id"] == lease_id and 1700 < renewed["lease_duration"] <= 1800, renewed
    denied = expect(
        exceptions.Forbidden, c.secrets.database.generate_credentials, name="writer", mount_point="database"
    )
    return {
        "lease_id": lease_id,
        "username": creds["data"]["username"],
        "password": creds["data"]["password"],
        "others": [explicit["lease_id"], via_engine["lease_id"]],
        "denied": str(denied),
    }


def revoke_mode():
    c = client()
    lease_id = os.environ["LEASE_ID"]
    res = c.sys.revoke_lease(lease_id)
    assert res.status_code == 204, res.status_code
    looked = c.sys.read_lease(lease_id)["data"]
    assert looked["ttl"] == 0 and looked["renewable"] is False, looked
    expect(exceptions.InvalidRequest, c.sys.renew_lease, lease_id)
    return {"state": looked["state"]}


def revoke_prefix_mode():
    c = client()
    listed = c.sys.list_leases("database/creds/reader")
    res = c.sys.revoke_prefix("database/creds/reader")
    assert res.status_code == 204, res.status_code
    return {"listed": listed["data"]["keys"]}


MODES = {
    "kv": kv_mode,
    "approle": approle_mode,
    "jwt": jwt_mode,
    "rbac": rbac_mode,
    "creds": creds_mode,
    "revoke": revoke_mode,
    "revoke-prefix": revoke_prefix_mode,
}

if __name__ == "__main__":
    print(json.dumps(MODES[sys.argv[1]]()))
