/**
 * The one way the web app talks to the server: a typed `fetch` wrapper that sends the sign-in
 * cookie, turns the server's `{error:{code,message}}` bodies into {@link ApiError}s, and sends
 * the app back to the sign-in page when the server answers 401.
 */
import type { ErrorResponseBody } from '../../src/protocol/http.ts';

/** A refusal or failure from the API, with the server's stable error code. */
export class ApiError extends Error {
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number;
  /** The server's error code (`lock.offline`, `auth.required`, …) or a client-side one. */
  readonly code: string;
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    detail?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Options of one API request. */
export interface RequestOptions {
  readonly method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Sent as JSON. A POST without a body sends `{}`: the server refuses an empty JSON body. */
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  /**
   * Whether a 401 means "signed out, go to the sign-in page". Off for the sign-in requests
   * themselves, where a 401 is just a wrong password.
   */
  readonly redirectOn401?: boolean;
}

let unauthorizedHandler: (() => void) | null = null;

/** Sets what happens when any API call answers 401 (the app shows the sign-in page). */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

function isErrorBody(v: unknown): v is ErrorResponseBody {
  if (typeof v !== 'object' || v === null || !('error' in v)) return false;
  const e = v.error;
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

/**
 * Performs a request and answers the raw `Response` when it succeeded (2xx); throws an
 * {@link ApiError} otherwise. Use {@link api} for JSON answers.
 */
export async function apiResponse(path: string, opts: RequestOptions = {}): Promise<Response> {
  const method = opts.method ?? (opts.body === undefined ? 'GET' : 'POST');
  const body = opts.body ?? (method === 'POST' || method === 'PUT' ? {} : undefined);
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { accept: 'application/json' },
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { accept: 'application/json', 'content-type': 'application/json' };
  }
  if (opts.signal) init.signal = opts.signal;
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(
      0,
      'network.unreachable',
      'Threshold cannot be reached. Check the connection and try again.',
    );
  }
  if (res.ok) return res;
  let parsed: unknown = null;
  try {
    parsed = await res.json();
  } catch {
    // Not JSON (a proxy's error page, say): the status alone has to do.
  }
  if (res.status === 401 && opts.redirectOn401 !== false) unauthorizedHandler?.();
  if (isErrorBody(parsed)) {
    throw new ApiError(res.status, parsed.error.code, parsed.error.message, parsed.error.detail);
  }
  throw new ApiError(
    res.status,
    res.status === 404 ? 'request.not-found' : 'server.error',
    res.status >= 500
      ? 'Threshold had a problem answering. Try again in a moment.'
      : `The server answered ${res.status}.`,
  );
}

/** Performs a request and answers its JSON body, typed by the caller from src/protocol. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await apiResponse(path, opts);
  return (await res.json()) as T;
}

/** The message to show for any error thrown by an API call or a browser API. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error && err.message) return err.message;
  return 'Something went wrong. Try again.';
}

/** Whether an error means the endpoint is not there (yet): shown as "not available". */
export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.status === 404;
}
