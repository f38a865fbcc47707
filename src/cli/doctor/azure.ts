import type { ClientConfig } from '../../client/config.js';
import { statusOf } from '../../client/errors.js';
import { describeError } from '../../client/redact.js';
import { checkAzureChain } from './azure-chain.js';
import { classifyNetworkError, type Doctor, formatCheck, isConnectError } from './checks.js';

/*
 * The Azure Key Vault provider path: the credential chain (azure-chain.ts), then the secret read
 * with the credential that won, and a diagnosis of Key Vault's answer. A 403 names the vault's
 * permission model as Key Vault's reply shows it — `ForbiddenByRbac` for Azure RBAC, `AccessDenied`
 * with "does not have secrets get permission" for access policies, Custody's own reason for its
 * Key Vault door (role-based) — and the role or permission that is missing.
 */

export interface KeyVaultReply {
  code?: string;
  inner?: string;
  message: string;
}

/** Key Vault's `{"error":{code,message,innererror}}` out of an SDK error (RestError). */
export function keyVaultReply(err: unknown): KeyVaultReply {
  let e: any = err;
  for (let i = 0; i < 4 && e; i++) {
    let body = e.details;
    if (!body?.error && typeof e.response?.bodyAsText === 'string') {
      try {
        body = JSON.parse(e.response.bodyAsText);
      } catch {}
    }
    const x = body?.error;
    if (x && typeof x === 'object')
      return {
        code: typeof x.code === 'string' ? x.code : undefined,
        inner: x.innerError?.code ?? x.innererror?.code,
        message: typeof x.message === 'string' ? x.message : '',
      };
    e = e.cause;
  }
  return { message: describeError(err) };
}

const GET_ACTION = 'Microsoft.KeyVault/vaults/secrets/getSecret/action';

/** A Key Vault 403 → what it means (permission model, what is missing) and what to do. */
export function keyVaultForbidden(
  r: KeyVaultReply,
  where: { vault: string; secret: string },
): { detail: string; hint: string } {
  const msg = r.message.replace(/\s+/g, ' ').trim();
  const oid = /oid=([0-9a-fA-F-]{36})/.exec(msg)?.[1];
  const said = `${r.code ?? 'Forbidden'}${r.inner ? `/${r.inner}` : ''}`;
  const custody = /Not allowed to (\S+) on (\S+?):?(?:\s|$)/.exec(msg);
  // Custody's door says which action it refused: more precise than the Azure role names.
  if (custody) {
    const [, action, resource] = custody;
    const [env, ...name] = resource.split('/');
    const scope = name.length ? `${env}/secrets/${name.join('/')}` : env;
    return {
      detail: `the vault is Custody's Key Vault door, which uses role-based access (like the Azure RBAC model): the identity lacks "${action}" on ${resource} (${said})`,
      hint: `assign it secrets-user, the counterpart of "Key Vault Secrets User": \`custody access assign <ENV/IDENTITY> secrets-user ${scope} --reason '…'\``,
    };
  }
  if (r.inner === 'ForbiddenByRbac' || /Caller is not authorized to perform action/i.test(msg)) {
    const action = /Action: '([^']+)'/.exec(msg)?.[1] ?? GET_ACTION;
    return {
      detail: `the vault uses the Azure RBAC permission model and the identity holds no role allowing ${action} (${said})`,
      hint: `assign the "Key Vault Secrets User" role to the identity on the vault or the secret: az role assignment create --role "Key Vault Secrets User" --assignee ${oid ?? '<object id>'} --scope <vault resource id>/secrets/${where.secret} (new assignments take a few minutes to apply)`,
    };
  }
  const policyVerb = /does not have secrets? (\w+) permission/i.exec(msg)?.[1];
  if (policyVerb || r.inner === 'AccessDenied') {
    const verb = (policyVerb ?? 'get').toLowerCase();
    return {
      detail: `the vault uses the access-policy permission model and no access policy grants the identity the secret "${verb}" permission (${said})`,
      hint: `add an access policy: az keyvault set-policy --name ${where.vault} --object-id ${oid ?? '<object id>'} --secret-permissions get list (or move the vault to Azure RBAC and assign "Key Vault Secrets User")`,
    };
  }
  if (
    r.inner === 'ForbiddenByFirewall' ||
    r.inner === 'ForbiddenByConnection' ||
    /Client address is not authorized/i.test(msg)
  )
    return {
      detail: `the vault's network rules refuse this client (${said}): ${msg.slice(0, 200)}`,
      hint: "add this machine's public IP or virtual network to the vault's firewall, or reach it through its private endpoint",
    };
  if (/^Secret(Disabled|Expired|NotYetValid)$/.test(r.inner ?? '') || /disabled secret/i.test(msg))
    return {
      detail: `the secret version cannot be used: ${said}: ${msg.slice(0, 200)}`,
      hint: 'enable the version or fix its activation/expiry dates, or pin another one with MLFLOW_AZURE_SECRET_VERSION',
    };
  if (r.inner === 'ForbiddenByPolicy')
    return {
      detail: `an Azure Policy refuses the request (${said}): ${msg.slice(0, 200)}`,
      hint: 'ask the subscription owner which policy denies Key Vault access',
    };
  return {
    detail: `the identity may not get the secret (${said}): ${msg.slice(0, 200)}`,
    hint: `with the Azure RBAC model assign "Key Vault Secrets User" (${GET_ACTION}); with the access-policy model add a policy granting secret "get"`,
  };
}

