import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { factDetail, HubLog, HubLogPump, verifyHubLog, type FactEntry } from './hub-log.ts';

let dir: string;
let path: string;
const clock = new FakeClock();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hub-log-'));
  path = join(dir, 'hub-log.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fact(why: string) {
  return { name: 'hub.dead-man' as const, deviceId: 'front-lock', sessionId: 's-1', why };
}

describe('HubLog', () => {
  it('chains its lines and verifies', () => {
    const { log } = HubLog.open(path, clock, 'front-lock');
    log.append(fact('observation lost'));
    clock.advance(1000);
    log.append({ ...fact('deadline'), name: 'hub.relocked' });
    log.markSent(1);
    const verdict = verifyHubLog(readFileSync(path, 'utf8'));
    expect(verdict.ok).toBe(true);
    if (!verdict.ok) return;
    expect(verdict.entries.map((e) => e.type)).toEqual(['fact', 'fact', 'sent']);
    expect(verdict.entries[1]!.prev).toBe(verdict.entries[0]!.hash);
    expect(log.unsent().map((f) => f.why)).toEqual(['deadline']);
  });

  it('detects a tampered line, a removed line and a forged mark', () => {
    const { log } = HubLog.open(path, clock, 'front-lock');
    log.append(fact('observation lost'));
    log.append(fact('observation frozen'));
    log.markSent(1);
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    const edited = lines[1]!.replace('observation frozen', 'all was well');
    expect(verifyHubLog([lines[0], edited, lines[2]].join('\n') + '\n')).toEqual({
      ok: false,
      line: 2,
      reason: 'hash does not match',
    });
    expect(verifyHubLog([lines[0], lines[2]].join('\n') + '\n')).toMatchObject({
      ok: false,
      line: 2,
    });
    expect(verifyHubLog('{"type":"sent"}\n')).toMatchObject({ ok: false, line: 1 });
    expect(verifyHubLog('not json\n')).toMatchObject({ ok: false, reason: 'not JSON' });
  });

  it('keeps unsent facts across a restart and sends each once', async () => {
    const first = HubLog.open(path, clock, 'front-lock').log;
    first.append(fact('one'));
    first.append(fact('two'));
    first.append(fact('three'));
    const sent: string[] = [];
    // The link drops after the first acknowledged publish.
    let up = 1;
    const pump = new HubLogPump(first, (f) => {
      if (up-- <= 0) return Promise.resolve(false);
      sent.push(f.why);
      return Promise.resolve(true);
    });
    await pump.kick();
    expect(sent).toEqual(['one']);

    // The hub restarts: only the two unacknowledged facts remain, in order.
    const reopened = HubLog.open(path, clock, 'front-lock');
    expect(reopened.broken).toBeNull();
    expect(reopened.log.unsent().map((f) => f.why)).toEqual(['two', 'three']);
    const pump2 = new HubLogPump(reopened.log, (f) => {
      sent.push(f.why);
      return Promise.resolve(true);
    });
    await pump2.kick();
    await pump2.kick();
    expect(sent).toEqual(['one', 'two', 'three']);
    expect(HubLog.open(path, clock, 'front-lock').log.unsent()).toEqual([]);
    expect(verifyHubLog(readFileSync(path, 'utf8')).ok).toBe(true);
  });

  it('moves a broken file aside and begins a new log that says so', () => {
    HubLog.open(path, clock, 'front-lock').log.append(fact('one'));
    writeFileSync(path, readFileSync(path, 'utf8').replace('one', 'two'));
    const { log, broken } = HubLog.open(path, clock, 'front-lock');
    expect(broken).toMatchObject({ line: 1, reason: 'hash does not match' });
    expect(readdirSync(dir).some((f) => f.startsWith('hub-log.jsonl.broken-'))).toBe(true);
    expect(log.unsent()).toHaveLength(1);
    expect(log.unsent()[0]).toMatchObject({ name: 'hub.observed', n: 1 });
    expect(log.unsent()[0]!.why).toContain('local log broken at line 1');
  });

  it('puts the hub time, line and session in a detail under 256 characters', () => {
    const { log } = HubLog.open(path, clock, 'front-lock');
    const entry: FactEntry = log.append({ ...fact('x'.repeat(500)), sessionId: 'a'.repeat(64) });
    const detail = factDetail(entry);
    expect(detail.length).toBeLessThanOrEqual(256);
    expect(JSON.parse(detail)).toMatchObject({ hubAt: clock.now(), hubSeq: 1 });
  });
});
