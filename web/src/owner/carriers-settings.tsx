/**
 * The settings card "Carriers": which delivery companies may come inside this home, and which
 * couriers never may. A carrier is off until the household allows it; blocking a carrier or a
 * courier stops them at the door at once, also for deliveries already booked.
 */
import { useCallback, useEffect, useState } from 'react';
import type { HomeCarrierView, HomeCourierView } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { useOwner } from './owner-context.ts';
import './carriers.css';

type Decision = HomeCarrierView['decision'];

const DECISION_LABEL: Readonly<Record<Decision, string>> = {
  allowed: 'Allowed',
  blocked: 'Blocked',
  undecided: 'Not allowed yet',
};

const DECISION_BADGE: Readonly<Record<Decision, string>> = {
  allowed: 'badge badge-ok',
  blocked: 'badge badge-danger-soft',
  undecided: 'badge badge-neutral',
};

interface Couriers {
  readonly blocked: readonly HomeCourierView[];
  readonly others: readonly HomeCourierView[];
}

type Load =
  | { readonly kind: 'loading' }
  | { readonly kind: 'loaded' }
  | { readonly kind: 'error'; readonly message: string };

/** The whole card, for the settings page. */
export function CarriersCard() {
  return (
    <section className="card" aria-labelledby="carriers-title" data-testid="carriers-settings">
      <h2 id="carriers-title" className="card-title">
        Carriers
      </h2>
      <CarriersSettings />
    </section>
  );
}

