/**
 * A fault-injecting TCP proxy for the MQTT link between devices and the broker, in the spirit
 * of Toxiproxy: devices connect to the proxy on 127.0.0.1, the proxy connects each of them to
 * the broker, and faults ("toxics") set at run time bend what passes, per direction
 * (`upstream` = device → broker, `downstream` = broker → device) and on connections already
 * open. It exists so the attack and fault scenarios meet real sockets, real TCP closes and real
 * keepalive timeouts instead of mocks.
 *
 * What each fault stands for in the threat model (docs/threat-model.md):
 *
 * - `latency` + `jitter`: a slow or flaky Wi-Fi link. Every chunk is held `latency ± jitter` ms,
 *   but never overtakes the one before it: TCP does not reorder, so neither do we.
 * - `bandwidth`: a congested uplink (a camera pushing frames over a weak signal).
 * - `slicer`: the same bytes cut into tiny TCP segments, so parsers meet packets split anywhere.
 * - `loss`: flaky Wi-Fi as the application sees it. A TCP stream cannot lose bytes without
 *   corrupting itself, so the proxy cuts the stream into MQTT control packets (fixed header,
 *   remaining-length varint) and drops whole PUBLISH packets, with a seeded PRNG so a run is
 *   repeatable. Every other packet (CONNECT, PINGREQ, PUBACK …) passes, as does the connection.
 * - `blackhole`: deauthentication or jamming. Connections stay "up" but nothing is forwarded
 *   either way, not even a close, until the fault is lifted or a keepalive gives up. Like
 *   Toxiproxy's `timeout` with 0, bytes are held back (TCP flow control: the proxy stops
 *   reading), not thrown away, so a jam that clears lets stale data through late, as a real
 *   link does after retransmission.
 * - half-open (a `blackhole` on one direction only): a NAT or router that lost its state, or a
 *   camera that still receives commands but whose uploads go nowhere.
 * - `reset`: a router reboot. The connection is destroyed with a TCP RST, at once or after N ms,
 *   and new connections are reset too while it is set. `downstream` resets the device's side,
 *   `upstream` the broker's side; a side not reset is left open and silent (its peer is gone),
 *   until its own keepalive notices — the "ghost session" a broker keeps after a reboot.
 * - `slow-close`: a link that takes long to report a close: when one side closes, the other
 *   learns it N ms later (the broker publishes a device's will late).
 * - {@link FaultProxy.refuse}: the broker unreachable. New connections are refused (listener
 *   closed: ECONNREFUSED) or reset on accept; connections already open are untouched.
 * - {@link FaultProxy.cut}: every open connection closed now with a FIN, e.g. a broker restart.
 *
 * The proxy is deterministic and bounded: randomness comes from a seeded PRNG; a connection's
 * queue is bounded (past the bound the proxy stops reading, and TCP pushes back on the sender);
 * every timer belongs to a connection or the proxy and is cleared on {@link FaultProxy.close},
 * after which no handle is left open.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { MqttFramer } from '../broker/mqtt-framer.ts';

/** A direction of the byte stream: `upstream` = device → broker, `downstream` = broker → device. */
export type Direction = 'upstream' | 'downstream';

/** Where a fault applies: one direction or both. */
export type FaultDirection = Direction | 'both';

/** Delays every chunk by `latencyMs ± jitterMs` (uniform), without ever reordering the stream. */
export interface LatencyFault {
  readonly type: 'latency';
  /** Base delay, ms, ≥ 0. */
  readonly latencyMs: number;
  /** Uniform spread around the base, ms, ≥ 0 (default 0). A delay never goes below 0. */
  readonly jitterMs?: number;
}

/** Limits throughput to `bytesPerSecond`. */
export interface BandwidthFault {
  readonly type: 'bandwidth';
  /** Bytes per second, > 0. */
  readonly bytesPerSecond: number;
}

/** Cuts every chunk into pieces of about `averageBytes`, `delayMs` apart. */
export interface SlicerFault {
  readonly type: 'slicer';
  /** Mean piece size, bytes, ≥ 1. */
  readonly averageBytes: number;
  /** Uniform spread of the piece size, bytes, ≥ 0 and < averageBytes (default 0). */
  readonly variationBytes?: number;
  /** Delay between pieces, ms, ≥ 0 (default 0). */
  readonly delayMs?: number;
}

