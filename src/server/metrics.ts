/**
 * The server's metrics, in the Prometheus text format that `GET /metrics` serves
 * (routes/metrics.ts): sessions, alarms, heartbeat lag, command latency, devices, audit
 * appends, HTTP requests, and the process's own metrics (CPU, memory, event loop, start time).
 *
 * Each system has a registry of its own, not prom-client's global one, so several servers in
 * one process (the tests) never count into each other. The process metrics are the process's,
 * so they sit in one registry shared by every system of the process, merged in at each scrape.
 *
 * Labels never carry personal data: no names, no codes, no ids of people, homes, sessions or
 * devices. A label value is a kind, a state, a catalogue code or a route template, all bounded
 * sets; a value that does not look like one ({@link labelValue}) is counted as `other`.
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AccessSession, AlarmType, SessionState } from '../core/access-session.ts';
import { isTerminal } from '../core/access-session.ts';
import type { AuditEntry } from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import type { DeviceKind } from '../core/model.ts';
import type { BrokerStats } from '../broker/index.ts';
import type { CommandOutcome, DeviceGatewayListener, RegisteredDevice } from './device-gateway.ts';
import type { EventBus } from './event-bus.ts';

/** Every alarm type, so each counter exists at 0 before its first alarm (see the constructor). */
const ALARM_TYPES: Readonly<Record<AlarmType, true>> = {
  'observation-lost': true,
  'observation-frozen': true,
  'observation-forged': true,
  'door-left-open': true,
  'lock-jammed': true,
  'lock-unconfirmed': true,
  'lock-state-mismatch': true,
  'session-overrun': true,
  'unexpected-entry': true,
};

const DEVICE_KINDS: Readonly<Record<DeviceKind, true>> = {
  lock: true,
  'door-sensor': true,
  camera: true,
};

/**
 * Heartbeat lag buckets, seconds. The watchdog calls a camera lost after 1.25 s of silence and
 * must say so within 1.5 s, so the buckets are fine below 1.5 s, where a lag starts to eat into
 * that bound, and coarse above it.
 */
export const HEARTBEAT_LAG_BUCKETS_S = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 5,
] as const;

/** Command latency buckets, seconds: a healthy round trip is milliseconds; the TTL is 10 s. */
export const COMMAND_LATENCY_BUCKETS_S = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** HTTP request duration buckets, seconds. */
export const HTTP_DURATION_BUCKETS_S = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** How a command ended, as {@link CommandOutcome} says. */
export type CommandResult = CommandOutcome['status'];

/**
 * A label value: a kind, state, code or route template. Anything else (too long, or with
 * characters none of those have) becomes `other`, so a bug upstream can neither leak free text
 * into the metrics nor grow a label without bound.
 */
