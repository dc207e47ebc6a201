/**
 * Rotation of the node's client certificate while the agent runs.
 *
 * Contract
 * - Renewal is due at a jittered 70–90 % of the certificate's lifetime (notBefore + lifetime ×
 *   (0.7 + 0.2 × random)), as the kubelet does, so many nodes joined together do not renew together.
 * - Renewal: a new key and a CSR authenticated by the current certificate (auto-approved for
 *   system:nodes renewing their own certificate). The new pair is written (cert-files.ts) and then
 *   handed to `onRotated`, which swaps it into the upstream pool: requests and watches in flight
 *   finish on their connections, new ones use the new certificate. Nothing is dropped.
 * - Expired (the node was offline past notAfter): the certificate no longer authenticates, so the
 *   request is made with a bootstrap token read from `bootstrapTokenFile` (an operator puts a fresh
 *   one there, from `tether-hub token create --node-name <this node>`); the file is deleted once it has been used. Without
 *   a usable token, status().problem says what to do and the error is logged on every attempt.
 * - A failed attempt is retried after a jittered backoff (retryMs doubling up to maxRetryMs; at most
 *   a minute once expired, so a token written by an operator is picked up soon).
 * - Servers are tried in order each attempt; a transport failure moves on to the next.
 * - Through the hub (`agent`, the upstream's hub agent): the CSR is created and read over the
 *   tunnel's api streams, and the hub forwards it as the node (a node may create and read its own
 *   CSRs), so renewal needs no route to the apiserver. An expired certificate's bootstrap-token
 *   request goes the same way, as a bearer request the hub passes on as it is.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { Agent } from 'node:http';
import { ErrorCode, TetherError, isTetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { type LoadedCert, loadCertPair, recoverCertFiles, writeCertPair } from './cert-files.ts';
import { type IssuedCert, requestNodeCertificate } from './request-cert.ts';

export interface RotatedTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface CertRotationOptions {
  nodeName: string;
  /** kube-apiserver URLs to send CSRs to, in order of preference (a function is asked each attempt). */
  servers: readonly string[] | (() => readonly string[]);
  /** Send the CSR requests on this agent's connections (the hub agent; asked each attempt). */
  agent?: () => Agent;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Where an operator puts a fresh bootstrap token for an expired certificate. */
  bootstrapTokenFile?: string;
  /** The new material, after it is on disk: swap it into the upstream pool here. */
  onRotated(tls: RotatedTls): void;
  log: Logger;
  now?: () => number;
  random?: () => number;
  /** Wait for approval and issuance, per attempt. Default 10 minutes. */
  issueTimeoutMs?: number;
  /** Backoff after a failed attempt: first delay and cap. Defaults 2 s and 5 minutes. */
  retryMs?: number;
  maxRetryMs?: number;
}

export type CertState = 'valid' | 'renewing' | 'expired' | 'stopped';

export interface CertRotationStatus {
  state: CertState;
  subject: string;
  notBefore: string;
  notAfter: string;
  /** When the next renewal is due (or the next retry, after a failure). */
  renewAt: string;
  rotations: number;
  lastRotation?: string;
  /** Why renewal fails, with what to do; null when all is well. */
  problem: string | null;
}

export interface CertRotation {
  status(): CertRotationStatus;
  /** Renews now (tests and operators); resolves when this attempt ends, rejects with its error. */
  renewNow(): Promise<void>;
  stop(): void;
}

const DAY = 86_400_000;

/** The renewal deadline: a jittered 70–90 % of the lifetime. */
export function renewalDeadline(notBefore: Date, notAfter: Date, random: () => number): number {
  const life = notAfter.getTime() - notBefore.getTime();
  return notBefore.getTime() + life * (0.7 + 0.2 * random());
}

