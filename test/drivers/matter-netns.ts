/**
 * A network namespace joined to the test's own namespace by a veth pair: the wire between a
 * Matter device (a child process inside the namespace) and the hub's controller (the test
 * process). matter.js leaves the loopback interface out of Matter's mDNS and operational
 * discovery, so two processes on one machine only find each other over a real link; this one
 * carries nothing but IPv6 link-local traffic between the two ends.
 *
 * The namespace itself is the harness's (src/harness/netns.ts): needs root and iproute2's `ip`;
 * names are unique per process (`thr-matter-dev-<pid>-<n>`), and namespaces left by a test
 * process that died are removed the next time one is made.
 */
import { assertNetnsPossible as assertPossible, createNetns } from '../../src/harness/netns.ts';

/** A namespace, its veth pair, and the knobs a test turns. */
export interface NetnsLink {
  /** The namespace the device runs in (`ip netns exec <namespace> ...`). */
  readonly namespace: string;
  /** The veth end in the test's namespace (the hub's Matter interface). */
  readonly hostInterface: string;
  /** The veth end inside the namespace (the device's interface). */
  readonly deviceInterface: string;
  /** The host end's IPv6 link-local address, with its zone (`fe80::...%<hostInterface>`). */
  readonly hostAddress: string;
  /** Deletes the namespace and with it the veth pair; idempotent. */
  destroy(): Promise<void>;
}

const PURPOSE = 'the Matter lock test';
const WHY =
  'it joins a Matter device in its own network namespace to the hub by a veth pair, because ' +
  'matter.js does not use the loopback interface';

/**
 * Throws a clear error unless this process can make namespaces (root, `ip` installed): the
 * Matter test must fail, not skip, where it cannot run.
 */
export function assertNetnsPossible(): void {
  assertPossible(PURPOSE, WHY);
}

/** Makes a namespace and a veth pair with both ends up and addressed (IPv6 link-local only). */
export async function createNetnsLink(): Promise<NetnsLink> {
  assertNetnsPossible();
  const netns = await createNetns({
    purpose: PURPOSE,
    prefix: 'thr-matter-dev-',
    interfaceTag: 'thm',
    ipv6LinkLocal: true,
  });
  if (netns.hostLinkLocal === null) {
    await netns.destroy();
    throw new Error('the Matter link has no IPv6 link-local address');
  }
  return {
    namespace: netns.namespace,
    hostInterface: netns.hostInterface,
    deviceInterface: netns.deviceInterface,
    hostAddress: netns.hostLinkLocal,
    destroy: () => netns.destroy(),
  };
}
