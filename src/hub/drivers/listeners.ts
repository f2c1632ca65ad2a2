/** The listener fan-out the drivers share. */

/**
 * Listeners called synchronously in order; one that throws does not stop the others (driver
 * rule), and its error is handed to `onError` instead of being lost.
 */
export class Listeners<E> {
  private readonly set = new Set<(e: E) => void>();
  constructor(private readonly onError: (err: unknown) => void) {}

  add(listener: (e: E) => void): () => void {
    this.set.add(listener);
    return () => {
      this.set.delete(listener);
    };
  }

  emit(e: E): void {
    for (const listener of [...this.set]) {
      try {
        listener(e);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  clear(): void {
    this.set.clear();
  }
}

/** Where a listener's error goes when nobody asked: a warning naming the driver, never a crash. */
export function reportListenerError(id: string): (err: unknown) => void {
  return (err) => {
    process.emitWarning(
      `driver ${id}: a listener threw: ${err instanceof Error ? err.message : String(err)}`,
    );
  };
}