/** Drops whole MQTT PUBLISH packets with a probability. */
export interface LossFault {
  readonly type: 'loss';
  /** Probability that a PUBLISH is dropped, 0..1. */
  readonly probability: number;
  /**
   * Seed of the drop decisions (an unsigned 32-bit integer; default: the proxy's seed). Each
   * connection and direction draws from its own generator, seeded from this seed, the
   * connection's number (1, 2, … in accept order) and the direction, created when the fault is
   * set: the same traffic under the same seed loses the same packets.
   */
  readonly seed?: number;
}

/** Forwards nothing, closes included, until removed. */
export interface BlackholeFault {
  readonly type: 'blackhole';
}

/** Resets connections (TCP RST) `afterMs` after the fault is set or the connection accepted. */
export interface ResetFault {
  readonly type: 'reset';
  /** Delay before the reset, ms, ≥ 0 (default 0: at once). */
  readonly afterMs?: number;
}

/** Delays passing on a close (FIN or reset) by `delayMs`. */
export interface SlowCloseFault {
  readonly type: 'slow-close';
  /** ms, ≥ 0. */
  readonly delayMs: number;
}

/** A fault the proxy can apply to a direction. See the module comment for what each models. */
export type Fault =
  | LatencyFault
  | BandwidthFault
  | SlicerFault
  | LossFault
  | BlackholeFault
  | ResetFault
  | SlowCloseFault;

/** The kinds of {@link Fault}. */
export type FaultType = Fault['type'];

/** One fault in force, as listed by {@link FaultProxy.faults}. */
export interface ActiveFault {
  readonly direction: Direction;
  readonly fault: Fault;
}

/** MQTT control packet names, by fixed-header type (0 and 15 as the spec numbers them). */
export const MQTT_PACKET_NAMES = [
  'reserved',
  'connect',
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'pingreq',
  'pingresp',
  'disconnect',
  'auth',
] as const;

/** The name of an MQTT control packet type. */
export type MqttPacketName = (typeof MQTT_PACKET_NAMES)[number];

/** Traffic counters of one direction, summed over all connections. */
export interface DirectionStats {
  /** Bytes read from the sending side. */
  readonly bytesIn: number;
  /** Bytes written to the receiving side. */
  readonly bytesOut: number;
  /** MQTT packets seen (by their fixed header), dropped ones included. */
  readonly packets: Readonly<Record<MqttPacketName, number>>;
  /** PUBLISH packets dropped by a `loss` fault. */
  readonly packetsDropped: number;
  /**
   * Connections whose stream stopped looking like MQTT (a remaining length longer than four
   * bytes). From then on that stream is forwarded verbatim and never dropped from.
   */
  readonly unframed: number;
}

/** A snapshot of the proxy's counters. */
export interface FaultProxyStats {
  /** Connections accepted and forwarded (refused ones not included). */
  readonly connectionsAccepted: number;
  /** Connections with at least one side still open. */
  readonly connectionsOpen: number;
  /** Connections reset on accept because the proxy was refusing (`refuse('reset')`). */
  readonly connectionsRefused: number;
  /** Sockets (either side) reset by a `reset` fault. */
  readonly socketsReset: number;
  readonly upstream: DirectionStats;
  readonly downstream: DirectionStats;
}

/** Options of {@link FaultProxy}. */
export interface FaultProxyOptions {
  /** The broker: `mqtt://host:port` / `tcp://host:port`, or host and port. */
  readonly upstream: string | { readonly host: string; readonly port: number };
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on; 0 (the default) picks a free one, see {@link FaultProxy.port}. */
  readonly port?: number;
  /** Seed of jitter, slicing and (by default) loss; an unsigned 32-bit integer. Default 1. */
  readonly seed?: number;
  /**
   * Bytes a connection may hold queued in one direction (under latency or a blackhole) before
   * the proxy stops reading from the sender. Default 1 MiB.
   */
  readonly maxQueuedBytes?: number;
}