export function labelValue(v: string): string {
  return /^[A-Za-z0-9._:/*<>-]{1,100}$/.test(v) ? v : 'other';
}

/** What a system's metrics are read from; each part is optional so tests can feed them alone. */
export interface MetricsSources {
  readonly clock: Clock;
  /** Session and alarm events, as the web app gets them. */
  readonly events?: EventBus;
  /** Every committed audit entry. */
  readonly audit?: { onEntry(fn: (e: AuditEntry) => void): () => void };
  /** The device gateway: heartbeats and device status, and its counts of dropped messages. */
  readonly gateway?: {
    addListener(l: DeviceGatewayListener): void;
    liveStatus(deviceId: string): { readonly online: boolean } | undefined;
    drops(): Record<string, number>;
  };
  /** Live sessions by state (the orchestrator's). */
  readonly sessionsByState?: () => ReadonlyMap<SessionState, number>;
  /** The embedded broker's refusal counters. */
  readonly broker?: () => BrokerStats;
  /** This replica's standing (replicas only). */
  readonly replica?: () => { leader: boolean; peers: number; takeovers: number };
}

let processRegistry: Registry | null = null;

/**
 * The process's own metrics (prom-client's defaults: CPU, memory, event loop lag, GC, handles,
 * `process_start_time_seconds`), collected once per process however many systems run in it.
 */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** How many ended session ids are remembered, so a session ended twice is counted once. */
const ENDED_MEMORY = 1_024;

/**
 * One system's metrics. Fed by {@link ServerMetrics.attach} from the parts that exist (event
 * bus, audit log, gateway listener, orchestrator), and by the `observe…` methods for what a
 * part reports itself (command latency; see the device gateway's `onCommandSettled`).
 */
export class ServerMetrics {
  /** The registry of this system's own metrics (not the process metrics). */
  readonly registry = new Registry();
  private readonly alarms: Counter<'type'>;
  private readonly sessionsEnded: Counter<'kind' | 'outcome' | 'reason'>;
  private readonly heartbeatLag: Histogram;
  private readonly commandLatency: Histogram<'action' | 'result'>;
  private readonly auditEntries: Counter<'kind'>;
  private readonly accessRefused: Counter<'code'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_class'>;
  private readonly endedIds = new Set<string>();
  private readonly seenDevices = new Map<string, DeviceKind>();
  private sources: MetricsSources | null = null;

  constructor() {
    const registers = [this.registry];
    // Arrow functions below read `this` (the ServerMetrics), not the metric.
    const sources = (): MetricsSources | null => this.sources;
    const seen = this.seenDevices;

    new Gauge({
      name: 'threshold_sessions_live',
      help: 'Access sessions running now, by state.',
      labelNames: ['state'] as const,
      registers,
      collect() {
        this.reset();
        const by = sources()?.sessionsByState?.();
        if (!by) return;
        for (const [state, n] of by) this.set({ state: labelValue(state) }, n);
      },
    });
    this.sessionsEnded = new Counter({
      name: 'threshold_sessions_ended_total',
      help: 'Access sessions ended, by kind (delivery, guest), final state and the outcome code (none when completed).',
      labelNames: ['kind', 'outcome', 'reason'] as const,
      registers,
    });
    this.alarms = new Counter({
      name: 'threshold_alarms_raised_total',
      help: 'Alarms raised in access sessions, by type.',
      labelNames: ['type'] as const,
      registers,
    });
    for (const type of Object.keys(ALARM_TYPES)) this.alarms.inc({ type }, 0);
    this.heartbeatLag = new Histogram({
      name: 'threshold_heartbeat_lag_seconds',
      help: 'Authentic camera heartbeats: time from the capture time the camera signed to the arrival at the server (includes the camera clock offset).',
      buckets: [...HEARTBEAT_LAG_BUCKETS_S],
      registers,
    });
    this.commandLatency = new Histogram({
      name: 'threshold_command_latency_seconds',
      help: 'Device commands: time from sending to the device’s reply (or giving up), by action and result (ok, error, timeout, not-sent).',
      labelNames: ['action', 'result'] as const,
      buckets: [...COMMAND_LATENCY_BUCKETS_S],
      registers,
    });
    new Gauge({
      name: 'threshold_devices_connected',
      help: 'Devices the server hears from now (online), by kind.',
      labelNames: ['kind'] as const,
      registers,
      collect() {
        const src = sources();
        const counts = new Map<DeviceKind, number>(
          Object.keys(DEVICE_KINDS).map((k) => [k as DeviceKind, 0]),
        );
        for (const [id, kind] of seen) {
          if (src?.gateway?.liveStatus(id)?.online) counts.set(kind, (counts.get(kind) ?? 0) + 1);
        }
        for (const [kind, n] of counts) this.set({ kind }, n);
      },
    });
    this.auditEntries = new Counter({
      name: 'threshold_audit_entries_total',
      help: 'Entries appended to the audit log (committed), by kind.',
      labelNames: ['kind'] as const,
      registers,
    });
    this.accessRefused = new Counter({
      name: 'threshold_access_refused_total',
      help: 'Requests to open a door that were refused, by the refusal’s catalogue code.',
      labelNames: ['code'] as const,
      registers,
    });
    new Counter({
      name: 'threshold_device_messages_dropped_total',
      help: 'Device messages the gateway did not act on, by reason (bad MAC, replayed, schema…).',
      labelNames: ['reason'] as const,
      registers,
      collect() {
        const drops = sources()?.gateway?.drops();
        if (!drops) return;
        // The gateway keeps the running totals; the counter shows them as they are.
        this.reset();
        for (const [reason, n] of Object.entries(drops))
          this.inc({ reason: labelValue(reason) }, n);
      },
    });
    new Gauge({
      name: 'threshold_replica_peers',
      help: 'Replicas only: the other replicas whose lease runs, as of the last round.',
      registers,
      collect() {
        const r = sources()?.replica?.();
        if (r) this.set(r.peers);
      },
    });
    new Gauge({
      name: 'threshold_replica_leader',
      help: 'Replicas only: 1 on the leader (the oldest live replica), 0 on the others.',
      registers,
      collect() {
        const r = sources()?.replica?.();
        if (r) this.set(r.leader ? 1 : 0);
      },
    });
    new Counter({
      name: 'threshold_sessions_taken_over_total',
      help: 'Replicas only: sessions this replica took over from a replica whose lease ran out.',
      registers,
      collect() {
        const r = sources()?.replica?.();
        if (!r) return;
        this.reset();
        this.inc(r.takeovers);
      },
    });
    new Counter({
      name: 'threshold_mqtt_refused_total',
      help: 'What the embedded MQTT broker refused: connections, publishes, subscriptions, oversized packets.',
      labelNames: ['what'] as const,
      registers,
      collect() {
        const stats = sources()?.broker?.();
        if (!stats) return;
        this.reset();
        this.inc({ what: 'connection' }, stats.connectionsRefused);
        this.inc({ what: 'publish' }, stats.publishesRefused);
        this.inc({ what: 'subscription' }, stats.subscriptionsRefused);
        this.inc({ what: 'oversized' }, stats.oversizedDropped);
      },
    });
    this.httpDuration = new Histogram({
      name: 'threshold_http_request_duration_seconds',
      help: 'HTTP requests: time to answer, by method, route template and status class.',
      labelNames: ['method', 'route', 'status_class'] as const,
      buckets: [...HTTP_DURATION_BUCKETS_S],
      registers,
    });
  }

  /**
   * Starts reading the system's parts. Returns a function that stops it (the gateway keeps
   * its listener, which then does nothing: the gateway has no way to remove one).
   */
  attach(sources: MetricsSources): () => void {
    this.sources = sources;
    let attached = true;
    const offEvents = sources.events?.subscribe((e) => {
      if (e.type === 'alarm') this.alarmRaised(e.alarm.type);
      else if (e.type === 'session' && isTerminal(e.session)) this.sessionEnded(e.session);
    });
    const offAudit = sources.audit?.onEntry((e) => this.auditAppended(e));
    const note = (d: RegisteredDevice): void => {
      if (attached) this.seenDevices.set(d.id, d.kind);
    };
    sources.gateway?.addListener({
      onHeartbeat: (device, hb, macValid) => {
        if (!attached) return;
        note(device);
        // A heartbeat that fails its MAC says nothing true about its own capture time.
        if (macValid) this.heartbeatArrived(sources.clock.now() - hb.capturedAt);
      },
      onState: note,
      onEvent: note,
      onAvailability: note,
    });
    return () => {
      attached = false;
      offEvents?.();
      offAudit?.();
      this.sources = null;
    };
  }

  /** An authentic heartbeat arrived `lagMs` after the capture time it carries. */
  heartbeatArrived(lagMs: number): void {
    // A camera clock ahead of the server's gives a negative lag: it arrived at once.
    this.heartbeatLag.observe(Math.max(0, lagMs) / 1000);
  }

  /** A device command ended `ms` after it was sent: with the device's reply, or not. */
  commandSettled(action: string, ms: number, result: CommandResult): void {
    this.commandLatency.observe(
      { action: labelValue(action), result: labelValue(result) },
      Math.max(0, ms) / 1000,
    );
  }

  /** An alarm was raised in a session. */
  alarmRaised(type: string): void {
    this.alarms.inc({ type: labelValue(type) });
  }

  /** A session reached its final state; counted once per session. */
  sessionEnded(s: Pick<AccessSession, 'id' | 'state' | 'deliveryId' | 'outcome'>): void {
    if (this.endedIds.has(s.id)) return;
    this.endedIds.add(s.id);
    if (this.endedIds.size > ENDED_MEMORY) {
      const oldest = this.endedIds.values().next().value;
      if (oldest !== undefined) this.endedIds.delete(oldest);
    }
    this.sessionsEnded.inc({
      kind: s.deliveryId === null ? 'guest' : 'delivery',
      outcome: labelValue(s.state),
      reason: labelValue(s.outcome?.code ?? 'none'),
    });
  }

  /** An audit entry was committed. */
  auditAppended(e: Pick<AuditEntry, 'kind' | 'data'>): void {
    this.auditEntries.inc({ kind: labelValue(e.kind) });
    if (e.kind === 'access.refused' && typeof e.data.code === 'string')
      this.accessRefused.inc({ code: labelValue(e.data.code) });
  }

  /** An HTTP answer: `route` is the matched route's template (none: no route matched). */
  httpResponse(method: string, route: string | undefined, status: number, ms: number): void {
    this.httpDuration.observe(
      {
        method: labelValue(method),
        route: route === undefined ? 'unmatched' : labelValue(route),
        status_class: `${Math.floor(status / 100)}xx`,
      },
      Math.max(0, ms) / 1000,
    );
  }

  /** The `Content-Type` of {@link ServerMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything, in the Prometheus text format: this system's metrics and the process's. */
  async text(): Promise<string> {
    return Registry.merge([processMetrics(), this.registry]).metrics();
  }
}

/** The shortest metrics token accepted, characters (`openssl rand -hex 32` gives 64). */
export const MIN_METRICS_TOKEN_LENGTH = 32;
const MAX_METRICS_TOKEN_LENGTH = 512;

/**
 * Reads the bearer token `GET /metrics` asks for from a file (what Prometheus's
 * `authorization.credentials_file` reads too): its content without surrounding white space.
 * Throws, with a sentence saying what is wrong, when the file cannot be read, or the token is
 * shorter than {@link MIN_METRICS_TOKEN_LENGTH} or holds characters a bearer token cannot.
 */
export function readMetricsToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read the metrics token file ${path}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  const token = text.trim();
  if (token.length < MIN_METRICS_TOKEN_LENGTH || token.length > MAX_METRICS_TOKEN_LENGTH)
    throw new Error(
      `the metrics token in ${path} must be ${MIN_METRICS_TOKEN_LENGTH} to ${MAX_METRICS_TOKEN_LENGTH} characters (it has ${token.length}); make one with: openssl rand -hex 32`,
    );
  // RFC 6750's b64token: what can follow "Bearer " in an Authorization header.
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token))
    throw new Error(
      `the metrics token in ${path} holds characters a bearer token cannot (letters, digits and - . _ ~ + / only); make one with: openssl rand -hex 32`,
    );
  return token;
}
