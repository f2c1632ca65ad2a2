/** A modal confirmation (native `<dialog>`: focus stays inside, Escape cancels). */
import { useEffect, useId, useRef, type ReactNode } from 'react';

/** Props of {@link ConfirmDialog}. */
export interface ConfirmDialogProps {
  readonly open: boolean;
  readonly title: string;
  readonly children?: ReactNode;
  readonly confirmLabel?: string;
  readonly cancelLabel?: string;
  /** Styles the confirm button as dangerous (unlocking a door). */
  readonly danger?: boolean;
  readonly busy?: boolean;
  readonly onConfirm: () => void;
  readonly onCancel: () => void;
  readonly testId?: string;
}

/**
 * Asks before doing something that matters. Cancel has the focus first, so pressing Enter by
 * habit does not unlock a door.
 */
export function ConfirmDialog(props: ConfirmDialogProps) {
  const { open, onCancel } = props;
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const cancelRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      d.showModal();
      cancelRef.current?.focus();
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={titleId}
      data-testid={props.testId}
      onCancel={(e) => {
        e.preventDefault();
        onCancel();
      }}
    >
      {open && (
        <>
          <h2 id={titleId} className="dialog-title">
            {props.title}
          </h2>
          {props.children}
          <div className="dialog-actions">
            <button type="button" className="btn btn-quiet" ref={cancelRef} onClick={onCancel}>
              {props.cancelLabel ?? 'Cancel'}
            </button>
            <button
              type="button"
              className={props.danger ? 'btn btn-danger' : 'btn btn-primary'}
              onClick={props.onConfirm}
              disabled={props.busy}
              data-testid={props.testId ? `${props.testId}-confirm` : undefined}
            >
              {props.confirmLabel ?? 'Confirm'}
            </button>
          </div>
        </>
      )}
    </dialog>
  );
}
