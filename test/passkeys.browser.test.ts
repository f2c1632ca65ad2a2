/**
 * A real browser's passkey against the real server: Chromium (playwright-core) with a virtual
 * platform authenticator (CDP `WebAuthn`), on a page of the server's own origin
 * (`http://localhost:<port>`), signs in with a password, registers a passkey with the real
 * `navigator.credentials.create()`, signs out, and signs back in with
 * `navigator.credentials.get()` alone — no user name. Options and answers are converted between
 * base64url and ArrayBuffer by hand in the page, as a web app without a library would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type CDPSession, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/core/audit-chain.ts';
import { createApp, type App, type AppDeps } from '../src/server/app.ts';
import { ClipStore } from '../src/server/clip-store.ts';
import { LiveViewService } from '../src/server/live-view.ts';
import { localRelyingParty, Passkeys } from '../src/server/passkeys.ts';
import { seedDemo, type DemoCredentials } from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import { freePort } from '../src/harness/free-port.ts';

/**
 * Installed in the page as `window.passkeyTest`. Plain JavaScript in a string, so the test
 * runner's transforms cannot add helpers the page does not have.
 */
const PAGE_SCRIPT = String.raw`
window.passkeyTest = (() => {
  const toBuffer = (s) => {
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  };
  const toBase64Url = (buffer) => {
    let bin = '';
    for (const b of new Uint8Array(buffer)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  const answer = async (res) => ({ status: res.status, body: await res.json() });
  const post = async (path, body) =>
    answer(await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }));
  const get = async (path) => answer(await fetch(path, { credentials: 'same-origin' }));
  return {
    signIn: (username, password) => post('/api/auth/sign-in', { username, password }),
    signOut: () => post('/api/auth/sign-out', {}),
    me: () => get('/api/me'),
    passkeys: () => get('/api/auth/passkeys'),
    async register(name) {
      const started = await post('/api/auth/passkeys/registration/options', {});
      if (started.status !== 200) return { step: 'options', ...started };
      const o = started.body.options;
      const credential = await navigator.credentials.create({
        publicKey: {
          ...o,
          challenge: toBuffer(o.challenge),
          user: { ...o.user, id: toBuffer(o.user.id) },
          excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: toBuffer(c.id) })),
        },
      });
      const response = {
        id: credential.id,
        rawId: toBase64Url(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: toBase64Url(credential.response.clientDataJSON),
          attestationObject: toBase64Url(credential.response.attestationObject),
          transports: credential.response.getTransports(),
        },
        clientExtensionResults: credential.getClientExtensionResults(),
        authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      };
      return { step: 'registration', ...(await post('/api/auth/passkeys/registration', { name, response })) };
    },
    async signInWithPasskey() {
      const started = await post('/api/auth/passkeys/authentication/options', {});
      if (started.status !== 200) return { step: 'options', ...started };
      const o = started.body.options;
      const credential = await navigator.credentials.get({
        publicKey: {
          ...o,
          challenge: toBuffer(o.challenge),
          allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: toBuffer(c.id) })),
        },
      });
      const r = credential.response;
      const response = {
        id: credential.id,
        rawId: toBase64Url(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: toBase64Url(r.clientDataJSON),
          authenticatorData: toBase64Url(r.authenticatorData),
          signature: toBase64Url(r.signature),
          userHandle: r.userHandle ? toBase64Url(r.userHandle) : undefined,
        },
        clientExtensionResults: credential.getClientExtensionResults(),
        authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      };
      const done = await post('/api/auth/passkeys/authentication', {
        challengeId: started.body.challengeId,
        response,
      });
      return { step: 'authentication', ...done, credentialId: credential.id };
    },
  };
})();
`;

interface PageAnswer {
  readonly step?: string;
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly credentialId?: string;
}

let dataDir: string;
let sys: RunningSystem;
let app: App;
let deps: AppDeps;
let port: number;
let creds: DemoCredentials;
let browser: Browser;
let page: Page;
let cdp: CDPSession;
let authenticatorId: string;

/** Runs `passkeyTest.<call>` in the page and returns its answer. */
async function inPage(call: string): Promise<PageAnswer> {
  return page.evaluate<PageAnswer>(`window.passkeyTest.${call}`);
}