const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024;
/** After {@link FaultProxy.cut}, how long a peer has to answer our FIN before it is destroyed. */
const CUT_GRACE_MS = 1_000;
const MQTT_PUBLISH = 3;
const DIRECTIONS: readonly Direction[] = ['upstream', 'downstream'];

/** A small, fast, seeded PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a seed with a connection number and direction, so each stream draws independently. */
function streamSeed(seed: number, connection: number, direction: Direction): number {
  let h = (seed ^ Math.imul(connection, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16) ^ (direction === 'upstream' ? 0 : 0x5bd1e995)) >>> 0;
}

function directionsOf(stream: FaultDirection): readonly Direction[] {
  return stream === 'both' ? DIRECTIONS : [stream];
}

function checkNumber(value: number | undefined, what: string, min: number, max = Infinity): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    const range = max === Infinity ? `≥ ${min}` : `in ${min}..${max}`;
    throw new RangeError(`fault proxy: ${what} must be a finite number ${range}, got ${value}`);
  }
}

function checkSeed(value: number | undefined, what: string): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`fault proxy: ${what} must be an unsigned 32-bit integer, got ${value}`);
  }
}

/** Throws a RangeError when a fault's parameters are out of range (a bug in the scenario). */
function validateFault(fault: Fault): void {
  switch (fault.type) {
    case 'latency':
      checkNumber(fault.latencyMs, 'latencyMs', 0);
      checkNumber(fault.jitterMs, 'jitterMs', 0);
      return;
    case 'bandwidth':
      checkNumber(fault.bytesPerSecond, 'bytesPerSecond', Number.MIN_VALUE);
      return;
    case 'slicer':
      checkNumber(fault.averageBytes, 'averageBytes', 1);
      checkNumber(fault.variationBytes, 'variationBytes', 0, fault.averageBytes - 1);
      checkNumber(fault.delayMs, 'delayMs', 0);
      return;
    case 'loss':
      checkNumber(fault.probability, 'probability', 0, 1);
      checkSeed(fault.seed, 'seed');
      return;
    case 'blackhole':
      return;
    case 'reset':
      checkNumber(fault.afterMs, 'afterMs', 0);
      return;
    case 'slow-close':
      checkNumber(fault.delayMs, 'delayMs', 0);
      return;
    default: {
      const unknown: { type?: unknown } = fault;
      throw new RangeError(`fault proxy: unknown fault type ${String(unknown.type)}`);
    }
  }
}

