/**
 * `GET /metrics` (issue 8): the Prometheus metrics of a real server, scraped over HTTP on
 * loopback with the scraper's bearer token, while a courier delivers through the real API to
 * the demo home's simulated devices over MQTT; then a delivery whose picture freezes. Every
 * scrape must parse as the Prometheus text format (checked line by line, strictly, below),
 * and the counters and histograms must have moved as the visit did.
 *
 * Also: nobody without the token gets anything (401, whoever they are); the metrics fed
 * directly (command latency, which the device gateway reports once it has its hook); labels
 * never carry free text; and `threshold serve` as a child process, reading the token file
 * named by THRESHOLD_METRICS_TOKEN_FILE, and refusing to start with a weak one.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimHome } from '../src/devices/index.ts';
import { simHomeFor } from '../src/harness/demo-sim-home.ts';
import { SCENARIO_TIMING, sleep } from '../src/harness/scenario-world.ts';
import { labelValue, ServerMetrics } from '../src/server/metrics.ts';
import {
  createDemoDelivery,
  DEMO_DOORSTEP,
  seedDemo,
  type DemoCredentials,
} from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = 'c0ffee'.repeat(8);

// ---- the Prometheus text format, checked strictly ----

/** One sample: metric name, labels, value. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
// Prometheus reads a value with Go's strconv.ParseFloat, which takes Inf and NaN in any case
// (prom-client writes `Nan` for an event loop mean it has no sample for yet).
const VALUE = '[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?[Ii][Nn][Ff]|[Nn][Aa][Nn]';
const SAMPLE_LINE = new RegExp(
  `^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (${VALUE})(?: -?\\d+)?$`,
);
const HELP_LINE = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SUFFIXES: Readonly<Record<string, readonly string[]>> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

function parseValue(v: string): number {
  if (/^[+]?inf$/i.test(v)) return Number.POSITIVE_INFINITY;
  if (/^-inf$/i.test(v)) return Number.NEGATIVE_INFINITY;
  return /^nan$/i.test(v) ? Number.NaN : Number(v);
}

function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    const [, k, v] = m;
    if (k === undefined || v === undefined) continue;
    if (k in labels) throw new Error(`label ${k} twice in {${text}}`);
    labels[k] = v.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/**
 * Parses an exposition, throwing at the first line that is not the Prometheus text format
 * (0.0.4): a HELP or TYPE line, or a sample of a family whose TYPE came before it, each series
 * once; and each histogram's buckets cumulative, ending in +Inf equal to its count.
 */