async function auditKinds(): Promise<string[]> {
  await sys.audit.drain();
  const entries: AuditEntry[] = [];
  for await (const e of sys.store.audit.iterate()) entries.push(e);
  return entries.map((e) => e.kind).filter((k) => k.startsWith('auth.passkey-'));
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'threshold-passkeys-browser-'));
  sys = await startSystem({ dataDir, port: 0, mqttPort: 0 });
  creds = await seedDemo(sys, dataDir, { credentialsFile: join(dataDir, 'credentials.json') });
  port = await freePort();
  const passkeys = new Passkeys({
    store: sys.store,
    clock: sys.clock,
    rpName: 'Threshold',
    ...localRelyingParty(port),
  });
  deps = {
    passkeys,
    store: sys.store,
    orchestrator: sys.orchestrator,
    gateway: sys.gateway,
    auth: sys.auth,
    audit: sys.audit,
    clips: new ClipStore(dataDir, sys.store.clips),
    events: sys.events,
    // Not listening to the gateway: these tests need the live view only to build the app.
    liveView: new LiveViewService({
      gateway: sys.gateway,
      sessions: sys.orchestrator,
      clock: sys.clock,
      events: sys.events,
      audit: sys.audit,
    }),
    clock: sys.clock,
  };
  app = await createApp(deps);
  await app.listen({ host: '127.0.0.1', port });

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const added = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  authenticatorId = added.authenticatorId;
  // localhost, not 127.0.0.1: an IP address cannot be a WebAuthn RP id.
  const res = await page.goto(`http://localhost:${port}/api/health`);
  expect(res?.status()).toBe(200);
  await page.evaluate(PAGE_SCRIPT);
}, 60_000);

afterAll(async () => {
  deps?.liveView.stop();
  await browser?.close();
  await app?.close();
  await sys?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('passkeys in a real browser', () => {
  it('registers a passkey made by Chromium, then signs in with it alone after signing out', async () => {
    const owner = JSON.stringify(creds.owner.username);
    const password = JSON.stringify(creds.owner.password);
    expect((await inPage(`signIn(${owner}, ${password})`)).status).toBe(200);

    const registered = await inPage(`register("Chromium")`);
    expect(registered, JSON.stringify(registered)).toMatchObject({
      step: 'registration',
      status: 200,
      body: { passkey: { name: 'Chromium', lastUsedAt: null } },
    });
    const passkeyId = (registered.body.passkey as { id: string }).id;

    // The browser's authenticator holds a discoverable credential with the same id.
    const held = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    expect(held.credentials).toHaveLength(1);
    expect(held.credentials[0]).toMatchObject({ isResidentCredential: true, rpId: 'localhost' });
    expect(
      Buffer.from(held.credentials[0]?.credentialId ?? '', 'base64').toString('base64url'),
    ).toBe(passkeyId);

    // Asking again excludes the passkey it already has: the browser refuses to make a second.
    const twice = await page.evaluate(`window.passkeyTest.register("Again")`).then(
      () => null,
      (e: unknown) => String(e),
    );
    expect(twice).toMatch(/InvalidStateError/);

    expect((await inPage('signOut()')).status).toBe(200);
    expect((await inPage('me()')).status).toBe(401);

    const signedIn = await inPage('signInWithPasskey()');
    expect(signedIn, JSON.stringify(signedIn)).toMatchObject({
      step: 'authentication',
      status: 200,
      credentialId: passkeyId,
      body: { principal: { id: 'owner-alex', role: 'owner' } },
    });
    const me = await inPage('me()');
    expect(me).toMatchObject({ status: 200, body: { principal: { id: 'owner-alex' } } });

    const list = await inPage('passkeys()');
    expect(list.status).toBe(200);
    const listed = list.body.passkeys as { id: string; name: string; lastUsedAt: unknown }[];
    expect(listed.map((p) => [p.id, p.name, typeof p.lastUsedAt])).toEqual([
      [passkeyId, 'Chromium', 'number'],
    ]);
    // The server recorded the counter the browser's authenticator reported.
    const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    const row = await sys.store.db
      .selectFrom('passkeys')
      .select('counter')
      .where('id', '=', passkeyId)
      .executeTakeFirstOrThrow();
    expect(row.counter).toBe(after.credentials[0]?.signCount);

    expect(await auditKinds()).toEqual(['auth.passkey-registered', 'auth.passkey-sign-in']);
  });
});