function parseUpstream(upstream: FaultProxyOptions['upstream']): { host: string; port: number } {
  if (typeof upstream !== 'string') return { host: upstream.host, port: upstream.port };
  const url = new URL(upstream);
  // The proxy reads MQTT framing to drop packets, so it cannot sit in front of TLS.
  if (url.protocol !== 'mqtt:' && url.protocol !== 'tcp:') {
    throw new RangeError(`fault proxy: upstream must be mqtt:// or tcp://, got ${url.protocol}`);
  }
  const port = Number(url.port || 1883);
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * Cuts each chunk of one byte stream into runs of bytes that belong to kept or to dropped MQTT
 * packets (the framing is the broker's {@link MqttFramer}). It never buffers: a packet's fate is
 * decided at its first byte (the type), and its bytes stream past as they arrive.
 */
class MqttSegmenter {
  private readonly framer = new MqttFramer();
  private dropping = false;

  /** Whether this stream stopped being MQTT (and is forwarded verbatim from then on). */
  get unframed(): boolean {
    return this.framer.malformed;
  }

  /**
   * Splits `chunk` into `{ bytes, drop }` runs; `onPacket(type)` is called at each packet's
   * first byte and answers whether to drop that packet.
   */
  feed(chunk: Buffer, onPacket: (type: number) => boolean): { bytes: Buffer; drop: boolean }[] {
    const runs: { bytes: Buffer; drop: boolean }[] = [];
    let runStart = 0;
    let runDrop = this.dropping;
    const setDrop = (at: number, drop: boolean) => {
      if (drop === runDrop) return;
      if (at > runStart) runs.push({ bytes: chunk.subarray(runStart, at), drop: runDrop });
      runStart = at;
      runDrop = drop;
    };
    this.framer.feed(chunk, {
      packetStart: (type, at) => {
        this.dropping = onPacket(type);
        setDrop(at, this.dropping);
      },
      // Not MQTT any more: stop interpreting and pass everything from here on through.
      malformed: (at) => {
        this.dropping = false;
        setDrop(at, false);
      },
    });
    if (chunk.length > runStart) runs.push({ bytes: chunk.subarray(runStart), drop: runDrop });
    return runs;
  }
}

/** Mutable counters behind {@link DirectionStats}. */
interface Counters {
  bytesIn: number;
  bytesOut: number;
  packets: Record<MqttPacketName, number>;
  packetsDropped: number;
  unframed: number;
}

function newCounters(): Counters {
  const packets = Object.fromEntries(MQTT_PACKET_NAMES.map((n) => [n, 0])) as Record<
    MqttPacketName,
    number
  >;
  return { bytesIn: 0, bytesOut: 0, packets, packetsDropped: 0, unframed: 0 };
}

/** What a pipe needs from its proxy: the faults in force and the counters. */
interface PipeHost {
  fault<T extends FaultType>(
    direction: Direction,
    type: T,
  ): Extract<Fault, { type: T }> | undefined;
  readonly seed: number;
  readonly maxQueuedBytes: number;
  readonly counters: Record<Direction, Counters>;
  onSocketReset(): void;
}

type QueueEntry =
  | { readonly due: number; readonly bytes: Buffer }
  | { readonly due: number; readonly close: 'fin' | 'reset' };

/** Why a pipe has stopped reading from its sender. */
type Hold = 'blackhole' | 'backpressure' | 'queue-full';

/**
 * One direction of one connection: reads `src`, applies the direction's faults, writes `dst`.
 * Bytes and the close travel through one queue ordered by due time, so nothing overtakes.
 */
class Pipe {
  /** The opposite direction of the same connection. */
  reverse!: Pipe;
  private readonly segmenter = new MqttSegmenter();
  private readonly rng: () => number;
  private lossRng: { fault: LossFault; next: () => number } | undefined;
  private queue: QueueEntry[] = [];
  private queuedBytes = 0;
  private lastDue = 0;
  private timer: NodeJS.Timeout | undefined;
  private resetTimer: NodeJS.Timeout | undefined;
  private resetFault: ResetFault | undefined;
  private readonly holds = new Set<Hold>();
  private waitingForDrain = false;
  /** The sender has closed (FIN or otherwise); its close is queued or already passed on. */
  private srcClosed = false;
  /** Forwarding has stopped for good (the connection was cut, reset or closed). */
  private stopped = false;
  /** Nothing more happens in this pipe, resets included. */
  private disposed = false;

  constructor(
    private readonly host: PipeHost,
    private readonly link: Link,
    readonly direction: Direction,
    readonly src: Socket,
    readonly dst: Socket,
  ) {
    this.rng = mulberry32(streamSeed(host.seed, link.number, direction));
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    src.once('end', () => this.onSrcClosed('fin'));
    src.once('close', () => this.onSrcClosed('reset'));
  }

  private get counters(): Counters {
    return this.host.counters[this.direction];
  }

  private onData(chunk: Buffer): void {
    if (this.stopped) return;
    this.counters.bytesIn += chunk.length;
    const wasUnframed = this.segmenter.unframed;
    const runs = this.segmenter.feed(chunk, (type) => this.onPacket(type));
    if (!wasUnframed && this.segmenter.unframed) this.counters.unframed += 1;
    for (const run of runs) if (!run.drop) this.enqueueBytes(run.bytes);
  }

  /** Counts a packet and decides whether a `loss` fault drops it. */
  private onPacket(type: number): boolean {
    this.counters.packets[MQTT_PACKET_NAMES[type] as MqttPacketName] += 1;
    if (type !== MQTT_PUBLISH) return false;
    const loss = this.host.fault(this.direction, 'loss');
    if (!loss || loss.probability === 0) return false;
    // A generator per fault setting: setting the same loss again replays the same decisions.
    if (this.lossRng?.fault !== loss) {
      const seed = streamSeed(loss.seed ?? this.host.seed, this.link.number, this.direction);
      this.lossRng = { fault: loss, next: mulberry32(seed) };
    }
    const drop = this.lossRng.next() < loss.probability;
    if (drop) this.counters.packetsDropped += 1;
    return drop;
  }

  /** The delay the link adds to the next chunk, ms. */
  private latencyMs(): number {
    const latency = this.host.fault(this.direction, 'latency');
    if (!latency) return 0;
    const jitter = latency.jitterMs ?? 0;
    return Math.max(0, latency.latencyMs + (jitter > 0 ? (this.rng() * 2 - 1) * jitter : 0));
  }

  private enqueueBytes(bytes: Buffer): void {
    const now = performance.now();
    // Never before the previous chunk: a TCP stream does not reorder.
    let due = Math.max(now + this.latencyMs(), this.lastDue);
    const bandwidth = this.host.fault(this.direction, 'bandwidth');
    if (bandwidth) due += (bytes.length * 1000) / bandwidth.bytesPerSecond;
    const slicer = this.host.fault(this.direction, 'slicer');
    const pieces: QueueEntry[] = [];
    if (slicer) {
      const variation = slicer.variationBytes ?? 0;
      let offset = 0;
      while (offset < bytes.length) {
        const size = Math.max(
          1,
          Math.round(slicer.averageBytes + (variation > 0 ? (this.rng() * 2 - 1) * variation : 0)),
        );
        if (offset > 0) due += slicer.delayMs ?? 0;
        pieces.push({ due, bytes: bytes.subarray(offset, offset + size) });
        offset += size;
      }
    } else {
      pieces.push({ due, bytes });
    }
    this.lastDue = due;
    // The common case (no fault, nothing queued) writes at once, without a timer.
    if (this.queue.length === 0 && pieces.length === 1 && due <= now && !this.gated()) {
      this.write(bytes);
      return;
    }
    for (const piece of pieces) this.queue.push(piece);
    this.queuedBytes += bytes.length;
    if (this.queuedBytes > this.host.maxQueuedBytes) this.hold('queue-full');
    this.schedule();
  }

  private onSrcClosed(how: 'fin' | 'reset'): void {
    if (this.srcClosed) return;
    this.srcClosed = true;
    // A side the proxy reset itself is gone without a word: its peer is left a ghost.
    if (this.link.severed.has(this.src)) return;
    if (this.stopped) {
      // Forwarding is over. A ghost whose peer was reset has now closed too: the connection
      // is finished (with allowHalfOpen nothing else would close our side of it).
      if (this.dst.destroyed) this.src.destroy();
      return;
    }
    const slowClose = this.host.fault(this.direction, 'slow-close')?.delayMs ?? 0;
    const due = Math.max(performance.now() + this.latencyMs(), this.lastDue) + slowClose;
    this.lastDue = due;
    this.queue.push({ due, close: how });
    this.schedule();
  }

  private gated(): boolean {
    return this.host.fault(this.direction, 'blackhole') !== undefined;
  }

  /** Writes every entry that is due, then sets a timer for the next. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.gated()) return;
    const now = performance.now();
    while (this.queue.length > 0 && (this.queue[0] as QueueEntry).due <= now) {
      const entry = this.queue.shift() as QueueEntry;
      if ('bytes' in entry) {
        this.queuedBytes -= entry.bytes.length;
        this.write(entry.bytes);
      } else {
        this.passClose(entry.close);
        return;
      }
    }
    if (this.queuedBytes <= this.host.maxQueuedBytes) this.release('queue-full');
    const head = this.queue[0];
    // libuv timers may fire a little early against performance.now(); the loop above rechecks.
    if (head)
      this.timer = setTimeout(() => this.schedule(), Math.max(1, Math.ceil(head.due - now)));
  }

  private write(bytes: Buffer): void {
    if (this.dst.destroyed || !this.dst.writable) return;
    this.counters.bytesOut += bytes.length;
    if (!this.dst.write(bytes) && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.hold('backpressure');
      this.dst.once('drain', () => {
        this.waitingForDrain = false;
        this.release('backpressure');
      });
    }
  }

  /** Passes the sender's close on to the receiver. */
  private passClose(how: 'fin' | 'reset'): void {
    this.stop();
    if (this.dst.destroyed) {
      // The receiver is gone (reset by a fault) and nothing more is coming for the sender
      // either: the connection is over.
      if (this.reverse.idle()) this.src.destroy();
      return;
    }
    if (how === 'fin') this.dst.end();
    else this.dst.resetAndDestroy();
  }

  /** Whether nothing is queued or pending in this pipe. */
  idle(): boolean {
    return this.queue.length === 0 || this.stopped;
  }

  private hold(reason: Hold): void {
    this.holds.add(reason);
    if (!this.src.destroyed) this.src.pause();
  }

  private release(reason: Hold): void {
    if (!this.holds.delete(reason)) return;
    if (this.holds.size === 0 && !this.src.destroyed && !this.stopped) this.src.resume();
  }

  /** Re-reads the faults in force: a blackhole set or lifted, a reset set, changed or removed. */
  refresh(fromAccept = false): void {
    if (this.disposed) return;
    // A reset concerns the receiving socket, even when this direction no longer forwards
    // (the other side was reset first).
    const reset = this.host.fault(this.direction, 'reset');
    if (reset !== this.resetFault || fromAccept) {
      this.resetFault = reset;
      if (this.resetTimer) clearTimeout(this.resetTimer);
      this.resetTimer = undefined;
      if (reset) {
        const afterMs = reset.afterMs ?? 0;
        if (afterMs === 0) this.resetReceiver();
        else this.resetTimer = setTimeout(() => this.resetReceiver(), afterMs);
      }
    }
    if (this.stopped) return;
    if (this.gated()) this.hold('blackhole');
    else this.release('blackhole');
    this.schedule();
  }

  /** Resets this direction's receiving socket: everything in flight to or from it is lost. */
  private resetReceiver(): void {
    this.resetTimer = undefined;
    if (this.dst.destroyed || this.link.severed.has(this.dst)) return;
    this.link.severed.add(this.dst);
    this.stop();
    this.reverse.stop();
    this.dst.resetAndDestroy();
    this.host.onSocketReset();
    if (this.src.destroyed || this.link.severed.has(this.src)) return;
    // The other side is a ghost now: keep reading it (and throw the bytes away) so its close
    // is seen, or end it if it has already closed.
    if (this.srcClosed) {
      this.src.destroy();
      return;
    }
    this.holds.clear();
    this.src.resume();
  }

  /** Stops forwarding for good and drops the queue. A pending reset still fires. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stops everything, pending reset included: the connection is over or being closed. */
  dispose(): void {
    this.stop();
    this.disposed = true;
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.resetTimer = undefined;
  }
}

/** One accepted connection and its two pipes. */
class Link {
  readonly up: Pipe;
  readonly down: Pipe;
  /** Sockets the proxy reset by a fault; their close is not passed on. */
  readonly severed = new Set<Socket>();
  private cutTimer: NodeJS.Timeout | undefined;
  private open = 2;
  /** Resolves once both sockets have emitted 'close'. */
  readonly closed: Promise<void>;

  constructor(
    host: PipeHost,
    readonly number: number,
    readonly client: Socket,
    readonly server: Socket,
    onClosed: (link: Link) => void,
  ) {
    let allClosed = () => {};
    this.closed = new Promise<void>((resolve) => (allClosed = resolve));
    for (const socket of [client, server]) {
      socket.setNoDelay(true);
      // Errors end in 'close', which the pipes handle; an unhandled 'error' would crash.
      socket.on('error', () => {});
      socket.once('close', () => {
        this.open -= 1;
        if (this.open === 0) {
          this.stop();
          onClosed(this);
          allClosed();
        }
      });
    }
    this.up = new Pipe(host, this, 'upstream', client, server);
    this.down = new Pipe(host, this, 'downstream', server, client);
    this.up.reverse = this.down;
    this.down.reverse = this.up;
  }

  refresh(fromAccept = false): void {
    this.up.refresh(fromAccept);
    this.down.refresh(fromAccept);
  }

  /** Closes both sides with a FIN now, dropping whatever was queued. */
  cut(): void {
    this.stop();
    for (const socket of [this.client, this.server]) {
      if (socket.destroyed) continue;
      // Read and discard what is left, so the kernel closes with a FIN rather than an RST.
      socket.removeAllListeners('data');
      socket.on('data', () => {});
      socket.resume();
      socket.end();
    }
    // A peer that never answers our FIN is not waited for.
    this.cutTimer = setTimeout(() => this.destroy(), CUT_GRACE_MS);
  }

  /** Destroys both sides at once. */
  destroy(): void {
    this.stop();
    this.client.destroy();
    this.server.destroy();
  }

  private stop(): void {
    this.up.dispose();
    this.down.dispose();
    if (this.cutTimer) clearTimeout(this.cutTimer);
    this.cutTimer = undefined;
  }
}

/**
 * A fault-injecting TCP proxy in front of an MQTT broker. See the module comment.
 *
 * ```ts
 * const proxy = new FaultProxy({ upstream: broker.url });
 * await proxy.start();
 * // devices connect to proxy.url
 * proxy.set({ type: 'blackhole' }, 'upstream'); // the camera's uploads go nowhere
 * proxy.remove('blackhole');
 * await proxy.close();
 * ```
 */
export class FaultProxy {
  private readonly upstream: { host: string; port: number };
  private readonly listenHost: string;
  private readonly seed: number;
  private readonly maxQueuedBytes: number;
  private readonly active: Record<Direction, Map<FaultType, Fault>> = {
    upstream: new Map(),
    downstream: new Map(),
  };
  private readonly links = new Set<Link>();
  private readonly counters: Record<Direction, Counters> = {
    upstream: newCounters(),
    downstream: newCounters(),
  };
  private connectionsAccepted = 0;
  private connectionsRefused = 0;
  private socketsReset = 0;
  private server: Server | undefined;
  private boundPort: number;
  private refusing: 'reset' | 'close' | null = null;
  private started = false;
  private closing: Promise<void> | undefined;
  private readonly host: PipeHost;

  /** Builds a proxy; nothing listens until {@link start}. Throws on invalid options. */
  constructor(options: FaultProxyOptions) {
    this.upstream = parseUpstream(options.upstream);
    this.listenHost = options.host ?? '127.0.0.1';
    if (options.port !== undefined && !(Number.isInteger(options.port) && options.port <= 65535)) {
      throw new RangeError(`fault proxy: port must be an integer in 0..65535, got ${options.port}`);
    }
    checkNumber(options.port, 'port', 0, 65535);
    this.boundPort = options.port ?? 0;
    checkSeed(options.seed, 'seed');
    this.seed = options.seed ?? 1;
    checkNumber(options.maxQueuedBytes, 'maxQueuedBytes', 1);
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    const active = this.active;
    this.host = {
      fault: <T extends FaultType>(direction: Direction, type: T) =>
        active[direction].get(type) as Extract<Fault, { type: T }> | undefined,
      seed: this.seed,
      maxQueuedBytes: this.maxQueuedBytes,
      counters: this.counters,
      onSocketReset: () => {
        this.socketsReset += 1;
      },
    };
  }

  /** Starts listening. Resolves once connections are accepted; throws if called twice. */
  async start(): Promise<void> {
    if (this.started) throw new Error('fault proxy: already started');
    if (this.closing) throw new Error('fault proxy: closed');
    this.started = true;
    await this.listen();
  }

  /** The port listened on (the one picked when the option was 0). Throws before {@link start}. */
  get port(): number {
    if (!this.started || this.boundPort === 0) throw new Error('fault proxy: not started');
    return this.boundPort;
  }

  /** `mqtt://<host>:<port>`, what devices connect to instead of the broker's URL. */
  get url(): string {
    const host = this.listenHost.includes(':') ? `[${this.listenHost}]` : this.listenHost;
    return `mqtt://${host}:${this.port}`;
  }

  /** Whether the listening socket is open (false before start, while refusing with 'close', after close). */
  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /**
   * Sets a fault on one direction or both (default both), replacing a fault of the same type
   * there. Applies at once to connections already open and to every new one. Throws a
   * RangeError on parameters out of range.
   */
  set(fault: Fault, stream: FaultDirection = 'both'): void {
    validateFault(fault);
    // A copy, so a caller mutating its object cannot change a fault behind the proxy's back.
    const frozen = Object.freeze({ ...fault });
    for (const direction of directionsOf(stream)) this.active[direction].set(fault.type, frozen);
    this.refreshLinks();
  }

  /** Removes a fault type from one direction or both (default both). Removing nothing is fine. */
  remove(type: FaultType, stream: FaultDirection = 'both'): void {
    for (const direction of directionsOf(stream)) this.active[direction].delete(type);
    this.refreshLinks();
  }

  /** Removes every fault, both directions. Refusal ({@link refuse}) is separate. */
  clear(): void {
    for (const direction of DIRECTIONS) this.active[direction].clear();
    this.refreshLinks();
  }

  /** The faults in force. */
  faults(): ActiveFault[] {
    return DIRECTIONS.flatMap((direction) =>
      [...this.active[direction].values()].map((fault) => ({ direction, fault })),
    );
  }

  /**
   * Refuses new connections, as an unreachable broker would: `'close'` closes the listener
   * (clients get ECONNREFUSED), `'reset'` (the default) accepts and resets at once (clients
   * get ECONNRESET). Connections already open are untouched; add {@link cut} for those.
   */
  async refuse(mode: 'reset' | 'close' = 'reset'): Promise<void> {
    this.assertRunning();
    this.refusing = mode;
    if (mode === 'close' && this.server?.listening) {
      const server = this.server;
      this.server = undefined;
      // server.close's callback waits for its connections; the listening handle itself is
      // released at once, and open connections live on in `links`.
      server.close();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Accepts new connections again (after {@link refuse}), on the same port. */
  async accept(): Promise<void> {
    this.assertRunning();
    this.refusing = null;
    if (!this.server?.listening) await this.listen();
  }

  /** Closes every open connection now, each side with a FIN; queued data is dropped. */
  cut(): void {
    for (const link of this.links) link.cut();
  }

  /** A snapshot of the counters. */
  stats(): FaultProxyStats {
    const copy = (c: Counters): DirectionStats => ({ ...c, packets: { ...c.packets } });
    return {
      connectionsAccepted: this.connectionsAccepted,
      connectionsOpen: this.links.size,
      connectionsRefused: this.connectionsRefused,
      socketsReset: this.socketsReset,
      upstream: copy(this.counters.upstream),
      downstream: copy(this.counters.downstream),
    };
  }

  /**
   * Stops listening, destroys every connection and clears every timer. Idempotent; after it
   * resolves the proxy holds no handle that keeps the process alive.
   */
  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  private async shutDown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => {
      if (server?.listening) server.close(() => resolve());
      else resolve();
    });
    const links = [...this.links];
    for (const link of links) link.destroy();
    await Promise.all([closed, ...links.map((link) => link.closed)]);
  }

  private assertRunning(): void {
    if (!this.started) throw new Error('fault proxy: not started');
    if (this.closing) throw new Error('fault proxy: closed');
  }

  private refreshLinks(): void {
    for (const link of this.links) link.refresh();
  }

  private async listen(): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, this.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Accept errors (EMFILE …) must not crash the test run; the connection is simply lost.
    server.on('error', () => {});
    const address = server.address();
    if (address === null || typeof address === 'string') {
      server.close();
      throw new Error('fault proxy: unexpected listening address');
    }
    this.boundPort = address.port;
    this.server = server;
    if (this.closing) server.close();
  }

  private onConnection(client: Socket): void {
    client.on('error', () => {});
    if (this.closing) {
      client.destroy();
      return;
    }
    if (this.refusing) {
      this.connectionsRefused += 1;
      client.resetAndDestroy();
      return;
    }
    this.connectionsAccepted += 1;
    const server = netConnect({
      host: this.upstream.host,
      port: this.upstream.port,
      allowHalfOpen: true,
    });
    const link = new Link(this.host, this.connectionsAccepted, client, server, (l) =>
      this.links.delete(l),
    );
    this.links.add(link);
    link.refresh(true);
  }
}
