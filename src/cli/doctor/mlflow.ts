import { type Agent, request } from 'undici';
import type { ClientConfig } from '../../client/config.js';
import { HostPolicy } from '../../client/mlflow/allowlist.js';
import { classifyNetworkError, type Doctor } from './checks.js';

/*
 * The last step: would the client send the credential to this MLflow URL (the client's own
 * allowlist), and does MLflow accept it? A 401/403 there is a failure, not a success.
 */

export async function checkMlflow(d: Doctor, config: ClientConfig, url: URL): Promise<void> {
  const host = url.hostname.toLowerCase();
  const allowed = config.allowedHosts ?? [];
  const decision = new HostPolicy({ allowedHosts: allowed }).check(url);
  if (!decision.allowed) {
    const why =
      decision.reason === 'insecure'
        ? `plain http to ${host} would send the credential in clear text`
        : decision.reason === 'not-allowed'
          ? `${host} matches none of MLFLOW_SECRETS_ALLOWED_HOSTS (${allowed.join(', ')})`
          : decision.message;
    d.add(
      'FAIL',
      'allowlist',
      `credentials refused for ${url.origin}: ${why}`,
      decision.reason === 'insecure'
        ? 'use https for a non-loopback MLflow server'
        : `add the host to MLFLOW_SECRETS_ALLOWED_HOSTS if it is yours (beware look-alike domains)`,
    );
    d.add('WARN', 'mlflow: authenticated request', 'skipped: the host is not allowed');
    return;
  }
  if (allowed.length === 0) {
    d.add(
      'WARN',
      'allowlist',
      `MLFLOW_SECRETS_ALLOWED_HOSTS is not set: credentials would be sent to any host, ${host} included`,
      `set MLFLOW_SECRETS_ALLOWED_HOSTS=${url.hostname}`,
    );
  } else {
    d.add('PASS', 'allowlist', `${host} is on MLFLOW_SECRETS_ALLOWED_HOSTS (${allowed.join(', ')})`);
  }
  if (!d.credential) {
    d.add('WARN', 'mlflow: authenticated request', 'skipped: no usable credential');
    return;
  }
  const target = `${url.origin}${url.pathname.replace(/\/+$/, '')}/api/2.0/mlflow/experiments/search?max_results=1`;
  const { header: headerName, value: header } = d.credential.cred;
  const ca = process.env.REQUESTS_CA_BUNDLE ?? process.env.MLFLOW_TRACKING_SERVER_CERT_PATH;
  let agent: Agent | undefined;
  try {
    agent = ca ? d.lib.createAgent({ caCertFile: ca }) : undefined;
    const res = await request(target, {
      headers: { [headerName]: header, accept: 'application/json' },
      dispatcher: agent,
      signal: AbortSignal.timeout(15_000),
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    const text = (await res.body.text()).slice(0, 300);
    const where = `GET ${url.origin}…/experiments/search`;
    if (res.statusCode === 200)
      d.add(
        'PASS',
        'mlflow: authenticated request',
        `${where} → 200 with the ${d.credential.provider} credential`,
      );
    else if (res.statusCode === 401)
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → 401: MLflow refused the credential`,
        'the stored username/password or token is wrong or expired: update the secret',
      );
    else if (res.statusCode === 403)
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → 403: authenticated but not permitted`,
        'grant the MLflow user permission (e.g. READ on experiments) or set a default permission',
      );
    else if (res.statusCode >= 300 && res.statusCode < 400)
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → ${res.statusCode} redirect to ${String(res.headers.location ?? '?')}`,
        'use the final URL: credentials are not sent across redirects',
      );
    else
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → HTTP ${res.statusCode}: ${text.replace(/\s+/g, ' ')}`,
      );
  } catch (err) {
    const { detail, hint } = classifyNetworkError(err, url.origin, 'REQUESTS_CA_BUNDLE');
    d.add('FAIL', 'mlflow: authenticated request', detail, hint);
  } finally {
    await agent?.close().catch(() => {});
  }
}
