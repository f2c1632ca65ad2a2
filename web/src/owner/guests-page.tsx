/**
 * `/guests`: who may come in besides the household. The home's guests with their schedule in
 * words, whether they may come in now and whether their entries are recorded, "Revoke" (after a
 * confirmation), pending invitations with "Withdraw", the "Invite a guest" form, and each lock's
 * keypad codes. docs/api.md §11–12.
 */
import { useCallback, useEffect, useState } from 'react';
import type { GuestGrantView, InviteView } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { ConfirmDialog } from '../components/confirm-dialog.tsx';
import { formatWhen, grantNow } from '../when.ts';
import { recordingLabel } from '../words.ts';
import { InviteForm } from './invite-form.tsx';
import { useOwner } from './owner-context.ts';
import { PinsSection } from './pins-section.tsx';

/** The list is asked again this often: "may come in now" changes with the clock. */
const POLL_MS = 15_000;

const BADGE: Record<string, string> = {
  ok: 'badge-ok',
  neutral: 'badge-neutral',
  danger: 'badge-danger-soft',
};

function limitsText(g: GuestGrantView): string {
  const parts: string[] = [];
  parts.push(
    g.limits.maxUses === null
      ? `${g.uses} ${g.uses === 1 ? 'entry' : 'entries'} so far`
      : `${g.uses} of ${g.limits.maxUses} ${g.limits.maxUses === 1 ? 'entry' : 'entries'} used`,
  );
  if (g.limits.maxMinutesPerEntry !== null)
    parts.push(`at most ${g.limits.maxMinutesPerEntry} min per entry`);
  return parts.join(' · ');
}

/** The guests page. */
export function GuestsPage() {
  const { home, status, doorName } = useOwner();
  const tz = home.timeZone;
  const base = `/api/homes/${encodeURIComponent(home.id)}`;
  const [grants, setGrants] = useState<readonly GuestGrantView[] | null>(null);
  const [invites, setInvites] = useState<readonly InviteView[]>([]);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<GuestGrantView | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(() => {
    api<{ grants: GuestGrantView[]; invites: InviteView[] }>(`${base}/guests`)
      .then((r) => {
        setGrants(r.grants);
        setInvites(r.invites);
        setLoadError(null);
      })
      .catch((err: unknown) => setLoadError(messageOf(err)));
  }, [base]);

  useEffect(() => {
    load();
    const t = setInterval(load, POLL_MS);
    return () => clearInterval(t);
  }, [load]);

  const revoke = async () => {
    if (!revoking) return;
    setBusy(true);
    try {
      await api(`${base}/grants/${encodeURIComponent(revoking.id)}/revoke`, { method: 'POST' });
      setActionError(null);
    } catch (err) {
      setActionError(`Not revoked: ${messageOf(err)}`);
    } finally {
      setBusy(false);
      setRevoking(null);
      load();
    }
  };

  const withdraw = async (invite: InviteView) => {
    setBusy(true);
    try {
      await api(`${base}/invites/${encodeURIComponent(invite.id)}/revoke`, { method: 'POST' });
      setActionError(null);
    } catch (err) {
      setActionError(`Not withdrawn: ${messageOf(err)}`);
    } finally {
      setBusy(false);
      load();
    }
  };

  // Newest first: the guest just invited is the one the owner is looking for.
  const shown = grants ? [...grants].reverse() : null;
  const pending = invites.filter((i) => i.status === 'pending').reverse();
  const locks = (status?.doors ?? []).flatMap((d) =>
    d.lock.deviceId ? [{ lockId: d.lock.deviceId, doorName: d.name }] : [],
  );

  return (
    <section className="page guests-page">
      <div className="page-head">
        <div>
          <h1 className="page-title">Guests</h1>
          <p className="muted page-lede">
            People you let in on a schedule. The camera records their entries unless you turn that
            off for a guest. Times are in {tz}.
          </p>
        </div>
      </div>
      {loadError && (
        <p className="notice notice-warn" role="status">
          Could not load your guests: {loadError}
        </p>
      )}
      {actionError && (
        <p className="form-error" role="alert">
          {actionError}
        </p>
      )}

      <section className="card" aria-labelledby="guests-title">
        <h2 id="guests-title" className="card-title">
          Guests
        </h2>
        {shown === null && !loadError && <p className="muted">Loading your guests…</p>}
        {shown?.length === 0 && <p className="muted">No guests yet. Invite one below.</p>}
        {shown && shown.length > 0 && (
          <ul className="row-list">
            {shown.map((g) => {
              const now = grantNow(g, tz);
              return (
                <li
                  key={g.id}
                  className="row"
                  data-testid="guest-grant"
                  data-guest={g.guest.displayName}
                >
                  <div className="row-main">
                    <span className="row-title">
                      {g.guest.displayName}
                      <span className="row-sub"> · {g.doorName}</span>
                    </span>
                    <span>{g.description}</span>
                    <span>
                      <span className={`badge ${BADGE[now.tone] ?? ''}`} data-testid="guest-now">
                        {now.text}
                      </span>{' '}
                      <span
                        className="badge badge-neutral"
                        data-testid="guest-recording"
                        data-recorded={g.limits.requiresRecording}
                      >
                        {recordingLabel(g.limits.requiresRecording)}
                      </span>
                    </span>
                    <span className="muted small">
                      {limitsText(g)} · shared by {g.grantedBy.displayName}
                      {g.revokedAt !== null && ` · revoked ${formatWhen(g.revokedAt, tz)}`}
                    </span>
                  </div>
                  {g.revokedAt === null && (
                    <button
                      type="button"
                      className="btn btn-secondary"
                      onClick={() => setRevoking(g)}
                      disabled={busy}
                      data-testid="guest-revoke"
                    >
                      Revoke
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        )}
        {pending.length > 0 && (
          <>
            <h3 className="subhead">Invitations not yet accepted</h3>
            <ul className="row-list">
              {pending.map((i) => (
                <li key={i.id} className="row" data-testid="guest-invite">
                  <div className="row-main">
                    <span className="row-title">
                      {i.displayName}
                      <span className="row-sub"> · {doorName(i.doorId)}</span>
                    </span>
                    <span>{i.description}</span>
                    <span className="muted small">
                      {recordingLabel(i.requiresRecording)} · the link works until{' '}
                      {formatWhen(i.expiresAt, tz)}
                    </span>
                  </div>
                  <button
                    type="button"
                    className="btn btn-secondary"
                    onClick={() => void withdraw(i)}
                    disabled={busy}
                    data-testid="invite-withdraw"
                  >
                    Withdraw
                  </button>
                </li>
              ))}
            </ul>
          </>
        )}
      </section>

      <section className="card" aria-labelledby="invite-title">
        <h2 id="invite-title" className="card-title">
          Invite a guest
        </h2>
        <InviteForm onCreated={load} />
      </section>

      {locks.map((l) => (
        <PinsSection key={l.lockId} lockId={l.lockId} doorName={l.doorName} grants={grants ?? []} />
      ))}

      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke ${revoking?.guest.displayName ?? 'this guest'}?`}
        confirmLabel="Revoke now"
        danger
        busy={busy}
        onConfirm={() => void revoke()}
        onCancel={() => setRevoking(null)}
        testId="revoke-dialog"
      >
        <p>
          {revoking?.guest.displayName} can no longer open {revoking?.doorName ?? 'the door'}, at
          once. A visit under way is ended: the door locks as soon as it is closed. Their keypad
          codes are emptied, and access they shared on is revoked too.
        </p>
      </ConfirmDialog>
    </section>
  );
}
