import { type ApiClient, pathOf } from '../cli/api-client.js';
import { CliError } from '../cli/errors.js';
import { Masker, type MaskValue, maskValuesOf, partitionValues } from '../client/masking.js';
import { AZURE_CHILD_VARIABLES, AZURE_IDENTITY_VARIABLES, type AzureSetup, setupAzure } from './azure.js';
import { ExpiryWatch } from './expiry-watch.js';
import { SecretFiles } from './files.js';
import { clientFor, type RunIdentity, TokenKeeper } from './identity.js';
import { LeaseKeeper } from './leases.js';
import { mlflowCredentialFromProviders } from './mlflow-providers.js';
import type { Reporter } from './reporter.js';
import {
  type CredsSpec,
  credsSpecVariables,
  credsVariables,
  fieldOf,
  MLFLOW_AUTH_VARIABLES,
  mlflowSecretVariables,
  passwordVariables,
  type SecretSpec,
  SpecError,
} from './specs.js';
import {
  AWS_ENV_CREDENTIALS,
  PLAIN_IN_FILE_MODE,
  STORAGE_SECRET_FIELDS,
  storageFileForm,
} from './storage-files.js';
import { exitCodeOf, SignalTrap, SpawnError, type Supervised, startChild } from './supervisor.js';
import {
  startVaultProxy,
  VAULT_CHILD_VARIABLES,
  VAULT_UNSUPPORTED_VARIABLES,
  type VaultProxy,
} from './vault.js';

export interface RunOptions {
  command: string;
  args: string[];
  secrets: SecretSpec[];
  creds: CredsSpec[];
  /** A loopback Vault API proxy for the child: VAULT_ADDR and a run-local VAULT_TOKEN. */
  vault: boolean;
  /** Managed-identity endpoint + Key Vault proxy + CA files for the child. */
  azure: boolean;
  /** With `azure`: the proxy refuses every host that is not a Key Vault host. */
  proxyDenyOthers: boolean;
  /** After a forwarded signal, how long the child gets before SIGKILL. */
  killGraceMs: number;
  /** Leave CUSTODY_TOKEN in the child's environment (removed by default). */
  passToken: boolean;
  /** `--mlflow`: a lease of an MLflow engine (also in `creds`, with this prefix). */
  mlflowPrefix?: string;
  /** `--mlflow-secret ENV/NAME[#field]`: stored MLflow credentials (token, or username/password). */
  mlflowSecret?: Omit<SecretSpec, 'variable'>;
  /** `--mlflow-provider-env`: MLflow credentials from the mlflow-secrets-auth providers. */
  mlflowProviderEnv?: boolean;
  /** Mask the injected values in the child's stdout/stderr (default on; `--no-mask` turns it off). */
  mask?: boolean;
  /** Deliver each value as a 0600 file on a tmpfs; the variable holds its path. */
  files?: boolean;
  /** `--expect`: how long the job expects to run (ms); compared with what ends first. */
  expectMs?: number;
  /** `--strict-expect`: exit 1 before starting the command when something ends before `expectMs`. */
  strictExpect?: boolean;
  /** With `files`: the signal sent to the child (its process group) after a lease was rotated. */
  onRotate?: NodeJS.Signals;
  /** With `files`: how long a rotated lease is kept before it is revoked (default 30 s). */
  rotateGraceMs?: number;
  /** `--warn-before`: how long before a credential ends the warning comes (default 15 min). */
  warnBeforeMs?: number;
  /** Override the process-group decision (tests); default: detached unless stdin is a terminal. */
  detached?: boolean;
}

/** How long a managed-identity token is announced for when the Custody token never expires. */
const MI_TOKEN_HORIZON_MS = 3_600_000;

/** Who sets a lease's variables, in messages. */
const credsOwner = (c: CredsSpec) =>
  c.fields ? `--env-template creds:${c.env}/${c.engine}/${c.role}` : `--creds ${c.prefix}`;

/** Variables the options themselves set (→ the option): no `--secret`/`--creds` variable may take one. */
function reservedOwners(
  opts: Pick<RunOptions, 'vault' | 'azure' | 'mlflowSecret' | 'mlflowProviderEnv'>,
): Map<string, string> {
  const owner = new Map<string, string>();
  if (opts.vault) for (const v of VAULT_CHILD_VARIABLES) owner.set(v, '--vault');
  if (opts.azure) for (const v of AZURE_CHILD_VARIABLES) owner.set(v, '--azure');
  if (opts.mlflowSecret) for (const v of MLFLOW_AUTH_VARIABLES) owner.set(v, '--mlflow-secret');
  if (opts.mlflowProviderEnv) for (const v of MLFLOW_AUTH_VARIABLES) owner.set(v, '--mlflow-provider-env');
  return owner;
}