function parseExposition(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const seen = new Set<string>();
  const samples: Sample[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const where = `line ${i + 1}: ${line}`;
    const help = HELP_LINE.exec(line);
    if (help) {
      if (helps.has(help[1]!)) throw new Error(`HELP twice, ${where}`);
      helps.add(help[1]!);
      continue;
    }
    const type = TYPE_LINE.exec(line);
    if (type) {
      if (types.has(type[1]!)) throw new Error(`TYPE twice, ${where}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    if (!m) throw new Error(`not the Prometheus text format, ${where}`);
    const name = m[1]!;
    const family = [...types.entries()].find(([f, t]) =>
      (SUFFIXES[t] ?? ['']).some((s) => name === `${f}${s}`),
    );
    if (!family) throw new Error(`a sample before its TYPE, ${where}`);
    const labels = parseLabels(m[2]);
    const key = seriesKey(name, labels);
    if (seen.has(key)) throw new Error(`a series twice, ${where}`);
    seen.add(key);
    samples.push({ name, labels, value: parseValue(m[3]!) });
  }
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      const { le: _le, ...rest } = s.labels;
      const k = seriesKey(family, rest);
      series.set(k, [...(series.get(k) ?? []), s]);
    }
    for (const [k, buckets] of series) {
      const les = buckets.map((b) => parseValue(b.labels.le ?? 'NaN'));
      const counts = buckets.map((b) => b.value);
      for (let j = 1; j < buckets.length; j++) {
        if (!(les[j]! > les[j - 1]!) || counts[j]! < counts[j - 1]!)
          throw new Error(`${k}: buckets not cumulative`);
      }
      if (les.at(-1) !== Number.POSITIVE_INFINITY) throw new Error(`${k}: no +Inf bucket`);
      const { le: _le, ...labels } = buckets[0]!.labels;
      const count = samples.find(
        (s) => s.name === `${family}_count` && seriesKey('', s.labels) === seriesKey('', labels),
      );
      if (count?.value !== counts.at(-1)) throw new Error(`${k}: +Inf bucket ≠ count`);
    }
  }
  return samples;
}

function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const l = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${l.join(',')}}`;
}

/** The value of one series (0 when absent: a counter not yet incremented). */
function valueOf(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const key = seriesKey(name, labels);
  return samples.find((s) => seriesKey(s.name, s.labels) === key)?.value ?? 0;
}

/** The sum over every series of `name` whose labels include `labels`. */
function sumOf(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

describe('the Prometheus text format check', () => {
  it('accepts a well-formed exposition and refuses broken ones', () => {
    const good =
      '# HELP a_total An A.\n# TYPE a_total counter\na_total{x="1"} 3\n' +
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n';
    expect(parseExposition(good)).toHaveLength(5);
    for (const bad of [
      'a_total 1\n', // no TYPE
      '# TYPE a counter\na{x=1} 1\n', // unquoted label value
      '# TYPE a counter\na 1 2 3\n',
      '# TYPE a counter\na 1\na 1\n', // a series twice
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 3\n',
      '# TYPE a counter\na 1', // no final line feed
    ])
      expect(() => parseExposition(bad), bad).toThrow();
  });
});

// ---- the metrics fed directly ----

describe('ServerMetrics, fed directly', () => {
  it('times commands by action and result, in seconds (what the gateway reports)', async () => {
    const m = new ServerMetrics();
    m.commandSettled('unlock', 42, 'ok');
    m.commandSettled('unlock', 3_000, 'timeout');
    m.commandSettled('lock', 7, 'error');
    const s = parseExposition(await m.text());
    const name = 'threshold_command_latency_seconds';
    expect(valueOf(s, `${name}_count`, { action: 'unlock', result: 'ok' })).toBe(1);
    expect(valueOf(s, `${name}_sum`, { action: 'unlock', result: 'ok' })).toBeCloseTo(0.042, 6);
    expect(valueOf(s, `${name}_bucket`, { action: 'unlock', result: 'ok', le: '0.025' })).toBe(0);
    expect(valueOf(s, `${name}_bucket`, { action: 'unlock', result: 'ok', le: '0.05' })).toBe(1);
    expect(valueOf(s, `${name}_bucket`, { action: 'unlock', result: 'timeout', le: '2.5' })).toBe(
      0,
    );
    expect(valueOf(s, `${name}_bucket`, { action: 'unlock', result: 'timeout', le: '5' })).toBe(1);
    expect(valueOf(s, `${name}_count`, { action: 'lock', result: 'error' })).toBe(1);
  });

  it('puts heartbeat lags around the 1.5 s detection bound in their own buckets; a camera clock ahead counts as no lag', async () => {
    const m = new ServerMetrics();
    for (const ms of [-200, 40, 1_100, 1_400, 1_600]) m.heartbeatArrived(ms);
    const s = parseExposition(await m.text());
    const b = (le: string) => valueOf(s, 'threshold_heartbeat_lag_seconds_bucket', { le });
    expect([b('0.005'), b('0.05'), b('1'), b('1.25'), b('1.5'), b('2'), b('+Inf')]).toEqual([
      1, 2, 2, 3, 4, 5, 5,
    ]);
    expect(valueOf(s, 'threshold_heartbeat_lag_seconds_sum')).toBeCloseTo(4.14, 6);
  });

  it('counts an ended session once, however often its end is announced', async () => {
    const m = new ServerMetrics();
    const s1 = { id: 's1', state: 'completed' as const, deliveryId: 'd1', outcome: null };
    m.sessionEnded(s1);
    m.sessionEnded(s1);
    m.sessionEnded({
      id: 's2',
      state: 'refused',
      deliveryId: null,
      outcome: { code: 'camera.offline', message: 'x' },
    });
    const s = parseExposition(await m.text());
    const name = 'threshold_sessions_ended_total';
    expect(valueOf(s, name, { kind: 'delivery', outcome: 'completed', reason: 'none' })).toBe(1);
    expect(valueOf(s, name, { kind: 'guest', outcome: 'refused', reason: 'camera.offline' })).toBe(
      1,
    );
  });

  it('never puts free text in a label: anything but a kind, code or route template is "other"', async () => {
    expect(labelValue('observation-lost')).toBe('observation-lost');
    expect(labelValue('/api/sessions/:sessionId')).toBe('/api/sessions/:sessionId');
    for (const v of ['Alex Smith', 'alex@example.com', 'a"b', '', 'x'.repeat(101), 'é'])
      expect(labelValue(v)).toBe('other');
    const m = new ServerMetrics();
    m.alarmRaised('Alex opened the door');
    m.auditAppended({ kind: 'access.refused', data: { code: 'PIN 1234 wrong' } });
    m.httpResponse('GET', undefined, 404, 1);
    const s = parseExposition(await m.text());
    expect(valueOf(s, 'threshold_alarms_raised_total', { type: 'other' })).toBe(1);
    expect(valueOf(s, 'threshold_access_refused_total', { code: 'other' })).toBe(1);
    expect(
      valueOf(s, 'threshold_http_request_duration_seconds_count', {
        method: 'GET',
        route: 'unmatched',
        status_class: '4xx',
      }),
    ).toBe(1);
    const text = await m.text();
    for (const leak of ['Alex', '1234']) expect(text).not.toContain(leak);
  });

  it('keeps two systems’ counts apart in one process, and both show the process metrics', async () => {
    const a = new ServerMetrics();
    const b = new ServerMetrics();
    a.alarmRaised('lock-jammed');
    const [sa, sb] = [parseExposition(await a.text()), parseExposition(await b.text())];
    expect(valueOf(sa, 'threshold_alarms_raised_total', { type: 'lock-jammed' })).toBe(1);
    expect(valueOf(sb, 'threshold_alarms_raised_total', { type: 'lock-jammed' })).toBe(0);
    for (const s of [sa, sb]) {
      expect(valueOf(s, 'process_start_time_seconds')).toBeGreaterThan(1_600_000_000);
      expect(s.some((x) => x.name === 'nodejs_eventloop_lag_p99_seconds')).toBe(true);
    }
  });
});

// ---- a real server, a real delivery ----

describe('GET /metrics on a real server while a courier delivers', () => {
  let dir: string;
  let sys: RunningSystem;
  let home: SimHome;
  let creds: DemoCredentials;
  let courierToken: string;

  async function scrape(
    authorization?: string,
  ): Promise<{ status: number; text: string; res: Response }> {
    const res = await fetch(`${sys.url}/metrics`, {
      headers: authorization === undefined ? {} : { authorization },
    });
    return { status: res.status, text: await res.text(), res };
  }

  async function metrics(): Promise<Sample[]> {
    const r = await scrape(`Bearer ${TOKEN}`);
    expect(r.status).toBe(200);
    return parseExposition(r.text);
  }

  async function courier(method: 'GET' | 'POST', path: string, body?: unknown) {
    const res = await fetch(`${sys.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${courierToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function waitFor(pred: () => boolean | Promise<boolean>, ms: number, what: string) {
    const end = Date.now() + ms;
    while (!(await pred())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await sleep(25);
    }
  }

  /** A delivery due now; the courier at the doorstep asks to open. Returns the session id. */
  async function courierAtTheDoor(): Promise<string> {
    const now = sys.clock.now();
    const d = await createDemoDelivery(
      sys,
      creds.homeId,
      creds.doorId,
      creds.carrier.id,
      creds.courier.id,
      now - 60_000,
      3_600_000,
      60_000,
    );
    const access = await courier('POST', `/api/courier/deliveries/${d.id}/access`, {
      position: DEMO_DOORSTEP,
    });
    expect(access.status, JSON.stringify(access.body)).toBe(200);
    return (access.body.session as { id: string }).id;
  }

  /**
   * Waits until the session's end is stored (its closing record written, its end announced)
   * and returns its final state.
   */
  async function ended(sessionId: string): Promise<string> {
    let state = '';
    await waitFor(
      async () => {
        const row = await sys.store.sessions.get(sessionId);
        state = row?.state ?? '';
        return row?.endedAt != null;
      },
      20_000,
      'the session ends',
    );
    return state;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'threshold-metrics-'));
    sys = await startSystem({
      dataDir: dir,
      port: 0,
      mqttPort: 0,
      watchdog: SCENARIO_TIMING.watchdog,
      timing: SCENARIO_TIMING.session,
      metricsToken: TOKEN,
    });
    creds = await seedDemo(sys, dir);
    home = simHomeFor(creds, sys.brokerUrl, sys.clock);
    await home.start();
    const res = await fetch(`${sys.url}/api/auth/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        username: creds.courier.username,
        password: creds.courier.password,
      }),
    });
    courierToken = ((await res.json()) as { token: string }).token;
    const ids = [creds.devices.lock.id, creds.devices.doorSensor.id, creds.devices.camera.id];
    await waitFor(
      () => ids.every((id) => sys.gateway.liveStatus(id)?.state != null),
      10_000,
      'every device reported its state',
    );
  }, 60_000);

  afterAll(async () => {
    await home?.stop();
    await sys?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers 401 with a Bearer challenge to no token, a wrong token, and a signed-in courier’s token', async () => {
    for (const auth of [
      undefined,
      `Bearer ${TOKEN.slice(0, -1)}x`,
      `Bearer ${TOKEN}x`,
      `Basic ${Buffer.from(`metrics:${TOKEN}`).toString('base64')}`,
      `Bearer ${courierToken}`,
    ]) {
      const r = await scrape(auth);
      expect(r.status, String(auth)).toBe(401);
      expect(r.res.headers.get('www-authenticate')).toBe('Bearer realm="threshold-metrics"');
      expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'auth.required' } });
      expect(r.text).not.toContain('threshold_');
    }
    // The scheme is case-insensitive (RFC 9110), as scrapers may send it.
    expect((await scrape(`bearer ${TOKEN}`)).status).toBe(200);
  });

  it('shows the delivery: sessions live and ended, heartbeat lag, devices, audit entries, HTTP by route', async () => {
    const before = await metrics();
    expect(
      ['lock', 'door-sensor', 'camera'].map((kind) =>
        valueOf(before, 'threshold_devices_connected', { kind }),
      ),
    ).toEqual([1, 1, 1]);

    const sessionId = await courierAtTheDoor();
    const open = await metrics();
    expect(valueOf(open, 'threshold_sessions_live', { state: 'open' })).toBe(1);

    home.doorSensor.open();
    home.camera.setPerson(true);
    await sleep(800);
    home.camera.setPerson(false);
    home.doorSensor.close();
    await sleep(600);
    const relock = await courier('POST', `/api/courier/sessions/${sessionId}/relock`, {});
    expect(relock.status, JSON.stringify(relock.body)).toBe(200);
    expect(await ended(sessionId)).toBe('completed');
    await sys.audit.drain();
    const after = await metrics();

    const endedTotal = 'threshold_sessions_ended_total';
    const done = { kind: 'delivery', outcome: 'completed', reason: 'none' };
    expect(valueOf(after, endedTotal, done) - valueOf(before, endedTotal, done)).toBe(1);
    expect(sumOf(after, 'threshold_sessions_live')).toBe(0);
    // The camera proved it was watching, about every 250 ms, and each proof was timed.
    const lagCount = 'threshold_heartbeat_lag_seconds_count';
    expect(valueOf(after, lagCount) - valueOf(before, lagCount)).toBeGreaterThanOrEqual(4);
    expect(
      valueOf(after, 'threshold_heartbeat_lag_seconds_bucket', { le: '1.5' }) -
        valueOf(before, 'threshold_heartbeat_lag_seconds_bucket', { le: '1.5' }),
    ).toBe(valueOf(after, lagCount) - valueOf(before, lagCount));
    const audit = (kind: string) =>
      valueOf(after, 'threshold_audit_entries_total', { kind }) -
      valueOf(before, 'threshold_audit_entries_total', { kind });
    expect(audit('session.requested')).toBe(1);
    expect(audit('session.ended')).toBe(1);
    expect(audit('command.sent')).toBeGreaterThanOrEqual(3); // arm, unlock, lock
    const http = (route: string) =>
      valueOf(after, 'threshold_http_request_duration_seconds_count', {
        method: 'POST',
        route,
        status_class: '2xx',
      }) -
      valueOf(before, 'threshold_http_request_duration_seconds_count', {
        method: 'POST',
        route,
        status_class: '2xx',
      });
    expect(http('/api/courier/deliveries/:deliveryId/access')).toBe(1);
    expect(http('/api/courier/sessions/:sessionId/relock')).toBe(1);
    // No label names a person, a home, a session or a device.
    const labelValues = after.flatMap((x) => Object.values(x.labels));
    for (const id of [
      sessionId,
      creds.courier.id,
      creds.devices.camera.id,
      creds.devices.lock.id,
      creds.homeId,
    ])
      expect(labelValues.filter((v) => v.includes(id))).toEqual([]);
    expect((await scrape(`Bearer ${TOKEN}`)).text).not.toContain(sessionId);
  }, 60_000);

  it('counts the alarm of a frozen picture, and the session that ended aborted', async () => {
    const before = await metrics();
    const sessionId = await courierAtTheDoor();
    home.camera.freeze();
    try {
      expect(await ended(sessionId)).toBe('aborted');
    } finally {
      home.camera.unfreeze();
    }
    await sys.audit.drain();
    const after = await metrics();
    const alarm = { type: 'observation-frozen' };
    expect(
      valueOf(after, 'threshold_alarms_raised_total', alarm) -
        valueOf(before, 'threshold_alarms_raised_total', alarm),
    ).toBe(1);
    expect(
      sumOf(after, 'threshold_sessions_ended_total', { kind: 'delivery', outcome: 'aborted' }) -
        sumOf(before, 'threshold_sessions_ended_total', { kind: 'delivery', outcome: 'aborted' }),
    ).toBe(1);
    // Every other alarm type is there at 0, so an alert on its increase sees the first one.
    expect(
      after.filter((s) => s.name === 'threshold_alarms_raised_total').length,
    ).toBeGreaterThanOrEqual(9);
  }, 60_000);
});