export function startCertRotation(opts: CertRotationOptions): CertRotation {
  const { log } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const paths = { certFile: opts.certFile, keyFile: opts.keyFile };
  const retryMs = opts.retryMs ?? 2000;
  const maxRetryMs = opts.maxRetryMs ?? 300_000;
  const stopper = new AbortController();

  recoverCertFiles(paths, log); // normally done already, before the agent read the pair
  let current: LoadedCert = loadCertPair(paths);
  let renewAt = renewalDeadline(current.notBefore, current.notAfter, random);
  let rotations = 0;
  let lastRotation: number | undefined;
  let problem: string | null = null;
  let failures = 0;
  let running: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const expired = () => now() >= current.notAfter.getTime();

  const schedule = () => {
    clearTimeout(timer);
    if (stopped) return;
    const delay = Math.max(0, Math.min(renewAt - now(), DAY));
    timer = setTimeout(() => {
      if (now() < renewAt) schedule(); // a long wait is taken a day at a time
      else void attempt().catch(() => {});
    }, delay);
    timer.unref?.();
  };

  const tokenFromFile = (): string => {
    const file = opts.bootstrapTokenFile;
    const ask = `get a fresh bootstrap token with \`tether-hub token create --node-name ${opts.nodeName}\` and write it to ${file ?? '(no bootstrapTokenFile is configured)'}`;
    if (!file) throw new TetherError(ErrorCode.BadConfig, `certificate expired at ${current.notAfter.toISOString()} and no bootstrap token file is configured; join the node again (tether-edge reset, then tether-edge join)`);
    if (!existsSync(file)) throw new TetherError(ErrorCode.BadConfig, `certificate expired at ${current.notAfter.toISOString()}; to re-join, ${ask}`);
    const token = readFileSync(file, 'utf8').trim();
    if (!/^[a-z0-9]{6}\.[a-z0-9]{16}$/.test(token)) throw new TetherError(ErrorCode.BadConfig, `certificate expired; ${file} does not hold a bootstrap token (<6 chars>.<16 chars>); ${ask}`);
    return token;
  };

  const requestFromAny = async (credentials: { token: string } | { cert: Buffer; key: Buffer }): Promise<IssuedCert> => {
    const servers = typeof opts.servers === 'function' ? opts.servers() : opts.servers;
    const ca = readFileSync(opts.caFile);
    let lastError: unknown = new TetherError(ErrorCode.BadConfig, 'renew certificate: no server to ask');
    for (const server of servers) {
      try {
        return await requestNodeCertificate({
          endpoint: { server, ca, ...credentials, ...(opts.agent ? { agent: opts.agent() } : {}) },
          nodeName: opts.nodeName,
          timeoutMs: opts.issueTimeoutMs ?? 600_000,
          log,
          signal: stopper.signal,
        });
      } catch (e) {
        lastError = e;
        if (!isTetherError(e, ErrorCode.UpstreamUnavailable)) throw e;
      }
    }
    throw lastError;
  };

  const renew = async () => {
    const wasExpired = expired();
    const credentials = wasExpired ? { token: tokenFromFile() } : { cert: current.certPem, key: current.keyPem };
    log.info(wasExpired ? 'certificate expired: re-bootstrapping with a bootstrap token' : 'renewing the node certificate', {
      notAfter: current.notAfter.toISOString(),
    });
    const issued = await requestFromAny(credentials);
    if (stopped) return;
    writeCertPair(paths, issued.certPem, issued.keyPem);
    current = loadCertPair(paths);
    if (wasExpired && opts.bootstrapTokenFile) rmSync(opts.bootstrapTokenFile, { force: true });
    rotations++;
    lastRotation = now();
    log.info('node certificate rotated', { csr: issued.csrName, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString() });
    opts.onRotated({ ca: readFileSync(opts.caFile), cert: current.certPem, key: current.keyPem });
  };

  const attempt = (): Promise<void> => {
    running ??= (async () => {
      try {
        await renew();
        failures = 0;
        problem = null;
        renewAt = renewalDeadline(current.notBefore, current.notAfter, random);
      } catch (e) {
        failures++;
        problem = `renew certificate: ${messageOf(e)}`;
        const cap = expired() ? Math.min(maxRetryMs, 60_000) : maxRetryMs;
        const backoff = Math.min(cap, retryMs * 2 ** (failures - 1));
        renewAt = now() + backoff * (0.8 + 0.4 * random());
        const fields = { error: problem, retryAt: new Date(renewAt).toISOString() };
        if (expired()) log.error('certificate renewal failed', fields);
        else log.warn('certificate renewal failed', fields);
        throw e;
      } finally {
        running = undefined;
        schedule();
      }
    })();
    return running;
  };

  schedule();
  log.info('certificate rotation started', {
    notAfter: current.notAfter.toISOString(),
    renewAt: new Date(renewAt).toISOString(),
  });

  return {
    status: () => ({
      state: stopped ? 'stopped' : running ? 'renewing' : expired() ? 'expired' : 'valid',
      subject: current.cert.subject.replace(/\n/g, ', '),
      notBefore: current.notBefore.toISOString(),
      notAfter: current.notAfter.toISOString(),
      renewAt: new Date(renewAt).toISOString(),
      rotations,
      ...(lastRotation !== undefined ? { lastRotation: new Date(lastRotation).toISOString() } : {}),
      problem,
    }),
    renewNow: () => attempt(),
    stop() {
      stopped = true;
      clearTimeout(timer);
      stopper.abort();
    },
  };
}
