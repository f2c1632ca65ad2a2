/**
 * A controller that several device drivers share and that can be open only once: a Z-Wave stick
 * (`ZWaveNetwork`), the hub's Matter fabric (`MatterFabric`). Drivers
 * {@link SharedController.acquire | acquire} it and {@link SharedController.release | release}
 * it; the first acquire opens it, the last release closes it. Each driver holds its share
 * through a {@link ControllerLease}, which gives it back exactly once, even when the driver was
 * stopped while the controller was still opening.
 */

/** How to open and close the one controller. */
export interface ControllerLifecycle<T> {
  /** Opens the controller; rejects (leaving nothing open) if it cannot be opened. */
  open(): Promise<T>;
  /** Closes what {@link open} opened. */
  close(opened: T): Promise<void>;
}

/**
 * Reference-counted open and close of one controller. At most one open is under way at a time,
 * and a controller being closed is opened again only once it is closed: two drivers of one
 * serial port, or two matter.js controllers of one fabric, would fight over it.
 */
export class SharedController<T> {
  private opened: T | null = null;
  private opening: Promise<T> | null = null;
  /** Settles once the last close is done; never rejects (see {@link release}). */
  private closing: Promise<void> = Promise.resolve();
  private count = 0;

  constructor(private readonly lifecycle: ControllerLifecycle<T>) {}

  /** What is open while the controller is open (and acquired), else null. */
  get current(): T | null {
    return this.opened;
  }

  /** How many users hold the controller, those still waiting for it to open included. */
  get users(): number {
    return this.count;
  }

  /**
   * Counts one more user and resolves once the controller is open, opening it if nobody had.
   * Rejects if it cannot be opened; the failed user is not counted then, and the next acquire
   * tries again.
   */
  acquire(): Promise<T> {
    this.count += 1;
    this.opening ??= this.closing.then(() => this.lifecycle.open());
    const opening = this.opening;
    return opening.then(
      (opened) => {
        // Unless the last user left while it was opening (release closes it then).
        if (this.opening === opening) this.opened = opened;
        return opened;
      },
      (err: unknown) => {
        this.count -= 1;
        if (this.opening === opening) this.opening = null;
        throw err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  /**
   * One user fewer; the last one out closes the controller (resolves once it is closed, rejects
   * if closing failed). A release without a matching acquire does nothing.
   */
  async release(): Promise<void> {
    if (this.count === 0) return;
    this.count -= 1;
    if (this.count > 0) return;
    const opening = this.opening;
    this.opening = null;
    this.opened = null;
    const closed = (async () => {
      // One still opening is closed once it is open; one that failed to open holds nothing.
      const opened = await opening?.catch(() => null);
      if (opened !== null && opened !== undefined) await this.lifecycle.close(opened);
    })();
    // A close that failed must not keep the controller from ever being opened again.
    this.closing = closed.catch(() => undefined);
    await closed;
  }
}

/** The controller side a {@link ControllerLease} needs: {@link SharedController}'s two calls. */
export interface Acquirable<T> {
  acquire(): Promise<T>;
  release(): Promise<void>;
}

/** One driver's share of a {@link SharedController}: taken at most once, given back once. */
export class ControllerLease<T> {
  private held = false;

  constructor(private readonly controller: Acquirable<T>) {}

  /** Whether the share is held now (a resource the driver must give back on stop). */
  get taken(): boolean {
    return this.held;
  }

  /**
   * Acquires the controller and resolves with what is open. When `cancelled()` says so once it
   * is open (the driver was stopped meanwhile), the share is given back at once and this
   * resolves with null. Rejects with the controller's error if it cannot be opened (nothing is
   * held then), and at once if the share is held already.
   */
  async take(cancelled: () => boolean): Promise<T | null> {
    if (this.held) throw new Error('this share of the controller is held already');
    const opened = await this.controller.acquire();
    if (cancelled()) {
      await this.controller.release();
      return null;
    }
    this.held = true;
    return opened;
  }

  /** Gives the share back, if held; the last share given back closes the controller. */
  async giveBack(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.controller.release();
  }
}
