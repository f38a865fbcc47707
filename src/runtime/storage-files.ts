/**
 * Storage credentials (the azure-blob and aws-s3 engines) in `custody run`. Pure functions.
 *
 * With `--files` every delivered value becomes a file path, which SDKs would take for a key: so a
 * storage lease gets the file form the SDKs read instead — an AWS shared credentials file
 * (`AWS_SHARED_CREDENTIALS_FILE`, profile `default`) in place of the three AWS_* secrets, and
 * `AZURE_STORAGE_SAS_TOKEN_FILE` in place of the SAS — while the names that are not secret
 * (region, endpoint, account URL, bucket, container) stay plain values.
 */

/** Lease data fields that are credentials: masked in the child's output like the password. */
export const STORAGE_SECRET_FIELDS = new Set([
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AZURE_STORAGE_SAS_TOKEN',
  'AZURE_STORAGE_CONTAINER_SAS_URL',
  'AZURE_STORAGE_ACCOUNT_SAS_URL',
  'AZURE_STORAGE_PREFIX_SAS_URL',
]);

/** Not secret, and read by SDKs as values: never turned into file paths by `--files`. */
export const PLAIN_IN_FILE_MODE = new Set([
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_ENDPOINT_URL_S3',
  'S3_BUCKET',
  'S3_PREFIX',
  'S3_URL',
  'AZURE_STORAGE_ACCOUNT',
  'AZURE_STORAGE_ACCOUNT_URL',
  'AZURE_STORAGE_CONTAINER',
  'AZURE_STORAGE_PREFIX',
]);

/** Variables of the parent that would override a credentials file (the SDKs read them first). */
export const AWS_ENV_CREDENTIALS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
];

/** A lease's variables in file form (unchanged for leases that are not storage credentials). */
export function storageFileForm(vars: [string, string][]): [string, string][] {
  const m = new Map(vars);
  const id = m.get('AWS_ACCESS_KEY_ID');
  const secret = m.get('AWS_SECRET_ACCESS_KEY');
  const token = m.get('AWS_SESSION_TOKEN');
  let out = vars;
  if (id && secret && token) {
    out = out.filter(
      ([k]) => !['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'].includes(k),
    );
    out.push([
      'AWS_SHARED_CREDENTIALS_FILE',
      `[default]\naws_access_key_id = ${id}\naws_secret_access_key = ${secret}\naws_session_token = ${token}\n`,
    ]);
  }
  if (m.has('AZURE_STORAGE_SAS_TOKEN'))
    out = out.map(([k, v]) =>
      k === 'AZURE_STORAGE_SAS_TOKEN' ? ['AZURE_STORAGE_SAS_TOKEN_FILE', v] : [k, v],
    );
  return out;
}
