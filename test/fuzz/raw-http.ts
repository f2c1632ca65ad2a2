/**
 * A minimal HTTP/1.1 client over a plain TCP socket, so the fuzzer controls every byte: the
 * request target as written (no normalisation), header names and values a fetch client would
 * refuse, bodies of any bytes, a body with a content type that lies — and, for the framing
 * fuzz, a request written as raw bytes.
 *
 * One connection per request (`Connection: close`): the answer ends when the server closes it.
 * An event stream (`text/event-stream`) is cut as soon as its headers have arrived.
 */
import { connect } from 'node:net';

/** One request, as it will be written. */
export interface RawRequest {
  readonly method: string;
  /** The request target exactly as sent, e.g. `/api/homes/a%2Fb?x=1`. */
  readonly target: string;
  /** Header lines in order; `Host` and `Connection: close` are added first. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body?: Uint8Array;
  /** The whole request as bytes, sent instead of building one from the fields above. */
  readonly raw?: Uint8Array;
  /**
   * Half-closes the connection once the request is written, so a server waiting for bytes
   * that will never come (a length larger than the body) sees the end at once.
   */
  readonly halfClose?: boolean;
  /**
   * The loopback address to connect from (any of 127.0.0.0/8 on Linux): the server sees it as
   * the client's address, so per-address limits apply to it alone.
   */
  readonly from?: string;
}

/** What came back. `status` is 0 when the server closed or timed out without an answer. */
export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly text: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  readonly json: unknown;
  /** The answer was an event stream, cut after its headers. */
  readonly streamed: boolean;
  readonly timedOut: boolean;
}

const CRLF = '\r\n';

/** The bytes of a request built from its fields. */
export function requestBytes(req: RawRequest, hostHeader: string): Buffer {
  const names = new Set(req.headers.map(([n]) => n.toLowerCase()));
  const lines = [
    `${req.method} ${req.target} HTTP/1.1`,
    `Host: ${hostHeader}`,
    'Connection: close',
  ];
  for (const [name, value] of req.headers) lines.push(`${name}: ${value}`);
  if (req.body !== undefined && !names.has('content-length') && !names.has('transfer-encoding'))
    lines.push(`Content-Length: ${req.body.byteLength}`);
  const head = Buffer.from(lines.join(CRLF) + CRLF + CRLF, 'utf8');
  return req.body === undefined ? head : Buffer.concat([head, req.body]);
}

function parseJson(text: string, headers: Readonly<Record<string, string>>): unknown {
  if (!(headers['content-type'] ?? '').includes('json') || text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Decodes a chunked body; whatever does not parse is returned as it came. */
function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    const eol = data.indexOf(CRLF, at);
    if (eol < 0) break;
    const size = Number.parseInt(data.subarray(at, eol).toString('latin1').split(';')[0] ?? '', 16);
    if (!Number.isFinite(size)) return data;
    if (size === 0) break;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

function parseAnswer(whole: Buffer, streamed: boolean, timedOut: boolean): RawAnswer {
  // An interim answer (`100 Continue`) comes before the real one.
  let data = whole;
  while (/^HTTP\/1\.[01] 1\d\d/.test(data.subarray(0, 12).toString('latin1'))) {
    const interimEnd = data.indexOf(CRLF + CRLF);
    if (interimEnd < 0) break;
    data = data.subarray(interimEnd + 4);
  }
  const end = data.indexOf(CRLF + CRLF);
  const none = {
    status: 0,
    headers: {},
    body: data,
    text: data.toString('utf8'),
    json: undefined,
    streamed,
    timedOut,
  };
  if (end < 0) return none;
  const [statusLine = '', ...headerLines] = data.subarray(0, end).toString('latin1').split(CRLF);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) return none;
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0)
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = data.subarray(end + 4);
  if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) body = dechunk(body);
  else if (headers['content-length'] !== undefined)
    body = body.subarray(0, Number(headers['content-length']));
  const text = body.toString('utf8');
  return {
    status: Number(m[1]),
    headers,
    body,
    text,
    json: parseJson(text, headers),
    streamed,
    timedOut,
  };
}

/** Sends one request to `host:port` and reads the answer (at most `timeoutMs`). */
export function sendRaw(
  host: string,
  port: number,
  req: RawRequest,
  timeoutMs = 15_000,
): Promise<RawAnswer> {
  const bytes = req.raw ?? requestBytes(req, `${host}:${port}`);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const socket = connect({ host, port, ...(req.from ? { localAddress: req.from } : {}) });
    const finish = (streamed: boolean, timedOut: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(Buffer.concat(chunks), streamed, timedOut));
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => {
      // The server may answer (and close) before it has read everything, e.g. on a body over
      // the limit: a write error then is not the test's business.
      socket.write(bytes, () => undefined);
      if (req.halfClose) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const seen = Buffer.concat(chunks);
      const headEnd = seen.indexOf(CRLF + CRLF);
      if (
        headEnd >= 0 &&
        /content-type:\s*text\/event-stream/i.test(seen.subarray(0, headEnd).toString('latin1'))
      )
        finish(true, false);
    });
    socket.on('error', () => finish(false, false));
    socket.on('close', () => finish(false, false));
  });
}