/** The lists inside {@link CarriersCard}. */
export function CarriersSettings() {
  const { home } = useOwner();
  const base = `/api/homes/${encodeURIComponent(home.id)}`;
  const [carriers, setCarriers] = useState<readonly HomeCarrierView[] | null>(null);
  const [couriers, setCouriers] = useState<Couriers | null>(null);
  const [load, setLoad] = useState<Load>({ kind: 'loading' });
  // The row being changed, so its buttons wait; and what the last change said.
  const [busy, setBusy] = useState<string | null>(null);
  const [status, setStatus] = useState<{ readonly ok: boolean; readonly text: string } | null>(
    null,
  );

  const reload = useCallback(() => {
    Promise.all([
      api<{ carriers: HomeCarrierView[] }>(`${base}/carriers`),
      api<Couriers>(`${base}/blocked-couriers`),
    ])
      .then(([c, k]) => {
        setCarriers(c.carriers);
        setCouriers(k);
        setLoad({ kind: 'loaded' });
      })
      .catch((err: unknown) => setLoad({ kind: 'error', message: messageOf(err) }));
  }, [base]);

  useEffect(() => {
    reload();
  }, [reload]);

  const decide = async (c: HomeCarrierView, decision: 'allowed' | 'blocked') => {
    setBusy(c.id);
    setStatus(null);
    try {
      const r = await api<{ carrier: HomeCarrierView }>(
        `${base}/carriers/${encodeURIComponent(c.id)}`,
        { method: 'PUT', body: { decision } },
      );
      setCarriers((all) => all?.map((x) => (x.id === c.id ? r.carrier : x)) ?? null);
      setStatus({
        ok: true,
        text:
          decision === 'allowed'
            ? `${c.name} may now deliver inside.`
            : `${c.name} is blocked: its couriers cannot open your door.`,
      });
    } catch (err) {
      setStatus({ ok: false, text: `Not changed: ${messageOf(err)}` });
    } finally {
      setBusy(null);
    }
  };

  const courierAction = async (c: HomeCourierView, action: 'block' | 'unblock') => {
    setBusy(c.id);
    setStatus(null);
    try {
      await api(`${base}/couriers/${encodeURIComponent(c.id)}/${action}`, { method: 'POST' });
      setStatus({
        ok: true,
        text:
          action === 'block'
            ? `${c.displayName} is blocked: they cannot open your door.`
            : `${c.displayName} is no longer blocked.`,
      });
      reload();
    } catch (err) {
      setStatus({ ok: false, text: `Not changed: ${messageOf(err)}` });
    } finally {
      setBusy(null);
    }
  };

  const explain = (
    <p className="muted small">
      Delivery companies whose couriers may come inside to leave a parcel. A company is off until
      you allow it. Blocking one stops its couriers at your door at once, also for deliveries
      already booked; they can still leave parcels outside.
    </p>
  );

  if (!carriers || !couriers) {
    return (
      <div className="settings-group">
        {explain}
        {load.kind === 'error' ? (
          <div className="notice notice-warn" role="status">
            <p>Could not load the carriers: {load.message}</p>
            <button
              type="button"
              className="btn btn-quiet"
              onClick={() => {
                setLoad({ kind: 'loading' });
                reload();
              }}
            >
              Try again
            </button>
          </div>
        ) : (
          <p className="muted">Loading the carriers…</p>
        )}
      </div>
    );
  }

  return (
    <div className="settings-group carriers">
      {explain}
      {carriers.length === 0 ? (
        <p className="muted">No delivery company is registered on this server yet.</p>
      ) : (
        <ul className="carrier-list">
          {carriers.map((c) => (
            <li
              key={c.id}
              className="carrier-row"
              data-testid="carrier-row"
              data-carrier-id={c.id}
              data-decision={c.decision}
            >
              <span className="carrier-name">{c.name}</span>
              <span className={DECISION_BADGE[c.decision]} data-testid="carrier-decision">
                {DECISION_LABEL[c.decision]}
              </span>
              <span className="carrier-actions">
                <button
                  type="button"
                  className="btn btn-secondary"
                  disabled={busy !== null || c.decision === 'allowed'}
                  onClick={() => void decide(c, 'allowed')}
                  aria-label={`Allow ${c.name}`}
                  data-testid="carrier-allow"
                >
                  Allow
                </button>
                <button
                  type="button"
                  className="btn btn-quiet"
                  disabled={busy !== null || c.decision === 'blocked'}
                  onClick={() => void decide(c, 'blocked')}
                  aria-label={`Block ${c.name}`}
                  data-testid="carrier-block"
                >
                  Block
                </button>
              </span>
            </li>
          ))}
        </ul>
      )}

      <h3 className="subhead">Couriers</h3>
      {couriers.blocked.length === 0 && couriers.others.length === 0 ? (
        <p className="muted">No courier has delivered here yet.</p>
      ) : (
        <ul className="carrier-list">
          {[...couriers.blocked, ...couriers.others].map((c) => (
            <li
              key={c.id}
              className="carrier-row"
              data-testid="courier-row"
              data-courier-id={c.id}
              data-blocked={c.blocked ? 'true' : 'false'}
            >
              <span className="carrier-name">
                {c.displayName}
                {c.carrier && <span className="muted small"> · {c.carrier.name}</span>}
              </span>
              {c.blocked ? (
                <span className="badge badge-danger-soft">Blocked</span>
              ) : (
                <span className="badge badge-neutral">Has delivered here</span>
              )}
              <span className="carrier-actions">
                {c.blocked ? (
                  <button
                    type="button"
                    className="btn btn-secondary"
                    disabled={busy !== null}
                    onClick={() => void courierAction(c, 'unblock')}
                    aria-label={`Unblock ${c.displayName}`}
                    data-testid="courier-unblock"
                  >
                    Unblock
                  </button>
                ) : (
                  <button
                    type="button"
                    className="btn btn-quiet"
                    disabled={busy !== null}
                    onClick={() => void courierAction(c, 'block')}
                    aria-label={`Block ${c.displayName}`}
                    data-testid="courier-block"
                  >
                    Block
                  </button>
                )}
              </span>
            </li>
          ))}
        </ul>
      )}
      <p
        className={status && !status.ok ? 'form-error' : 'form-ok'}
        role="status"
        data-testid="carriers-status"
      >
        {status?.text ?? ''}
      </p>
    </div>
  );
}
