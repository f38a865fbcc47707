# Reads a KV v2 secret the way the hvac documentation does: `hvac.Client()` with no arguments takes
# VAULT_ADDR, VAULT_TOKEN (and VAULT_CACERT) from the environment, as `custody run --vault` sets them.
import hvac

client = hvac.Client()
assert client.is_authenticated()
response = client.secrets.kv.v2.read_secret_version(path="app/config", raise_on_deleted_version=True)
print(response["data"]["data"]["password"])
