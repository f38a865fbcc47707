import {
  createPrivateKey,
  KeyObject,
  X509Certificate as NodeX509,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
// @peculiar/x509's DI container (tsyringe) needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { badRequest, CustodyError } from '../errors.js';

/**
 * A small local PKI: one long-lived CA per data directory, a server certificate for the broker,
 * and on-the-fly leaf certificates (for the TLS-intercepting proxy). ECDSA P-256 everywhere.
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY = 86_400_000;
const RENEW_BEFORE = 30 * DAY;
const DEFAULT_HOSTS = ['localhost', '127.0.0.1', '::1'];

export interface CaMaterial {
  certPem: string;
  keyPem: string;
}
export interface TlsMaterial {
  caCertPath: string;
  caCertPem: string;
  certPem: string;
  keyPem: string;
}
interface SanName {
  type: 'dns' | 'ip';
  value: string;
}

/** Make sure `dir` holds a CA and a server certificate covering localhost plus `opts.hosts`. */
export async function ensureTls(dir: string, opts: { hosts: string[] }): Promise<TlsMaterial> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const hosts = [...DEFAULT_HOSTS, ...opts.hosts];
  const names = normalizeHosts(hosts);
  let ca = await readPair(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'));
  if (ca) checkKeyPair(ca, 'ca.pem');
  if (!ca || expiresWithin(ca.certPem, RENEW_BEFORE)) {
    ca = await createCa();
    await writeAtomic(join(dir, 'ca-key.pem'), ca.keyPem, 0o600);
    await writeAtomic(join(dir, 'ca.pem'), ca.certPem, 0o644);
  }
  let server = await readPair(join(dir, 'server.pem'), join(dir, 'server-key.pem'));
  if (!server || !serverCertUsable(server, ca, names)) {
    server = await issueLeafCertificate(ca, hosts, 365);
    await writeAtomic(join(dir, 'server-key.pem'), server.keyPem, 0o600);
    await writeAtomic(join(dir, 'server.pem'), server.certPem, 0o644);
  }
  return {
    caCertPath: join(dir, 'ca.pem'),
    caCertPem: ca.certPem,
    certPem: server.certPem,
    keyPem: server.keyPem,
  };
}

/** Read the CA kept by `ensureTls` in `dir`; throws if it is missing or its key does not match. */
export async function loadCa(dir: string): Promise<CaMaterial> {
  const ca = await readPair(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'));
  if (!ca)
    throw new CustodyError(
      'TlsCaMissing',
      500,
      `No CA certificate and key in ${dir}`,
      'Run the server once.',
    );
  checkKeyPair(ca, 'ca.pem');
  return ca;
}

/** Mint a server certificate for `hosts` (DNS names, wildcards, IP addresses) signed by `ca`. */
export async function issueLeafCertificate(ca: CaMaterial, hosts: string[], days = 365): Promise<CaMaterial> {
  const names = normalizeHosts(hosts);
  if (names.length === 0) throw badRequest('InvalidHost', 'A certificate needs at least one host');
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKey(ca.keyPem);
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const notAfter = new Date(Math.min(now + days * DAY, caCert.notAfter.getTime()));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [names[0].value] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now - 3_600_000), // tolerate small clock skew between hosts
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: exportKey(keys.privateKey) };
}

async function createCa(): Promise<CaMaterial> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [`Custody Local CA ${randomBytes(4).toString('hex')}`] }],
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 3650 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: exportKey(keys.privateKey) };
}

function serverCertUsable(server: CaMaterial, ca: CaMaterial, wanted: SanName[]): boolean {
  try {
    const cert = new NodeX509(server.certPem);
    const caCert = new NodeX509(ca.certPem);
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false;
    if (!cert.checkPrivateKey(createPrivateKey(server.keyPem))) return false;
    if (expiresWithin(server.certPem, RENEW_BEFORE)) return false;
    const san = new x509.X509Certificate(server.certPem).getExtension(x509.SubjectAlternativeNameExtension);
    const have = new Set(
      normalizeHosts(
        san?.names.items.filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value) ?? [],
      ).map((n) => `${n.type}:${n.value}`),
    );
    return wanted.every((n) => have.has(`${n.type}:${n.value}`));
  } catch {
    return false;
  }
}

function checkKeyPair(pair: CaMaterial, what: string): void {
  if (!new NodeX509(pair.certPem).checkPrivateKey(createPrivateKey(pair.keyPem))) {
    throw new CustodyError('TlsKeyMismatch', 500, `The private key does not match ${what}`);
  }
}

const expiresWithin = (certPem: string, ms: number) =>
  Date.parse(new NodeX509(certPem).validTo) - Date.now() < ms;

/** Hosts → deduplicated SAN entries. IPs are canonicalised, names lower-cased; `*.` only leftmost. */
function normalizeHosts(hosts: string[]): SanName[] {
  const seen = new Map<string, SanName>();
  for (const raw of hosts) {
    let h = raw.trim().toLowerCase();
    if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
    let name: SanName;
    if (isIP(h) === 4) name = { type: 'ip', value: h };
    else if (isIP(h) === 6)
      name = { type: 'ip', value: new URL(`http://[${h.split('%')[0]}]/`).hostname.slice(1, -1) };
    else {
      h = h.replace(/\.$/, '');
      const label = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
      if (h.length > 253 || !new RegExp(`^(?:\\*\\.)?${label}(?:\\.${label})*$`).test(h)) {
        throw badRequest('InvalidHost', `Not a valid host name or IP address: ${JSON.stringify(raw)}`);
      }
      name = { type: 'dns', value: h };
    }
    seen.set(`${name.type}:${name.value}`, name);
  }
  return [...seen.values()];
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x01; // positive and no leading zero byte
  return b.toString('hex');
}

const exportKey = (key: CryptoKey) =>
  KeyObject.from(key as unknown as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string;

function importKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

async function readPair(certPath: string, keyPath: string): Promise<CaMaterial | null> {
  try {
    return { certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Write via a temp file in the same directory + rename, so readers never see a partial file. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode); // exact mode whatever the umask
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path).catch(async (err) => {
    await unlink(tmp).catch(() => {});
    throw err;
  });
}
