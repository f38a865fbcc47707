import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** PostgreSQL's own default iteration count (`scram_iterations`). */
export const SCRAM_ITERATIONS = 4096;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, the format of
 * `pg_authid.rolpassword`): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. Sending it in
 * `CREATE/ALTER ROLE … PASSWORD` instead of the password means the password itself never reaches the
 * server — not its statement log, not the log line of a failed statement — and logins still work with
 * scram-sha-256, md5 and password authentication alike.
 *
 * PostgreSQL SASLprep-normalizes passwords first; that is the identity for printable ASCII (every
 * generated password), so other passwords are left to the caller (`verifierFor` returns undefined).
 */
export async function scramSha256Verifier(
  password: string,
  salt: Buffer = randomBytes(16),
  iterations = SCRAM_ITERATIONS,
): Promise<string> {
  const salted = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** The verifier when SASLprep cannot change `password` (printable ASCII); else undefined. */
export async function verifierFor(password: string): Promise<string | undefined> {
  return /^[\x20-\x7e]+$/.test(password) ? scramSha256Verifier(password) : undefined;
}
