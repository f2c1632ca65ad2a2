/**
 * The device's side of the Matter lock tests: the virtual lock of `matter-virtual-lock.ts`,
 * started as a child process inside a network namespace, driven through its stdin control
 * protocol; "offline" is its radio switched off (everything it sends or would receive vanishes).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LockDeviceSide } from './lock-contract.ts';
import type { NetnsLink } from './matter-netns.ts';

const SCRIPT = fileURLToPath(new URL('./matter-virtual-lock.ts', import.meta.url));

/** One line the virtual lock wrote. */
interface Message {
  readonly id?: number;
  readonly ok?: boolean;
  readonly result?: unknown;
  readonly error?: string;
  readonly bolt?: 'locked' | 'unlocked' | 'jammed';
  readonly ready?: boolean;
  readonly pairingCode?: string;
}

/** A running virtual Matter lock. */
export class VirtualMatterLock implements LockDeviceSide {
  private truth: 'locked' | 'unlocked' | 'jammed' = 'locked';
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private exited = false;
  private readonly stderr: string[] = [];

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    /** The manual pairing code the lock shows while it is not commissioned. */
    readonly pairingCode: string,
  ) {}

  /**
   * Starts the lock in `link`'s namespace with its storage in `storageDir`; resolves once it
   * advertises itself for pairing.
   */
  static async start(link: NetnsLink, storageDir: string): Promise<VirtualMatterLock> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        link.namespace,
        process.execPath,
        '--import',
        'tsx',
        SCRIPT,
        storageDir,
        link.deviceInterface,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const stderr: string[] = [];
    // To see the lock's own matter.js log: THRESHOLD_MATTER_LOG=1 THRESHOLD_MATTER_LOG_FILE=path.
    const logFile = process.env.THRESHOLD_MATTER_LOG_FILE;
    if (logFile) child.stderr.pipe(createWriteStream(logFile));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr.push(chunk);
      if (stderr.length > 200) stderr.shift();
    });
    const lines = createInterface({ input: child.stdout });
    const ready = await new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the virtual Matter lock did not start: ${stderr.join('')}`));
      }, 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the virtual Matter lock exited (${code}): ${stderr.join('')}`));
      });
      lines.once('line', (line) => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line) as Message);
        } catch {
          reject(new Error(`the virtual Matter lock said: ${line}`));
        }
      });
    });
    if (ready.ready !== true || typeof ready.pairingCode !== 'string') {
      child.kill('SIGKILL');
      throw new Error(`the virtual Matter lock did not get ready: ${JSON.stringify(ready)}`);
    }
    const lock = new VirtualMatterLock(child, ready.pairingCode);
    lock.stderr.push(...stderr);
    child.removeAllListeners('exit');
    child.once('exit', () => {
      lock.exited = true;
      for (const { reject } of lock.pending.values()) {
        reject(new Error(`the virtual Matter lock exited: ${lock.stderr.join('')}`));
      }
      lock.pending.clear();
    });
    lines.on('line', (line) => lock.onLine(line));
    return lock;
  }

  bolt(): 'locked' | 'unlocked' | 'jammed' {
    return this.truth;
  }

  async turnByHand(bolt: 'locked' | 'unlocked'): Promise<void> {
    await this.request({ op: 'turnByHand', bolt });
  }

  jamNextMove(): void {
    void this.request({ op: 'jamNextMove' });
  }

  holdMovements(): void {
    void this.request({ op: 'holdMovements' });
  }

  releaseMovements(): void {
    void this.request({ op: 'releaseMovements' });
  }

  async goOffline(): Promise<void> {
    await this.request({ op: 'radioOff' });
  }

  async goOnline(): Promise<void> {
    await this.request({ op: 'radioOn' });
  }

  async keypadUnlock(slot: number): Promise<void> {
    await this.request({ op: 'keypadUnlock', slot });
  }

  /** A wrong code at the keypad. */
  async wrongCode(): Promise<void> {
    await this.request({ op: 'wrongCode' });
  }

  /** Back to a fresh lock: `bolt`, no users or codes, no held or jammed movement. */
  async reset(bolt: 'locked' | 'unlocked'): Promise<void> {
    await this.request({ op: 'reset', bolt });
  }

  /** The PIN codes the lock holds, by slot (the lock's own store, for checks). */
  async codes(): Promise<Record<string, string>> {
    return (await this.request({ op: 'codes' })) as Record<string, string>;
  }

  /** Ends the process (closing its stdin lets it shut down; killed if it does not). */
  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  private request(op: Record<string, unknown>): Promise<unknown> {
    if (this.exited) return Promise.reject(new Error('the virtual Matter lock is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(`${JSON.stringify({ id, ...op })}\n`);
    });
  }

  private onLine(line: string): void {
    let message: Message;
    try {
      message = JSON.parse(line) as Message;
    } catch {
      return;
    }
    if (message.bolt !== undefined) this.truth = message.bolt;
    if (message.id === undefined) return;
    const waiting = this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id);
    if (message.error !== undefined) waiting.reject(new Error(message.error));
    else waiting.resolve(message.result);
  }
}
