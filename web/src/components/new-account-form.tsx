/**
 * "Choose a user name and a password": the form of every invitation page (a guest's, a
 * courier's). The page keeps the state and does the request; this draws the fields, the error
 * and the button the same way everywhere.
 */
import type { FormEvent } from 'react';

/** Shortest password an invitation accepts (the server checks it too). */
export const PASSWORD_MIN = 10;

/** Props of {@link NewAccountForm}. */
export interface NewAccountFormProps {
  /** Prefix of the test ids and element ids ("invite" → `invite-username`, …). */
  readonly idPrefix: string;
  readonly username: string;
  readonly password: string;
  readonly onUsername: (value: string) => void;
  readonly onPassword: (value: string) => void;
  /** The refusal to show, in plain words, or null. */
  readonly error: string | null;
  readonly busy: boolean;
  /** The button's words ("Accept the invitation"). */
  readonly submitLabel: string;
  readonly onSubmit: (e: FormEvent) => void;
}

/** See the module comment. */
export function NewAccountForm(p: NewAccountFormProps) {
  const helpId = `${p.idPrefix}-password-help`;
  return (
    <form onSubmit={p.onSubmit} noValidate>
      <label className="field">
        <span className="field-label">Choose a user name</span>
        <input
          className="input"
          name="username"
          autoComplete="username"
          autoCapitalize="none"
          spellCheck={false}
          required
          value={p.username}
          onChange={(e) => p.onUsername(e.target.value)}
          data-testid={`${p.idPrefix}-username`}
        />
      </label>
      <label className="field">
        <span className="field-label">Choose a password</span>
        <input
          className="input"
          name="password"
          type="password"
          autoComplete="new-password"
          required
          minLength={PASSWORD_MIN}
          value={p.password}
          onChange={(e) => p.onPassword(e.target.value)}
          aria-describedby={helpId}
          data-testid={`${p.idPrefix}-password`}
        />
        <span id={helpId} className="muted small">
          At least {PASSWORD_MIN} characters. You sign in with these next time.
        </span>
      </label>
      {p.error && (
        <p className="form-error" role="alert">
          {p.error}
        </p>
      )}
      <button
        type="submit"
        className="btn btn-primary btn-block"
        disabled={p.busy || !p.username.trim() || !p.password}
        data-testid={`${p.idPrefix}-accept`}
      >
        {p.busy ? 'Accepting…' : p.submitLabel}
      </button>
    </form>
  );
}
