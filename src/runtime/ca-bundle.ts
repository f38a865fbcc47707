import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';

/** Debian/Ubuntu/Alpine's bundle (RHEL keeps one at /etc/pki/tls/certs/ca-bundle.crt). */
export const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

export interface PrivateDir {
  path: string;
  /** Removes the directory and everything in it; safe to call twice. */
  remove(): Promise<void>;
}

/** A fresh directory only this user can enter (0700), for the files `custody run` hands its child. */
export async function makePrivateDir(prefix = 'custody-run-'): Promise<PrivateDir> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await chmod(dir, 0o700);
  return { path: dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface CaBundle {
  /** Public roots + the system bundle + any bundle already configured + Custody's CA. */
  bundlePath: string;
  /** Custody's CA alone (plus an existing NODE_EXTRA_CA_CERTS file), for NODE_EXTRA_CA_CERTS. */
  extraPath: string;
}

const PEM_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

async function pemsOf(file: string | undefined): Promise<string[]> {
  if (!file) return [];
  try {
    return (await readFile(file, 'utf8')).match(PEM_RE) ?? [];
  } catch {
    return [];
  }
}

/**
 * Writes the CA files a child needs to trust Custody's CA in addition to what it trusted before:
 * Python's requests (`REQUESTS_CA_BUNDLE`) and OpenSSL (`SSL_CERT_FILE`) *replace* their default
 * roots with the file they are given, so the bundle carries Node's public roots, the system bundle,
 * and the bundles the parent environment already pointed at. Node adds `NODE_EXTRA_CA_CERTS` to its
 * own roots, so that file only needs Custody's CA (and a previous NODE_EXTRA_CA_CERTS file's certs).
 */
export async function writeCaBundle(
  dir: string,
  custodyCaPem: string,
  env: NodeJS.ProcessEnv,
): Promise<CaBundle> {
  const custody = custodyCaPem.match(PEM_RE) ?? [];
  if (custody.length === 0) throw new Error("The broker's CA file holds no PEM certificate");
  const seen = new Set<string>();
  const unique = (pems: string[]) =>
    pems.filter((p) => {
      const key = p.replace(/\s+/g, '');
      return !seen.has(key) && seen.add(key);
    });
  const existing = await Promise.all(
    [...SYSTEM_BUNDLES, env.REQUESTS_CA_BUNDLE, env.SSL_CERT_FILE, env.CURL_CA_BUNDLE].map(pemsOf),
  );
  const bundle = unique([...rootCertificates, ...existing.flat(), ...custody]);
  const bundlePath = path.join(dir, 'ca-bundle.pem');
  await writeFile(bundlePath, `${bundle.join('\n')}\n`, { mode: 0o644 });

  seen.clear();
  const extra = unique([...(await pemsOf(env.NODE_EXTRA_CA_CERTS)), ...custody]);
  const extraPath = path.join(dir, 'custody-ca.pem');
  await writeFile(extraPath, `${extra.join('\n')}\n`, { mode: 0o644 });
  return { bundlePath, extraPath };
}