export async function checkAzure(
  d: Doctor,
  config: ClientConfig,
  env: NodeJS.ProcessEnv,
  miTimeoutMs: number,
): Promise<void> {
  const p = 'azure-key-vault';
  const chain = await checkAzureChain(d, env, config.azure.cloud, miTimeoutMs);
  if (!chain.credential) return;
  const [provider] = d.lib.providersFromConfig(
    { ...config, providers: [p] },
    { azure: { credential: chain.credential } },
  );
  const vaultUrl = (provider as unknown as { vaultUrl?: string }).vaultUrl ?? config.azure.vaultUrl!;
  const vault = new URL(vaultUrl).hostname.split('.')[0];
  const ref = d.lib.secretRefFor(config, p);
  const secret = ref.split('#')[0];
  try {
    const value = await provider.get(ref, { version: d.lib.secretVersionFor(config, p) });
    d.remember(value);
    d.add('PASS', `${p}: reachable`, `${vaultUrl} answered`);
    d.add(
      'PASS',
      `${p}: permission`,
      `may get ${secret}${config.azure.secretVersion ? ` version ${config.azure.secretVersion}` : ''}`,
    );
    formatCheck(d, p, value, config.azure.authMode, config.authHeaderName);
  } catch (err) {
    const status = statusOf(err);
    const msg = describeError(err);
    if (status === undefined) {
      if (/challenge resource/i.test(msg))
        d.add(
          'FAIL',
          `${p}: reachable`,
          `${vaultUrl} answered with a challenge for another domain: ${msg.slice(0, 200)}`,
          "use the vault's own DNS name in AZURE_KEY_VAULT_URL (https://NAME.vault.azure.net), not an IP address or an alias",
        );
      else if (isConnectError(err)) {
        const { detail, hint } = classifyNetworkError(err, vaultUrl, 'NODE_EXTRA_CA_CERTS');
        d.add(
          'FAIL',
          `${p}: reachable`,
          detail,
          /DNS/.test(detail)
            ? `${hint}; a vault behind a private endpoint needs its privatelink DNS zone`
            : hint,
        );
      } else d.add('FAIL', `${p}: reachable`, msg, 'check AZURE_KEY_VAULT_URL and the network');
      return;
    }
    d.add('PASS', `${p}: reachable`, `${vaultUrl} answered`);
    const r = keyVaultReply(err);
    const said = `${r.code ?? `HTTP ${status}`}${r.inner ? `/${r.inner}` : ''}`;
    if (status === 403) {
      const { detail, hint } = keyVaultForbidden(r, { vault, secret });
      d.add('FAIL', `${p}: permission`, detail, hint);
    } else if (status === 401)
      d.add(
        'FAIL',
        `${p}: permission`,
        `the vault refused the token of ${chain.name} (${said}): ${r.message.slice(0, 200)}`,
        `the token is for another tenant or audience: the identity must belong to the vault's tenant, and the token's audience must be ${vaultUrl.includes('vault.azure.net') ? 'https://vault.azure.net' : "the vault's domain"}`,
      );
    else if (status === 404 && r.code === 'VaultNotFound')
      d.add(
        'FAIL',
        `${p}: permission`,
        `vault ${vault} does not exist (${said})`,
        'check AZURE_KEY_VAULT_URL',
      );
    else if (status === 404 && /no field/.test(msg))
      d.add(
        'FAIL',
        `${p}: permission`,
        msg,
        'the secret exists but has no such field: fix the #field part of MLFLOW_AZURE_SECRET_NAME',
      );
    else if (status === 404)
      d.add(
        'FAIL',
        `${p}: permission`,
        `no secret ${secret}${config.azure.secretVersion ? ` version ${config.azure.secretVersion}` : ''} in ${vaultUrl} (${said})`,
        `check MLFLOW_AZURE_SECRET_NAME${config.azure.secretVersion ? ' and MLFLOW_AZURE_SECRET_VERSION' : ''}: \`az keyvault secret list --vault-name ${vault}\``,
      );
    else
      d.add(
        'FAIL',
        `${p}: permission`,
        `${said}: ${r.message.slice(0, 200)}`,
        'check the vault and the secret name',
      );
  } finally {
    await provider.close().catch(() => {});
  }
}