/**
 * Checks that no two specs (and no option) set the same variable: a usage error before anything is
 * asked of the broker. Lease data fields are checked again once they are known.
 */
export function checkVariableClashes(
  opts: Pick<RunOptions, 'secrets' | 'creds' | 'vault' | 'azure' | 'mlflowSecret' | 'mlflowProviderEnv'>,
): void {
  const owner = reservedOwners(opts);
  const claim = (variable: string, by: string) => {
    const prev = owner.get(variable);
    if (prev !== undefined) {
      throw new SpecError(
        'VariableClash',
        `${variable} is set by both ${prev} and ${by}`,
        'Give each --secret / --creds its own variable name (or prefix).',
      );
    }
    owner.set(variable, by);
  };
  for (const s of opts.secrets) claim(s.variable, `--secret ${s.variable}`);
  for (const c of opts.creds) for (const v of credsSpecVariables(c)) claim(v, credsOwner(c));
}

/** The parent's environment minus what the child must not inherit. */
export function baseChildEnv(
  parent: NodeJS.ProcessEnv,
  opts: Pick<RunOptions, 'azure' | 'vault' | 'passToken'>,
): {
  env: NodeJS.ProcessEnv;
  removed: string[];
} {
  const env: NodeJS.ProcessEnv = { ...parent };
  const removed: string[] = [];
  const drop = (names: readonly string[], report: boolean) => {
    for (const n of names) {
      if (env[n] === undefined) continue;
      delete env[n];
      if (report) removed.push(n);
    }
  };
  if (!opts.passToken) drop(['CUSTODY_TOKEN'], false);
  if (opts.azure) drop(AZURE_IDENTITY_VARIABLES, true);
  if (opts.vault) drop(VAULT_UNSUPPORTED_VARIABLES, true);
  return { env, removed };
}

/**
 * `--expect DURATION`: says what ends first (the token's max TTL, unless a workload login renews it by
 * logging in again; each lease's max TTL, or its TTL when it cannot be renewed — unless `--files`
 * rotates it), and warns about what
 * ends before the expected end. With `strict`, that is an error (exit 1) and the command never starts.
 */
export function checkExpect(
  expectMs: number,
  strict: boolean,
  identity: RunIdentity,
  tokens: TokenKeeper,
  leases: LeaseKeeper,
  report: Reporter,
): void {
  const now = Date.now();
  const ends: { what: string; at: number }[] = [];
  if (!identity.login) {
    const at = tokens.maxExpiresAt ?? tokens.expiresAt;
    if (at !== null) ends.push({ what: "the job's token (max TTL)", at });
  }
  for (const l of leases.lifetimes) {
    if (l.rotates)
      report.note(`lease ${l.id} (${l.prefix}_*) is replaced by a fresh lease before its max TTL (--files)`);
    else ends.push({ what: `lease ${l.id} (${l.prefix}_*)`, at: l.endsAt });
  }
  ends.sort((a, b) => a.at - b.at);
  const target = now + expectMs;
  const human = (ms: number) => `${Math.max(0, Math.round(ms / 1000))}s`;
  if (ends.length === 0) {
    report.note(`--expect ${human(expectMs)}: nothing this job holds expires`);
    return;
  }
  const first = ends[0];
  const short = ends.filter((e) => e.at < target);
  report.note(
    `--expect ${human(expectMs)}: ${first.what} ends first, at ${new Date(first.at).toISOString()} (in ${human(first.at - now)})`,
  );
  for (const e of short)
    report.warn(
      'ExpectExceeded',
      `${e.what} ends at ${new Date(e.at).toISOString()}, ${human(target - e.at)} before the expected end of the job`,
    );
  if (strict && short.length > 0)
    throw new CliError(
      'ExpectExceeded',
      `--strict-expect: ${short.length} credential(s) end before --expect ${human(expectMs)}; the command was not started`,
      "Raise the role's max TTL (or the token's), or expect a shorter run.",
    );
}

/** A signal arrived before the child started: stop setting up, clean up, exit 128 + signal. */
class Aborted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`Interrupted by ${signal}`);
  }
}

interface SecretWire {
  value: string;
}

/**
 * `custody run`: fetches secrets, issues leases, prepares the Vault / Azure shims, starts the child
 * with them in its environment, keeps leases and token alive while it runs, forwards signals, and on
 * every way out revokes the leases and removes what it set up. Returns the exit code: the child's, or
 * 128 + signal. A failure before the child starts throws (a CliError) after undoing everything.
 */
