/**
 * What the cache offers, declared by the cache (as client-go's tools/cache declares its Store and
 * ListerWatcher): the proxy imports these types and never the other way round, so the arrows run
 * proxy → cache → store. Nothing here is HTTP: headers are a plain record, a watch is a sink of
 * lines, an answer is a status and a body.
 *
 *   online   the proxy forwards a request and asks `tapFor` for a Tap; it hands the tap the
 *            upstream's status and headers (`head`, before any body byte), then every decoded chunk
 *            the client gets (`chunk`), then `end(complete)`. The tap never changes the answer.
 *   offline  `read` answers GET and LIST (and, asked with a WATCH, says whether the watch is
 *            admitted), `watch` writes a WATCH's events to a WatchSink, `write` takes the writes a
 *            cached client may make offline, `document` discovery/OpenAPI, `token` a TokenRequest
 *            answered online before. Each answer is a CachedAnswer, or a thrown TetherError the
 *            proxy turns into a Status (edge/proxy/error-status.ts).
 *   replay   on reconnect the outbox goes upstream through a ReplayCall (edge/upstream/calls.ts
 *            `UpstreamCall` is one).
 */
import type { RequestInfo, ResourceRequestInfo } from '../../shared/kube/index.ts';

/** Response headers as a plain record (node's IncomingHttpHeaders is one). */
export type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** A copy of one upstream answer on its way to the client. */
export interface Tap {
  /** Called with the upstream's status and headers before any body chunk; return false to not tap this response. */
  head(status: number, headers: Headers): boolean;
  /** A chunk of the answer, decoded (never gzip); the same buffer goes to the client: copy what is kept. */
  chunk(data: Buffer): void;
  /** The answer ended; `complete` false when it broke before its end. */
  end(complete: boolean): void;
}

/** An answer from the cache. */
export interface CachedAnswer {
  status: number;
  body: unknown;
  /** The body already serialized (large lists are assembled from stored JSON text); wins over `body`. */
  raw?: string;
  warning?: string;
}

/** Where an offline watch writes its events, one JSON line each. */
export interface WatchSink {
  /** Writes one event line; false when the client is slow (the write is still queued). */
  write(line: string): boolean;
  end(): void;
  onClose(fn: () => void): void;
}

/**
 * How watch events are written: as objects (default), or, for a client that asked for server-side
 * printing (kubectl: `as=Table`) of a kind table.ts prints, as one-row Tables the way kube-apiserver
 * sends them — `columnDefinitions` only on the first event of the response (`headers`: false when
 * the client already got them, e.g. from the apiserver before a cut).
 */
export interface WatchOutput {
  table?: { headers: boolean };
}

/** A discovery or OpenAPI document kept online. */
export interface CachedDocument {
  contentType: string;
  body: string;
}

/** The cache as the proxy uses it (createCache in index.ts). */
export interface Cache {
  /** A tap for this request, or undefined when nothing of it is recorded; `body`: a write's request body, so a live status write can narrow what the outbox still holds. */
  tapFor(info: RequestInfo, accept: string | undefined, cached: boolean, body?: Buffer): Tap | undefined;
  /**
   * Reads answered from the store; throws a TetherError when the store cannot answer. Only what the
   * caller's identity was allowed online is answered (else its 403, or 503); asked with a WATCH, the
   * answer is that decision alone (200 without a body: serve it from the log).
   */
  read(info: ResourceRequestInfo, cached: boolean, accept: string | undefined): CachedAnswer;
  /** `output.table`: the client asked for server-side printing (headers: whether its first event still needs the columns). */
  watch(info: ResourceRequestInfo, sink: WatchSink, output?: WatchOutput): void;
  write(info: ResourceRequestInfo, url: string, contentType: string, body: string, hasCredentials: boolean): CachedAnswer;
  document(info: RequestInfo, accept: string | undefined): CachedDocument | undefined;
  /** The apiserver's answer to this exact TokenRequest, kept online while its token is valid (tokens.ts). */
  token?(info: ResourceRequestInfo, body: Buffer): CachedAnswer | undefined;
}

/** One request upstream as the node, for the outbox replay. */
export type ReplayCall = (method: string, path: string, opts?: { contentType?: string; body?: string }) => Promise<{ status: number; body: string }>;
