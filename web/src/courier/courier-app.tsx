/**
 * The courier face (`/courier`), phone first: today's deliveries, then one delivery at the
 * door — where am I, slide to unlock, door open, door closed — lock, next stop; or, for a
 * parcel meant for the doorstep, "left at the door".
 */
import { useCallback, useEffect, useState } from 'react';
import type { CourierDeliveryView, PrincipalSummary } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { PhoneFrame } from '../components/phone-frame.tsx';
import { Link, matchPath, navigate, usePath } from '../router.ts';
import { formatDay, formatHourMinute, zonedIsoDate } from '../time.ts';
import { DeliveryFlow } from './delivery-flow.tsx';

/** Props of {@link CourierApp}. */
export interface CourierAppProps {
  readonly principal: PrincipalSummary;
  readonly onSignOut: () => void;
}

const STATUS_LABELS: Record<string, string> = {
  scheduled: 'To deliver',
  'in-progress': 'In progress',
  delivered: 'Delivered inside',
  'left-at-door': 'Left at the door',
  'needs-review': 'Needs review',
  cancelled: 'Cancelled',
};

/** Whether the courier can still try the door for this delivery. */
export function canTryDoor(d: CourierDeliveryView): boolean {
  return d.status === 'scheduled' || d.status === 'in-progress';
}

/** "14:00–16:00" (home's zone), with the day in front when it is not today there. */
export function deliveryWindow(d: CourierDeliveryView, now: number): string {
  const tz = d.home?.timeZone ?? 'UTC';
  const range = `${formatHourMinute(d.windowStart, tz)}–${formatHourMinute(d.windowEnd, tz)}`;
  return zonedIsoDate(d.windowStart, tz) === zonedIsoDate(now, tz)
    ? range
    : `${formatDay(d.windowStart, tz)}, ${range}`;
}

function DeliveryList({ deliveries }: { readonly deliveries: readonly CourierDeliveryView[] }) {
  const [now] = useState(() => Date.now());
  const sorted = [...deliveries].sort(
    (a, b) => Number(canTryDoor(b)) - Number(canTryDoor(a)) || a.windowStart - b.windowStart,
  );
  const todo = sorted.filter(canTryDoor);
  const done = sorted.filter((d) => !canTryDoor(d));
  const item = (d: CourierDeliveryView) => (
    <li key={d.id} className={`delivery delivery-${d.status}`} data-testid="courier-delivery">
      <div className="delivery-top">
        <span className="delivery-window">{deliveryWindow(d, now)}</span>
        <span className={`status-chip status-${d.status}`}>
          {STATUS_LABELS[d.status] ?? d.status}
        </span>
      </div>
      <p className="delivery-address">{d.home?.address ?? 'Address not available'}</p>
      <p className="delivery-ref muted">
        Parcel <span className="mono">{d.packageRef}</span>
        {d.home?.name ? ` · ${d.home.name}` : ''}
        {d.placement === 'doorstep' ? ' · leave at the door' : ''}
      </p>
      {canTryDoor(d) && (
        <Link
          to={`/courier/deliveries/${encodeURIComponent(d.id)}`}
          className="btn btn-primary btn-block btn-large"
          data-testid="at-door"
        >
          {d.placement === 'doorstep' ? 'At the door — leave it outside' : 'I’m at the door'}
        </Link>
      )}
    </li>
  );
  return (
    <>
      {todo.length === 0 && (
        <div className="empty">
          <p>No deliveries to make right now.</p>
        </div>
      )}
      {todo.length > 0 && <ul className="deliveries">{todo.map(item)}</ul>}
      {done.length > 0 && (
        <>
          <h2 className="section-title">Done</h2>
          <ul className="deliveries deliveries-done">{done.map(item)}</ul>
        </>
      )}
    </>
  );
}

/** The courier face. */
export function CourierApp({ principal, onSignOut }: CourierAppProps) {
  const path = usePath();
  const [deliveries, setDeliveries] = useState<readonly CourierDeliveryView[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(() => {
    api<{ deliveries: CourierDeliveryView[] }>('/api/courier/deliveries')
      .then((r) => {
        setDeliveries(r.deliveries);
        setError(null);
      })
      .catch((err: unknown) => setError(messageOf(err)));
  }, []);

  // Each visit to the list fetches it again: a finished stop changes its status.
  const onList = path === '/courier';
  useEffect(() => {
    if (onList) load();
  }, [onList, load]);

  const match = matchPath('/courier/deliveries/:id', path);
  const delivery = match?.id ? deliveries?.find((d) => d.id === match.id) : undefined;

  useEffect(() => {
    // A delivery page opened directly (reload, shared link) needs the list first.
    if (match?.id && deliveries === null) load();
  }, [match?.id, deliveries, load]);

  let content;
  if (match?.id) {
    if (delivery) {
      content = (
        <DeliveryFlow key={delivery.id} delivery={delivery} onDone={() => navigate('/courier')} />
      );
    } else if (deliveries !== null) {
      content = (
        <div className="empty">
          <p>This delivery is not on your list.</p>
          <Link to="/courier" className="btn btn-secondary">
            My deliveries
          </Link>
        </div>
      );
    } else {
      content = error ? (
        <p className="notice notice-warn" role="status">
          {error}
        </p>
      ) : (
        <p className="muted">Loading…</p>
      );
    }
  } else {
    content = (
      <>
        <div className="page-head">
          <h1 className="page-title">Today’s deliveries</h1>
          <button type="button" className="btn btn-text" onClick={load}>
            Refresh
          </button>
        </div>
        {error && (
          <p className="notice notice-warn" role="status">
            Could not load your deliveries: {error}
          </p>
        )}
        {deliveries === null && !error && <p className="muted">Loading your deliveries…</p>}
        {deliveries && <DeliveryList deliveries={deliveries} />}
      </>
    );
  }

  return (
    <PhoneFrame
      home="/courier"
      homeLabel="Threshold — my deliveries"
      displayName={principal.displayName}
      onSignOut={onSignOut}
    >
      <section className="page">{content}</section>
    </PhoneFrame>
  );
}
