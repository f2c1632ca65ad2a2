/**
 * "Notify me on this device": Web Push through the service worker `/sw.js`. Every way this can
 * fail in a browser (no Push API, permission denied, subscribe refused) ends in a plain
 * explanation on the page, never in an uncaught error.
 */
import { useEffect, useState } from 'react';
import { api, messageOf } from '../api.ts';

type PushState =
  | { readonly kind: 'checking' }
  | { readonly kind: 'unsupported'; readonly why: string }
  | { readonly kind: 'denied' }
  | { readonly kind: 'off' }
  | { readonly kind: 'working' }
  | { readonly kind: 'on' }
  | { readonly kind: 'error'; readonly message: string };

function supportProblem(): string | null {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
    return /iPhone|iPad/.test(navigator.userAgent)
      ? 'On iPhone and iPad, add Threshold to your Home Screen first (Share → Add to Home Screen), then turn notifications on from there.'
      : 'This browser cannot receive push notifications. Try a current version of Chrome, Edge, Firefox or Safari.';
  }
  if (!('Notification' in window)) return 'This browser cannot show notifications.';
  if (!window.isSecureContext)
    return 'Notifications need a secure connection (https). Open Threshold through its https address.';
  return null;
}

/** The VAPID key as the bytes `pushManager.subscribe` wants. */
function keyBytes(base64url: string): Uint8Array<ArrayBuffer> {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

async function currentSubscription(): Promise<PushSubscription | null> {
  const reg = await navigator.serviceWorker.getRegistration('/');
  return reg ? reg.pushManager.getSubscription() : null;
}

/**
 * Stops this browser's push messages (at sign-out: a shared browser must not keep receiving
 * the home's alarms). Best effort; never throws.
 */
export async function unsubscribeThisBrowser(): Promise<void> {
  try {
    if (!('serviceWorker' in navigator)) return;
    const sub = await currentSubscription();
    if (!sub) return;
    await api('/api/push/subscriptions', {
      method: 'DELETE',
      body: { endpoint: sub.endpoint },
      redirectOn401: false,
    }).catch(() => undefined);
    await sub.unsubscribe();
  } catch {
    // Nothing to undo, or the browser refused: the server drops dead subscriptions anyway.
  }
}

/** The notifications section of the settings page. */
export function PushSettings() {
  const [state, setState] = useState<PushState>({ kind: 'checking' });

  useEffect(() => {
    let live = true;
    const check = async (): Promise<PushState> => {
      const problem = supportProblem();
      if (problem) return { kind: 'unsupported', why: problem };
      if (Notification.permission === 'denied') return { kind: 'denied' };
      try {
        return (await currentSubscription()) ? { kind: 'on' } : { kind: 'off' };
      } catch {
        return { kind: 'off' };
      }
    };
    void check().then((s) => {
      if (live) setState(s);
    });
    return () => {
      live = false;
    };
  }, []);

  const enable = async () => {
    setState({ kind: 'working' });
    try {
      const permission = await Notification.requestPermission();
      if (permission !== 'granted') {
        setState(permission === 'denied' ? { kind: 'denied' } : { kind: 'off' });
        return;
      }
      const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      await navigator.serviceWorker.ready;
      const { publicKey } = await api<{ publicKey: string }>('/api/push/public-key');
      const sub = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(publicKey),
      });
      const json = sub.toJSON();
      await api<{ id: string }>('/api/push/subscriptions', {
        method: 'POST',
        body: {
          endpoint: sub.endpoint,
          expirationTime: sub.expirationTime,
          keys: { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' },
        },
      });
      setState({ kind: 'on' });
    } catch (err) {
      setState({
        kind: 'error',
        message:
          err instanceof DOMException &&
          (err.name === 'NotAllowedError' || err.name === 'AbortError')
            ? 'This browser would not set up push messages here. Private windows cannot receive them; in a normal window, check that notifications are allowed for this site.'
            : `Notifications could not be turned on: ${messageOf(err)}`,
      });
    }
  };

  const disable = async () => {
    setState({ kind: 'working' });
    try {
      const sub = await currentSubscription();
      if (sub) {
        await api('/api/push/subscriptions', {
          method: 'DELETE',
          body: { endpoint: sub.endpoint },
        }).catch(() => {
          // The server drops subscriptions that stop working; unsubscribing here is what counts.
        });
        await sub.unsubscribe();
      }
      setState({ kind: 'off' });
    } catch (err) {
      setState({ kind: 'error', message: `Could not turn notifications off: ${messageOf(err)}` });
    }
  };

  return (
    <div className="push" data-testid="push-settings" data-push-state={state.kind}>
      <p className="muted">
        Get alarms and “ask me first” requests on this device, even when Threshold is not open.
      </p>
      {state.kind === 'checking' && <p className="muted">Checking this browser…</p>}
      {state.kind === 'unsupported' && (
        <p className="notice notice-info" role="status">
          {state.why}
        </p>
      )}
      {state.kind === 'denied' && (
        <p className="notice notice-info" role="status">
          Notifications are blocked for this site. To get them, allow notifications in the browser’s
          site settings, then come back here.
        </p>
      )}
      {state.kind === 'error' && (
        <p className="notice notice-warn" role="status">
          {state.message}
        </p>
      )}
      {state.kind === 'on' && (
        <p className="form-ok" role="status">
          This device gets Threshold notifications.
        </p>
      )}
      {(state.kind === 'off' || state.kind === 'error' || state.kind === 'working') && (
        <button
          type="button"
          className="btn btn-primary"
          onClick={() => void enable()}
          disabled={state.kind === 'working'}
          data-testid="push-enable"
        >
          {state.kind === 'working' ? 'Asking the browser…' : 'Notify me on this device'}
        </button>
      )}
      {state.kind === 'on' && (
        <button
          type="button"
          className="btn btn-secondary"
          onClick={() => void disable()}
          data-testid="push-disable"
        >
          Stop notifications on this device
        </button>
      )}
    </div>
  );
}
