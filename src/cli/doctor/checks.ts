import type { AuthMode, ProviderName } from '../../client/config.js';
import { MIN_MASK_LENGTH } from '../../client/masking.js';
import { type Credential, credentialFor, parseSecret } from '../../client/mlflow/credentials.js';
import { describeError, redact } from '../../client/redact.js';

/*
 * The core of `custody doctor`: the Check line, the Doctor that collects them (every line redacted
 * with the values this process has seen), and the helpers every step shares (network error
 * classification, durations, the MLflow secret format).
 */

/** The client SDK loads the AWS and Azure SDKs: imported only when a command runs, not for `--help`. */
export async function sdk() {
  const [cfg, cc, http] = await Promise.all([
    import('../../client/config.js'),
    import('../../client/custody-client.js'),
    import('../../client/http.js'),
  ]);
  return { ...cfg, ...cc, ...http };
}
export type Sdk = Awaited<ReturnType<typeof sdk>>;

export type CheckStatus = 'PASS' | 'FAIL' | 'WARN';
export interface Check {
  status: CheckStatus;
  name: string;
  detail: string;
  hint?: string;
}

export class Doctor {
  readonly checks: Check[] = [];
  readonly known = new Set<string>();
  /** The first usable MLflow credential (for the authenticated request). */
  credential: { provider: ProviderName; cred: Credential } | undefined;
  constructor(readonly lib: Sdk) {}

  add(status: CheckStatus, name: string, detail: string, hint?: string): void {
    const known = [...this.known];
    this.checks.push({
      status,
      name: redact(name, known),
      detail: redact(detail, known),
      ...(hint && status !== 'PASS' ? { hint: redact(hint, known) } : {}),
    });
  }

  /** Values never to print (tokens, passwords, secret values). */
  remember(...values: (string | undefined | null)[]): void {
    for (const v of values) if (v) this.known.add(v);
  }
}

/** `90s`, `25m`, `1.5h`. */
export const fmtDuration = (sec: number): string => {
  if (sec < 120) return `${Math.round(sec)}s`;
  if (sec < 7200) return `${Math.round(sec / 60)}m`;
  return `${(sec / 3600).toFixed(1).replace(/\.0$/, '')}h`;
};

/** The first line of a redacted error description, at most `max` characters. */
export const shortError = (err: unknown, max = 200): string => {
  const line = describeError(err).split('\n')[0].trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

// ---- network error classification -----------------------------------------------------------

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/** Every `code` on an error, its causes and its aggregated errors. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 6 && e && typeof e === 'object'; i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') codes.push(c);
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) for (const x of errors) codes.push(...errorCodes(x));
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** True when the server was not reached or not trusted (no HTTP answer): DNS, refused, TLS, timeout. */
export function isConnectError(err: unknown): boolean {
  const codes = errorCodes(err);
  return (
    codes.some((c) => TLS_CODES.has(c)) ||
    codes.some((c) =>
      /^(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|UND_ERR_\w+)$/.test(
        c,
      ),
    )
  );
}

/** A network failure → detail and hint (TLS trust, DNS, refused, timeout). */
export function classifyNetworkError(
  err: unknown,
  target: string,
  caVar: string,
): { detail: string; hint: string } {
  const codes = errorCodes(err);
  const text = describeError(err);
  if (codes.some((c) => TLS_CODES.has(c)) || /certificate|self[- ]signed/i.test(text)) {
    return {
      detail: `TLS: the certificate of ${target} is not trusted (${codes.find((c) => TLS_CODES.has(c)) ?? text})`,
      hint: `set ${caVar} (or REQUESTS_CA_BUNDLE) to the PEM file of the CA that signed it`,
    };
  }
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) {
    return {
      detail: `DNS: ${target} does not resolve`,
      hint: 'check the host name in the address and the DNS configuration of this machine',
    };
  }
  if (codes.includes('ECONNREFUSED')) {
    return {
      detail: `connection refused by ${target}`,
      hint: 'is the server running and listening on that port? check the address and any firewall',
    };
  }
  if (codes.some((c) => /TIMEOUT|ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|ABORT/i.test(c))) {
    return {
      detail: `timed out connecting to ${target}`,
      hint: 'check the network path, proxy and firewall',
    };
  }
  return {
    detail: `${target}: ${text}`,
    hint: 'check the address, the network and TLS trust (CA certificate)',
  };
}

// ---- the MLflow secret format ------------------------------------------------------------------

/** Is the secret a usable MLflow credential? The first usable one is kept for the MLflow request. */
export function formatCheck(
  d: Doctor,
  provider: ProviderName,
  value: string,
  mode: AuthMode,
  headerName: string,
): void {
  try {
    const secret = parseSecret(value);
    const cred = credentialFor(secret, { authMode: mode, headerName });
    d.remember(...cred.secrets, cred.value);
    d.add(
      'PASS',
      `${provider}: secret format`,
      `${secret.kind === 'basic' ? 'username + password' : 'token'} (mode: ${mode})`,
    );
    const short = cred.secrets.filter((v) => v.length < MIN_MASK_LENGTH);
    if (short.length > 0)
      d.add(
        'WARN',
        `${provider}: masking`,
        `the ${secret.kind === 'basic' ? 'password' : 'token'} is shorter than ${MIN_MASK_LENGTH} characters: custody run does not mask it in the job's output and the proxy's leak guard does not look for it`,
        `use a random credential of ${MIN_MASK_LENGTH} characters or more`,
      );
    d.credential ??= { provider, cred };
  } catch (err) {
    d.add(
      'FAIL',
      `${provider}: secret format`,
      (err as Error).message,
      'store {"token":"…"} for bearer mode or {"username":"…","password":"…"} for basic mode',
    );
  }
}
