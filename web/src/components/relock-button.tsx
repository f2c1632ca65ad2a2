/**
 * "Door closed — lock": the one step every visitor (courier or guest) takes at the end, with
 * the reason the last try did not go through, if any.
 */
export interface RelockButtonProps {
  /** Why the last request to lock failed, or null. */
  readonly error: string | null;
  readonly onLock: () => void;
  readonly testId: string;
}

export function RelockButton({ error, onLock, testId }: RelockButtonProps) {
  return (
    <>
      {error !== null && (
        <p className="notice notice-warn" role="alert">
          {error}
        </p>
      )}
      <button
        type="button"
        className="btn btn-primary btn-block btn-huge"
        onClick={onLock}
        data-testid={testId}
      >
        Door closed — lock
      </button>
    </>
  );
}
