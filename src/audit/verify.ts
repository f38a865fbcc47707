import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ChainVerifier, type VerifyOptions, type VerifyResult } from './chain-verifier.js';

/**
 * Verifies an audit file line by line without loading it into memory. Pass startPrevHash (the
 * last hash of the previous file) to verify a file that continues a rotated one.
 */
export async function verifyAuditFile(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const verifier = new ChainVerifier(opts);
  const stream = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (!verifier.push(line)) break;
    }
  } finally {
    lines.close();
    stream.destroy();
  }
  return verifier.finish();
}