export async function runJob(
  identity: RunIdentity,
  opts: RunOptions,
  report: Reporter,
  parentEnv: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const trap = new SignalTrap();
  const checkAbort = () => {
    if (trap.pending) throw new Aborted(trap.pending);
  };
  let client: ApiClient | null = null;
  let tokens: TokenKeeper | null = null;
  let leases: LeaseKeeper | null = null;
  let azure: AzureSetup | null = null;
  let vault: VaultProxy | null = null;
  let files: SecretFiles | null = null;
  let running: Supervised | null = null;
  let expiry: ExpiryWatch | null = null;
  /** The variables delivered as files (rewritten when their lease is rotated). */
  const fileVars = new Set<string>();
  try {
    const api = await clientFor(identity);
    client = api;
    const watch = new ExpiryWatch(
      report,
      async (notice) => {
        await api.post('/v1/audit/notices', notice);
      },
      opts.warnBeforeMs,
    );
    expiry = watch;
    const keeper = new LeaseKeeper(api, report, watch);
    leases = keeper;
    const tokenKeeper = new TokenKeeper(api, report, identity, watch);
    tokens = tokenKeeper;
    await tokenKeeper.start();
    checkAbort();

    const childVars: Record<string, string> = {};
    /** What the output masking hides (whole values; JSON fields are added below). */
    const toMask: MaskValue[] = [];
    let masker: Masker | undefined;
    if (opts.files && opts.creds.length > 0) {
      // A file can be rewritten: a lease near its max TTL is replaced by a fresh one.
      keeper.enableRotation({
        graceMs: opts.rotateGraceMs ?? 30_000,
        deliver: (spec, issued) => {
          const vars = storageFileForm(credsVariables(spec, issued));
          const secretsNow = passwordVariables(spec).map((variable) => ({
            variable,
            value: issued.password,
          }));
          toMask.push(...secretsNow);
          masker?.add(secretsNow);
          for (const [k, v] of vars) {
            if (files && fileVars.has(k)) files.rewrite(k, v);
            else if (!files) childVars[k] = v;
          }
          if (running && opts.onRotate) running.signal(opts.onRotate);
        },
      });
    }
    // Secrets, in parallel; the first failure wins.
    const values = await Promise.all(
      opts.secrets.map(async (s) => {
        const { body } = await api.get<SecretWire>(
          `/v1/secrets/${encodeURIComponent(s.env)}/${pathOf(s.name)}`,
        );
        return s.field === undefined ? body.value : fieldOf(body.value, s.field, `${s.env}/${s.name}`);
      }),
    );
    opts.secrets.forEach((s, i) => {
      childVars[s.variable] = values[i];
      toMask.push(...maskValuesOf(s.variable, values[i]));
    });
    if (opts.mlflowSecret) {
      const m = opts.mlflowSecret;
      const what = `${m.env}/${m.name}`;
      const { body } = await api.get<SecretWire>(
        `/v1/secrets/${encodeURIComponent(m.env)}/${pathOf(m.name)}`,
      );
      const raw = m.field === undefined ? body.value : fieldOf(body.value, m.field, what);
      for (const [k, v] of mlflowSecretVariables(raw, what)) {
        childVars[k] = v;
        toMask.push({ variable: k, value: v });
      }
    }
    if (opts.mlflowProviderEnv) {
      const raw = await mlflowCredentialFromProviders(parentEnv, report);
      for (const [k, v] of mlflowSecretVariables(raw, 'the provider credential')) {
        childVars[k] = v;
        toMask.push({ variable: k, value: v });
      }
    }
    checkAbort();

    // Leases, one after the other, so a failure leaves as little as possible to revoke.
    const owner = reservedOwners(opts);
    for (const k of Object.keys(childVars)) owner.set(k, `--secret ${k}`);
    for (const spec of opts.creds) {
      const issued = await keeper.issue(spec);
      if (spec.prefix === opts.mlflowPrefix && !('MLFLOW_TRACKING_URI' in (issued.data ?? {}))) {
        throw new CliError(
          'NotMlflow',
          `--mlflow ${spec.env}/${spec.engine}/${spec.role}: the lease has no MLFLOW_TRACKING_URI (not an MLflow engine?)`,
          'Use --creds PREFIX=… for other engines.',
        );
      }
      const by = credsOwner(spec);
      const vars = credsVariables(spec, issued);
      // Storage credentials carry more secrets than the password (session token, SAS URLs).
      for (const [k, v] of vars) if (STORAGE_SECRET_FIELDS.has(k)) toMask.push({ variable: k, value: v });
      for (const [k, v] of opts.files ? storageFileForm(vars) : vars) {
        const prev = owner.get(k);
        if (prev !== undefined && prev !== by) {
          throw new CliError(
            'VariableClash',
            `The lease of ${by} sets ${k}, which ${prev} sets too`,
            'Use another --creds prefix or --secret variable name.',
            2,
          );
        }
        owner.set(k, by);
        childVars[k] = v;
      }
      for (const variable of passwordVariables(spec)) toMask.push({ variable, value: issued.password });
      checkAbort();
    }

    if (opts.expectMs !== undefined)
      checkExpect(opts.expectMs, opts.strictExpect === true, identity, tokenKeeper, keeper, report);

    const { env, removed } = baseChildEnv(parentEnv, opts);
    if (removed.length > 0) {
      // Names only: values of these may be credentials.
      report.note(
        `not passed to the child: ${removed.join(', ')} (they would override what ${[opts.azure ? '--azure' : '', opts.vault ? '--vault' : ''].filter(Boolean).join(' and ')} sets up)`,
      );
    }
    if (opts.vault) {
      vault = await startVaultProxy({
        addr: identity.config.addr,
        caCertPath: identity.config.caCertPath,
        currentToken: () => identity.token,
      });
      Object.assign(env, vault.env);
      toMask.push({ variable: 'VAULT_TOKEN', value: vault.env.VAULT_TOKEN });
    }
    if (opts.azure) {
      const existingProxy = parentEnv.HTTPS_PROXY ?? parentEnv.https_proxy;
      if (existingProxy) {
        report.warn(
          'ProxyReplaced',
          'HTTPS_PROXY is replaced for the child: hosts other than Key Vault are reached directly, not through the previous proxy',
        );
      }
      azure = await setupAzure({
        addr: identity.config.addr,
        caCertPath: identity.config.caCertPath,
        denyOthers: opts.proxyDenyOthers,
        parentEnv,
        getToken: async () => ({
          token: identity.token,
          expiresAt: new Date(tokenKeeper.expiresAt ?? Date.now() + MI_TOKEN_HORIZON_MS),
        }),
      });
      Object.assign(env, azure.env);
    }
    if (opts.mask !== false) {
      const { masked, short } = partitionValues(toMask.filter((m) => m.value === childVars[m.variable]));
      if (short.length > 0)
        report.warn(
          'ShortValueNotMasked',
          `not masked in the output (shorter than 8 characters): ${short.join(', ')}`,
        );
      const all = [...masked, ...toMask.filter((m) => m.value !== childVars[m.variable])];
      const m = new Masker(all);
      if (m.active) masker = m;
    }
    if (opts.files) {
      const secretFiles = SecretFiles.create(parentEnv);
      files = secretFiles;
      for (const [k, v] of Object.entries(childVars)) {
        if (PLAIN_IN_FILE_MODE.has(k)) continue;
        childVars[k] = secretFiles.write(k, v);
        fileVars.add(k);
      }
      // A credentials file loses to AWS_* credentials in the environment: the parent's must go.
      if ('AWS_SHARED_CREDENTIALS_FILE' in childVars) for (const k of AWS_ENV_CREDENTIALS) delete env[k];
    }
    Object.assign(env, childVars);
    checkAbort();

    let child: Awaited<ReturnType<typeof startChild>>;
    try {
      child = await startChild({
        command: opts.command,
        args: opts.args,
        env,
        graceMs: opts.killGraceMs,
        detached: opts.detached,
        mask: masker,
      });
    } catch (err) {
      if (err instanceof SpawnError) {
        const notFound = err.code === 'ENOENT';
        throw new CliError(
          notFound ? 'CommandNotFound' : 'CommandNotStarted',
          notFound ? `${err.command}: command not found` : `Cannot start ${err.command} (${err.code})`,
          notFound
            ? 'Check the command name and PATH (the command after -- is run directly, not by a shell: use sh -c "…" for shell syntax).'
            : 'Check that the file is executable.',
        );
      }
      throw err;
    }
    running = child;
    trap.deliverTo((signal) => child.forward(signal));
    const exit = await child.exited;
    return exit.exitCode;
  } catch (err) {
    if (err instanceof Aborted) {
      report.note(`${err.signal} received before the command started: nothing was started`);
      return exitCodeOf(null, err.signal);
    }
    throw err;
  } finally {
    // The child is gone: nothing it holds can expire under it any more.
    await expiry?.stop();
    tokens?.stop();
    // Revoke first (the credentials must stop working as soon as possible), then tear down.
    await leases?.revokeAll();
    files?.remove();
    await azure?.close();
    await vault?.close();
    await client?.close();
    trap.release();
  }
}