// ---- `threshold serve` as an operator runs it ----

interface Child {
  readonly code: Promise<number | null>;
  stdout: string;
  stderr: string;
  /** Asks it to stop (SIGTERM), and makes sure it does (SIGKILL after 20 s). */
  stop(): Promise<void>;
}

/** Every child started, so none outlives the tests. */
const children = new Set<ReturnType<typeof spawn>>();

/** Starts `node bin/threshold.js serve …` with `env` added; killed after 140 s at the latest. */
function serve(dataDir: string, env: Record<string, string>): Child {
  const child = spawn(
    process.execPath,
    ['bin/threshold.js', 'serve', '--data', dataDir, '--port', '0', '--mqtt-port', '0'],
    { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const guard = setTimeout(() => child.kill('SIGKILL'), 140_000);
  const code = new Promise<number | null>((resolve) =>
    child.on('close', (n) => {
      clearTimeout(guard);
      children.delete(child);
      resolve(n);
    }),
  );
  const c: Child = {
    stdout: '',
    stderr: '',
    code,
    stop: async () => {
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await code;
      clearTimeout(force);
    },
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (c.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (c.stderr += d));
  return c;
}

describe('threshold serve with THRESHOLD_METRICS_TOKEN_FILE', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'threshold-metrics-cli-'));
  });
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /metrics to the token in the file, and to nobody else', async () => {
    const tokenFile = join(dir, 'metrics-token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const child = serve(join(dir, 'data'), { THRESHOLD_METRICS_TOKEN_FILE: tokenFile });
    try {
      let url = '';
      // A loaded machine can take its time to compile and start the server.
      const end = Date.now() + 100_000;
      while (!url) {
        const line = child.stdout
          .split('\n')
          .find((l) => l.includes('"msg":"Threshold is running"'));
        if (line) url = (JSON.parse(line) as { url: string }).url;
        else if (Date.now() > end) throw new Error(`no start: ${child.stdout}\n${child.stderr}`);
        else await sleep(100);
      }
      expect(child.stdout).toContain('"msg":"metrics served to its token"');
      expect(child.stdout).not.toContain('readable by others');
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const s = parseExposition(await res.text());
      expect(valueOf(s, 'process_start_time_seconds')).toBeGreaterThan(0);
      expect(s.some((x) => x.name === 'threshold_alarms_raised_total')).toBe(true);
      // The token is never logged.
      expect(child.stdout + child.stderr).not.toContain(TOKEN);
    } finally {
      await child.stop();
    }
  }, 150_000);

  it('does not start with a token file that is missing or holds a weak token (exit 3, saying why)', async () => {
    const weak = join(dir, 'weak-token');
    writeFileSync(weak, 'hunter2\n', { mode: 0o600 });
    const [short, missing] = [
      serve(join(dir, 'data-weak'), { THRESHOLD_METRICS_TOKEN_FILE: weak }),
      serve(join(dir, 'data-missing'), {
        THRESHOLD_METRICS_TOKEN_FILE: join(dir, 'no-such-file'),
      }),
    ];
    expect(await short.code).toBe(3);
    expect(short.stderr).toContain('must be 32 to 512 characters');
    expect(short.stderr).not.toContain('hunter2');
    expect(await missing.code).toBe(3);
    expect(missing.stderr).toContain('cannot read the metrics token file');
  }, 150_000);
});
